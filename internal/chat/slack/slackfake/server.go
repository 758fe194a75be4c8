// Package slackfake is an in-process fake of the parts of Slack shipbot
// uses: the Web API methods (auth.test, chat.postMessage, chat.update,
// chat.postEphemeral, the files upload v2 flow, apps.connections.open) with
// their real request encodings and answers, the Socket Mode websocket
// (hello, envelopes, pings, acks), and request signing for HTTP mode. It
// refuses what Slack refuses: a wrong token (invalid_auth), Block Kit over
// its limits (invalid_blocks), an update of a message that does not exist
// (message_not_found). Tests inject failures: 429 with Retry-After, Slack
// error codes.
package slackfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Message is a message as the fake holds it.
type Message struct {
	Channel, TS, ThreadTS string
	Text                  string
	Blocks                json.RawMessage
	// Versions are the blocks of every post and update, oldest first.
	Versions []json.RawMessage
}

// Ephemeral is a chat.postEphemeral: text only the user sees.
type Ephemeral struct{ Channel, User, Text, ThreadTS string }

// File is a completed upload.
type File struct {
	ID, Name, Title, Channel, ThreadTS string
	Content                            []byte
}

// Call is one Web API request.
type Call struct {
	Method string
	Params url.Values
	Status int    // HTTP status answered
	Error  string // Slack error code answered, "" when ok
}

// Failure is an injected answer.
type Failure struct {
	Status     int    // HTTP status; 0 means 200 with ok:false
	RetryAfter int    // seconds, sent with 429
	Error      string // Slack error code for ok:false
}

// Server is the fake. Its zero value is not usable; call Start.
type Server struct {
	// URL is the Web API base, ending in "/api/" as slack-go wants.
	URL      string
	BotToken string
	AppToken string
	// BotUserID is what auth.test says the bot is.
	BotUserID string

	srv      *httptest.Server
	upgrader websocket.Upgrader

	mu         sync.Mutex
	seq        int
	messages   map[string]*Message // channel + "/" + ts
	order      []*Message
	ephemerals []Ephemeral
	uploads    map[string]*File // file id -> pending upload
	files      []File
	calls      []Call
	fail       map[string][]Failure
	conns      []*wsConn
	acks       map[string]json.RawMessage
	opened     int
}

type wsConn struct {
	c    *websocket.Conn
	wmu  sync.Mutex
	done chan struct{}
}

func (w *wsConn) write(v any) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return w.c.WriteJSON(v)
}

// Start runs a fake on loopback until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{BotToken: "xoxb-fake-bot-token", AppToken: "xapp-fake-app-token", BotUserID: "U0SHIPBOT",
		messages: map[string]*Message{}, uploads: map[string]*File{}, fail: map[string][]Failure{},
		acks: map[string]json.RawMessage{}}
	// Slack's websocket takes clients that send no browser Origin.
	s.upgrader.CheckOrigin = func(*http.Request) bool { return true }
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.api)
	mux.HandleFunc("/upload/", s.upload)
	mux.HandleFunc("/ws", s.socket)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/api/"
	t.Cleanup(func() {
		s.mu.Lock()
		conns := s.conns
		s.conns = nil
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.c.Close()
		}
		s.srv.Close()
	})
	return s
}

// FailNext makes the next n calls of method answer f.
func (s *Server) FailNext(method string, n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail[method] = append(s.fail[method], f)
	}
}

// Calls returns the calls of method ("" = all), oldest first.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Messages returns copies of every message posted, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.order))
	for i, m := range s.order {
		out[i] = *m
		out[i].Versions = append([]json.RawMessage(nil), m.Versions...)
	}
	return out
}

// Ephemerals returns every ephemeral message, oldest first.
func (s *Server) Ephemerals() []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ephemeral(nil), s.ephemerals...)
}

// Files returns every completed upload.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]File(nil), s.files...)
}

// Eventually polls cond until it holds or the deadline passes.
func (s *Server) Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("slackfake: timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type answer map[string]any

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var params url.Values
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		params = url.Values{}
		var body map[string]any
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body)
		for k, v := range body {
			params.Set(k, fmt.Sprint(v))
		}
	} else {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		params = r.PostForm
	}
	token := params.Get("token")
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	params.Del("token") // calls are kept for assertions; tokens are not data

	s.mu.Lock()
	defer s.mu.Unlock()
	record := func(status int, errCode string) {
		s.calls = append(s.calls, Call{Method: method, Params: params, Status: status, Error: errCode})
	}
	if q := s.fail[method]; len(q) > 0 {
		f := q[0]
		s.fail[method] = q[1:]
		record(f.Status, f.Error)
		if f.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		if f.Status != 0 && f.Status != http.StatusOK {
			http.Error(w, http.StatusText(f.Status), f.Status)
			return
		}
		writeJSON(w, answer{"ok": false, "error": f.Error})
		return
	}
	want := s.BotToken
	if method == "apps.connections.open" {
		want = s.AppToken
	}
	if token == "" {
		record(200, "not_authed")
		writeJSON(w, answer{"ok": false, "error": "not_authed"})
		return
	}
	if !hmac.Equal([]byte(token), []byte(want)) {
		record(200, "invalid_auth")
		writeJSON(w, answer{"ok": false, "error": "invalid_auth"})
		return
	}
	res, errCode := s.call(method, params, r)
	record(200, errCode)
	if errCode != "" {
		writeJSON(w, answer{"ok": false, "error": errCode})
		return
	}
	res["ok"] = true
	writeJSON(w, res)
}

// call runs one authenticated method; s.mu is held.
func (s *Server) call(method string, p url.Values, r *http.Request) (answer, string) {
	switch method {
	case "auth.test":
		return answer{"url": "https://fake.slack.com/", "team": "Fake Team", "user": "shipbot", "team_id": "T0FAKE",
			"user_id": s.BotUserID, "bot_id": "B0SHIPBOT"}, ""
	case "apps.connections.open":
		s.opened++
		return answer{"url": "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws?ticket=" + strconv.Itoa(s.opened)}, ""
	case "chat.postMessage":
		ch := p.Get("channel")
		if ch == "" {
			return nil, "channel_not_found"
		}
		if e := CheckBlocks(p.Get("blocks")); e != "" {
			return nil, e
		}
		if p.Get("text") == "" && p.Get("blocks") == "" {
			return nil, "no_text"
		}
		s.seq++
		ts := fmt.Sprintf("%d.%06d", 1700000000+s.seq, s.seq)
		m := &Message{Channel: ch, TS: ts, ThreadTS: p.Get("thread_ts"), Text: p.Get("text"), Blocks: raw(p.Get("blocks"))}
		m.Versions = append(m.Versions, m.Blocks)
		s.messages[ch+"/"+ts] = m
		s.order = append(s.order, m)
		return answer{"channel": ch, "ts": ts, "message": answer{"text": m.Text, "ts": ts}}, ""
	case "chat.update":
		m, ok := s.messages[p.Get("channel")+"/"+p.Get("ts")]
		if !ok {
			return nil, "message_not_found"
		}
		if e := CheckBlocks(p.Get("blocks")); e != "" {
			return nil, e
		}
		m.Text, m.Blocks = p.Get("text"), raw(p.Get("blocks"))
		m.Versions = append(m.Versions, m.Blocks)
		return answer{"channel": m.Channel, "ts": m.TS, "text": m.Text}, ""
	case "chat.postEphemeral":
		if p.Get("channel") == "" || p.Get("user") == "" {
			return nil, "user_not_in_channel"
		}
		s.ephemerals = append(s.ephemerals, Ephemeral{Channel: p.Get("channel"), User: p.Get("user"), Text: p.Get("text"),
			ThreadTS: p.Get("thread_ts")})
		s.seq++
		return answer{"message_ts": fmt.Sprintf("%d.%06d", 1700000000+s.seq, s.seq)}, ""
	case "files.getUploadURLExternal":
		n, _ := strconv.Atoi(p.Get("length"))
		if p.Get("filename") == "" || n <= 0 {
			return nil, "invalid_arguments"
		}
		s.seq++
		id := fmt.Sprintf("F%06d", s.seq)
		s.uploads[id] = &File{ID: id, Name: p.Get("filename")}
		return answer{"upload_url": s.srv.URL + "/upload/" + id, "file_id": id}, ""
	case "files.completeUploadExternal":
		var fs []struct{ ID, Title string }
		if err := json.Unmarshal([]byte(p.Get("files")), &fs); err != nil || len(fs) == 0 {
			return nil, "invalid_arguments"
		}
		var done []answer
		for _, f := range fs {
			up, ok := s.uploads[f.ID]
			if !ok || up.Content == nil {
				return nil, "file_not_found"
			}
			up.Title, up.Channel, up.ThreadTS = f.Title, p.Get("channel_id"), p.Get("thread_ts")
			s.files = append(s.files, *up)
			delete(s.uploads, f.ID)
			done = append(done, answer{"id": f.ID, "title": f.Title})
		}
		return answer{"files": done}, ""
	}
	return nil, "unknown_method"
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/upload/")
	f, _, err := func() (io.ReadCloser, string, error) {
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return nil, "", err
		}
		f, h, err := r.FormFile("file")
		if err != nil {
			return nil, "", err
		}
		return f, h.Filename, nil
	}()
	if err != nil {
		http.Error(w, "bad upload", http.StatusBadRequest)
		return
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	s.mu.Lock()
	up, ok := s.uploads[id]
	if ok {
		up.Content = b
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "OK - %d", len(b))
}

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// CheckBlocks applies Block Kit's limits the way Slack does to a blocks JSON
// array and returns the error code Slack would answer ("" = accepted); any breach is
// invalid_blocks and nothing is posted.
func CheckBlocks(s string) string {
	if s == "" {
		return ""
	}
	var blocks []struct {
		Type   string `json:"type"`
		Text   *struct{ Type, Text string }
		Fields []struct{ Type, Text string }
		// actions
		Elements []struct {
			Type     string `json:"type"`
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
			Style    string `json:"style"`
			Text     struct{ Type, Text string }
		}
	}
	if err := json.Unmarshal([]byte(s), &blocks); err != nil {
		return "invalid_blocks_format"
	}
	if len(blocks) > 50 {
		return "invalid_blocks"
	}
	ids := map[string]bool{}
	for _, b := range blocks {
		switch b.Type {
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				return "invalid_blocks"
			}
			if b.Text != nil && (len(b.Text.Text) > 3000 || b.Text.Text == "") {
				return "invalid_blocks"
			}
			if len(b.Fields) > 10 {
				return "invalid_blocks"
			}
			for _, f := range b.Fields {
				if len(f.Text) > 2000 || f.Text == "" {
					return "invalid_blocks"
				}
			}
		case "actions":
			if len(b.Elements) == 0 || len(b.Elements) > 25 {
				return "invalid_blocks"
			}
			for _, e := range b.Elements {
				if e.Type != "button" || e.Text.Type != "plain_text" || e.Text.Text == "" || len([]rune(e.Text.Text)) > 75 ||
					len(e.Value) > 2000 || e.ActionID == "" || len(e.ActionID) > 255 || ids[e.ActionID] ||
					(e.Style != "" && e.Style != "primary" && e.Style != "danger") {
					return "invalid_blocks"
				}
				ids[e.ActionID] = true
			}
		case "header", "divider", "context":
		default:
			return "invalid_blocks"
		}
	}
	return ""
}

// socket is the Socket Mode websocket: hello first, then pings every 100 ms
// (slack-go reconnects when pings stop), envelopes pushed by tests, and the
// client's acks recorded.
func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn := &wsConn{c: c, done: make(chan struct{})}
	s.mu.Lock()
	s.conns = append(s.conns, conn)
	s.mu.Unlock()
	defer func() {
		close(conn.done)
		s.mu.Lock()
		for i, x := range s.conns {
			if x == conn {
				s.conns = append(s.conns[:i], s.conns[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		_ = c.Close()
	}()
	if err := conn.write(map[string]any{"type": "hello", "num_connections": 1,
		"connection_info": map[string]string{"app_id": "A0SHIPBOT"},
		"debug_info":      map[string]any{"host": "fake", "approximate_connection_time": 3600}}); err != nil {
		return
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-conn.done:
				return
			case <-t.C:
				conn.wmu.Lock()
				err := c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
				conn.wmu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
	for {
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := c.ReadJSON(&ack); err != nil {
			return
		}
		s.mu.Lock()
		s.acks[ack.EnvelopeID] = ack.Payload
		s.mu.Unlock()
	}
}

// Connected reports how many Socket Mode connections are open.
func (s *Server) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Push sends an envelope of typ ("events_api", "slash_commands",
// "interactive") with payload over the newest Socket Mode connection,
// waiting for one to exist, and returns its envelope id.
func (s *Server) Push(t testing.TB, typ string, payload any) string {
	t.Helper()
	s.Eventually(t, "a socket mode connection", func() bool { return s.Connected() > 0 })
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("env-%d", s.seq)
	conn := s.conns[len(s.conns)-1]
	s.mu.Unlock()
	env := map[string]any{"envelope_id": id, "type": typ, "payload": payload,
		"accepts_response_payload": typ == "slash_commands", "retry_attempt": 0, "retry_reason": ""}
	if err := conn.write(env); err != nil {
		t.Fatalf("slackfake: push: %v", err)
	}
	return id
}

// Ack returns the payload the client acknowledged envelope id with, and
// whether it has been acknowledged.
func (s *Server) Ack(id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.acks[id]
	return p, ok
}

// Disconnect closes every Socket Mode connection, as Slack does on a
// refresh; the client is expected to reconnect.
func (s *Server) Disconnect() {
	s.mu.Lock()
	conns := append([]*wsConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.c.Close()
	}
}

// SlashCommand is a slash command payload as Slack sends it (form fields in
// HTTP mode, a JSON object of strings in Socket Mode).
func SlashCommand(user, channel, command, text string) map[string]string {
	return map[string]string{"token": "deprecated-verification-token", "team_id": "T0FAKE", "team_domain": "fake",
		"channel_id": channel, "channel_name": "deploys", "user_id": user, "user_name": strings.ToLower(user),
		"command": command, "text": text, "api_app_id": "A0SHIPBOT", "is_enterprise_install": "false",
		"response_url": "https://hooks.slack.com/commands/T0FAKE/1/x", "trigger_id": nextID("trig")}
}

// Form encodes a slash command payload for HTTP mode.
func Form(fields map[string]string) []byte {
	v := url.Values{}
	for k, x := range fields {
		v.Set(k, x)
	}
	return []byte(v.Encode())
}

// BlockAction is a block_actions payload: user clicked the button with
// actionID and value on the message ts in channel.
func BlockAction(user, channel, ts, actionID, value string) map[string]any {
	return map[string]any{
		"type": "block_actions", "api_app_id": "A0SHIPBOT", "token": "deprecated-verification-token",
		"trigger_id": nextID("trig"),
		"team":       map[string]string{"id": "T0FAKE", "domain": "fake"},
		"user":       map[string]string{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": "T0FAKE"},
		"container":  map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
		"channel":    map[string]string{"id": channel, "name": "deploys"},
		"message":    map[string]any{"type": "message", "ts": ts, "bot_id": "B0SHIPBOT", "text": "card"},
		"actions": []map[string]any{{"type": "button", "action_id": actionID, "block_id": "shipbot_actions",
			"value": value, "text": map[string]any{"type": "plain_text", "text": "Approve"}, "action_ts": nextTS()}},
		"response_url": "https://hooks.slack.com/actions/T0FAKE/1/x",
	}
}

// InteractionForm encodes a block_actions payload for HTTP mode (payload=JSON).
func InteractionForm(payload map[string]any) []byte {
	b, _ := json.Marshal(payload)
	return []byte(url.Values{"payload": {string(b)}}.Encode())
}

// Event is an Events API event_callback around inner with a fresh event_id
// (reuse the returned map to simulate a retry).
func Event(inner map[string]any) map[string]any {
	return map[string]any{"token": "deprecated-verification-token", "team_id": "T0FAKE", "api_app_id": "A0SHIPBOT",
		"event": inner, "type": "event_callback", "event_id": nextID("Ev"), "event_time": time.Now().Unix(),
		"authorizations": []map[string]any{{"team_id": "T0FAKE", "user_id": "U0SHIPBOT", "is_bot": true}}}
}

// AppMention is an app_mention inner event.
func AppMention(user, channel, text string) map[string]any {
	ts := nextTS()
	return map[string]any{"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel, "event_ts": ts}
}

// DirectMessage is a message.im inner event.
func DirectMessage(user, channel, text string) map[string]any {
	ts := nextTS()
	return map[string]any{"type": "message", "channel_type": "im", "user": user, "text": text, "ts": ts,
		"channel": channel, "event_ts": ts}
}

// Signed returns the headers Slack sends with body at time ts, signed
// with secret: v0=hex(HMAC-SHA256(secret, "v0:" + ts + ":" + body)).
func Signed(secret string, ts time.Time, body []byte) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + stamp + ":"))
	mac.Write(body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", stamp)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

var (
	idMu  sync.Mutex
	idSeq int
)

func nextID(prefix string) string {
	idMu.Lock()
	defer idMu.Unlock()
	idSeq++
	return fmt.Sprintf("%s%08d", prefix, idSeq)
}

func nextTS() string {
	idMu.Lock()
	defer idMu.Unlock()
	idSeq++
	return fmt.Sprintf("%d.%06d", 1700000000+idSeq, idSeq)
}
