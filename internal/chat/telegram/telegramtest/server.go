// Package telegramtest is an in-process fake of the Telegram Bot API for
// tests. It speaks the real wire format: requests to /bot<TOKEN>/<method> as
// multipart/form-data (what github.com/go-telegram/bot sends, nested values
// like reply_markup as JSON strings), urlencoded or JSON; answers
// {"ok":true,"result":…} or {"ok":false,"error_code":…,"description":…}.
// It refuses what Telegram refuses (malformed HTML, texts over 4096
// characters, bad buttons, an edit to the same content, getUpdates while a
// webhook is set or while another getUpdates waits), long-polls getUpdates
// with offset and timeout, and can be told to fail a method with 429 +
// retry_after or a 5xx.
package telegramtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png" // sendPhoto decodes what it is sent, as Telegram does
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"
)

// Username is the fake bot's @username (getMe).
const Username = "shipbot"

// Call is one request the fake received.
type Call struct {
	Method string
	Fields map[string]string // form values; reply_markup and commands stay JSON strings
	Files  map[string][]byte // uploaded files by field name (the name is Fields[field+".filename"])
	Status int               // the HTTP status the fake answered
	Time   time.Time         // when the request arrived
}

// Message is a message the bot sent, as it stands now.
type Message struct {
	Chat     int64
	ID       int
	Thread   int
	Text     string // as sent (HTML in parse_mode HTML)
	Markup   string // canonical JSON of the inline keyboard; "" when none
	Document *Document
	Edits    int
	ReplyTo  int  // reply_parameters.message_id
	Deleted  bool // deleted in the chat (DeleteMessage)
}

// Document is a sent file (sendDocument) or photo (sendPhoto).
type Document struct {
	Name    string
	Content []byte
	Caption string
	ReplyTo int
	Photo   bool
}

// Server is the fake Bot API.
type Server struct {
	*httptest.Server
	Token string

	t    testing.TB
	done chan struct{}

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every change
	calls       []Call
	failures    map[string][]failure
	queue       []queued // updates not yet confirmed
	lastUpdate  int64
	pollGen     int
	polling     int                  // getUpdates calls waiting now
	messages    map[int64][]*Message // chat -> the bot's messages; index = id-1
	queries     map[string]bool      // issued callback query ids -> answered
	nextQuery   int
	nextUserMsg int // ids of people's messages
	commands    []models.BotCommand
	hookURL     string
	hookSecret  string
}

type queued struct {
	id    int64
	raw   json.RawMessage
	again bool // a redelivery: sent once even if its id was confirmed
}

type failure struct {
	code        int
	retryAfter  int
	description string // "" = the status text
}

// Start serves the fake on loopback until the test ends.
func Start(t testing.TB, token string) *Server {
	s := &Server{Token: token, t: t, done: make(chan struct{}), changed: make(chan struct{}),
		failures: map[string][]failure{}, messages: map[int64][]*Message{}, queries: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.done) // end long polls first: Close waits for them
		s.Close()
	})
	return s
}

// changedLocked wakes everything waiting for a change; s.mu is held.
func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// FailNext makes the next n calls of method fail with code (a 429 carries
// retryAfter seconds).
func (s *Server) FailNext(method string, n, code, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], failure{code: code, retryAfter: retryAfter})
	}
}

// Heal drops the failures still queued for method: the outage is over.
func (s *Server) Heal(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failures, method)
}

// FailNextWith makes the next n calls of method fail with code and
// description, as Telegram words its refusals: e.g. 400 "Bad Request: not
// enough rights to send documents to the chat" for sendDocument in a group
// that forbids files. The body has Telegram's error shape,
// {"ok":false,"error_code":code,"description":description}
// (https://core.telegram.org/bots/api#making-requests).
func (s *Server) FailNextWith(method string, n, code int, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], failure{code: code, description: description})
	}
}

// DeleteMessage deletes one of the bot's messages, as a person in the chat
// may: editing it afterwards answers 400 "Bad Request: message to edit not
// found", what Telegram answers for a deleted message.
func (s *Server) DeleteMessage(chat int64, id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms := s.messages[chat]; id >= 1 && id <= len(ms) {
		ms[id-1].Deleted = true
	}
	s.changedLocked()
}

// Calls returns the calls of method ("" = all), in order.
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

// Wait blocks until cond holds, re-checking whenever the fake sees a request
// (and every few milliseconds, for state outside the fake); after 10 seconds
// it fails the test naming what it waited for.
func (s *Server) Wait(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			s.t.Fatalf("telegramtest: gave up waiting for %s; calls:%s", what, s.summary())
		}
	}
}

// WaitCall waits for a call of method that ok accepts and returns it.
func (s *Server) WaitCall(method string, ok func(Call) bool) Call {
	s.t.Helper()
	var found Call
	s.Wait("a matching "+method, func() bool {
		for _, c := range s.Calls(method) {
			if ok(c) {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

func (s *Server) summary() string {
	var b strings.Builder
	for _, c := range s.Calls("") {
		fmt.Fprintf(&b, "\n  %s %d %v", c.Method, c.Status, c.Fields)
	}
	return b.String()
}

// Polling is how many getUpdates calls are waiting for updates now.
func (s *Server) Polling() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polling
}

// Messages returns the bot's messages in chat, oldest first.
func (s *Server) Messages(chat int64) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages[chat] {
		out = append(out, *m)
	}
	return out
}

// Message returns one of the bot's messages.
func (s *Server) Message(chat int64, id int) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.message(chat, id)
	if m == nil {
		return Message{}, false
	}
	return *m, true
}

func (s *Server) message(chat int64, id int) *Message {
	ms := s.messages[chat]
	if id < 1 || id > len(ms) || ms[id-1].Deleted {
		return nil // Telegram: "message to edit not found", "message to be replied not found"
	}
	return ms[id-1]
}

// ButtonData is the callback_data of the button labelled label on one of the
// bot's messages, or "" when there is none.
func (s *Server) ButtonData(chat int64, id int, label string) string {
	m, ok := s.Message(chat, id)
	if !ok || m.Markup == "" {
		return ""
	}
	var kb models.InlineKeyboardMarkup
	_ = json.Unmarshal([]byte(m.Markup), &kb)
	for _, row := range kb.InlineKeyboard {
		for _, b := range row {
			if b.Text == label {
				return b.CallbackData
			}
		}
	}
	return ""
}

// Commands is the last setMyCommands list.
func (s *Server) Commands() []models.BotCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]models.BotCommand(nil), s.commands...)
}

// Webhook is the registered webhook URL and secret ("" when polling).
func (s *Server) Webhook() (url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hookURL, s.hookSecret
}

// SetWebhook registers a webhook as an earlier run would have, so getUpdates
// is refused until deleteWebhook.
func (s *Server) SetWebhook(url, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookURL, s.hookSecret = url, secret
}

// Answer is the answerCallbackQuery call for query id, if one came.
func (s *Server) Answer(queryID string) (Call, bool) {
	for _, c := range s.Calls("answerCallbackQuery") {
		if c.Fields["callback_query_id"] == queryID {
			return c, true
		}
	}
	return Call{}, false
}

// Push queues an update (a models.Update, or anything marshalling to one) for
// getUpdates and returns its update_id, assigning the next one when it has
// none. Like Telegram, the fake keeps an update until a getUpdates offset
// above its id confirms it, and never sends it after that.
func (s *Server) Push(update any) int64 { return s.push(update, false) }

// Redeliver queues an update that is delivered once even if its id was
// confirmed, as when Telegram sends an update again because the bot died
// before it could confirm it.
func (s *Server) Redeliver(update any) int64 { return s.push(update, true) }

func (s *Server) push(update any, again bool) int64 {
	b, err := json.Marshal(update)
	if err != nil {
		s.t.Fatalf("telegramtest: push: %v", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		s.t.Fatalf("telegramtest: push: an update is a JSON object: %v", err)
	}
	var id int64
	_ = json.Unmarshal(fields["update_id"], &id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 {
		s.lastUpdate++
		id = s.lastUpdate
		fields["update_id"] = json.RawMessage(strconv.FormatInt(id, 10))
		b, _ = json.Marshal(fields)
	}
	s.lastUpdate = max(s.lastUpdate, id)
	s.queue = append(s.queue, queued{id: id, raw: b, again: again})
	s.changedLocked()
	return id
}

// Private is a person's private chat with the bot (its id is theirs).
func Private(user int64) models.Chat { return models.Chat{ID: user, Type: models.ChatTypePrivate} }

// Group is a supergroup.
func Group(id int64) models.Chat { return models.Chat{ID: id, Type: models.ChatTypeSupergroup} }

// User is a person.
func User(id int64, username string) models.User {
	return models.User{ID: id, FirstName: "User " + strconv.FormatInt(id, 10), Username: username}
}

var commandPrefix = regexp.MustCompile(`^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,64})?`)

// NewMessage is a message update as Telegram builds it: text starting with a
// /command (optionally @bot) carries a bot_command entity measured in UTF-16
// code units; thread > 0 makes it a forum topic message. Push assigns the
// update_id.
func (s *Server) NewMessage(chat models.Chat, thread int, from models.User, text string) models.Update {
	s.mu.Lock()
	s.nextUserMsg++
	id := s.nextUserMsg
	s.mu.Unlock()
	m := &models.Message{ID: id, Date: int(time.Now().Unix()), Chat: chat, From: &from, Text: text}
	if thread > 0 {
		m.MessageThreadID, m.IsTopicMessage = thread, true
	}
	if cmd := commandPrefix.FindString(text); cmd != "" {
		m.Entities = []models.MessageEntity{{Type: models.MessageEntityTypeBotCommand, Offset: 0,
			Length: len(utf16.Encode([]rune(cmd)))}}
	}
	return models.Update{Message: m}
}

// NewPress is a callback_query update: from pressed a button with data on
// the bot's message (chat, id). accessible=false sends the message the way
// Telegram does when it is too old for the bot: chat, id and date 0. The
// query id is issued here, so one answerCallbackQuery for it is accepted.
func (s *Server) NewPress(from models.User, chat int64, id int, data string, accessible bool) (models.Update, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextQuery++
	qid := "cq" + strconv.Itoa(s.nextQuery)
	s.queries[qid] = false
	q := &models.CallbackQuery{ID: qid, From: from, ChatInstance: "ci" + strconv.FormatInt(chat, 10), Data: data}
	if m := s.message(chat, id); accessible && m != nil {
		msg := s.wireMessage(m)
		q.Message = models.MaybeInaccessibleMessage{Type: models.MaybeInaccessibleMessageTypeMessage, Message: &msg}
	} else {
		q.Message = models.MaybeInaccessibleMessage{Type: models.MaybeInaccessibleMessageTypeInaccessibleMessage,
			InaccessibleMessage: &models.InaccessibleMessage{Chat: chatOf(chat), MessageID: id}}
	}
	return models.Update{CallbackQuery: q}, qid
}

func chatOf(id int64) models.Chat {
	switch {
	case id > 0:
		return Private(id)
	case id < -1000000000000:
		return Group(id)
	}
	return models.Chat{ID: id, Type: models.ChatTypeGroup}
}

func (s *Server) botUser() models.User {
	id, _ := strconv.ParseInt(strings.SplitN(s.Token, ":", 2)[0], 10, 64)
	return models.User{ID: id, IsBot: true, FirstName: "shipbot", Username: Username}
}

// wireMessage is m as the Bot API returns it; s.mu is held.
func (s *Server) wireMessage(m *Message) models.Message {
	bot := s.botUser()
	out := models.Message{ID: m.ID, Date: int(time.Now().Unix()), Chat: chatOf(m.Chat), From: &bot}
	if m.Thread > 0 {
		out.MessageThreadID, out.IsTopicMessage = m.Thread, true
	}
	if m.Document != nil && m.Document.Photo {
		// A photo message carries its sizes, not the file name.
		cfg, _, _ := image.DecodeConfig(bytes.NewReader(m.Document.Content))
		out.Photo = []models.PhotoSize{{FileID: fmt.Sprintf("photo%d_%d", m.Chat, m.ID), FileUniqueID: fmt.Sprintf("u%d_%d", m.Chat, m.ID),
			Width: cfg.Width, Height: cfg.Height, FileSize: len(m.Document.Content)}}
		out.Caption = m.Document.Caption
	} else if m.Document != nil {
		out.Document = &models.Document{FileID: fmt.Sprintf("doc%d_%d", m.Chat, m.ID),
			FileUniqueID: fmt.Sprintf("u%d_%d", m.Chat, m.ID), FileName: m.Document.Name, FileSize: int64(len(m.Document.Content))}
		out.Caption = m.Document.Caption
	} else {
		out.Text, _ = ParseHTML(m.Text)
	}
	if m.Markup != "" {
		var kb models.InlineKeyboardMarkup
		_ = json.Unmarshal([]byte(m.Markup), &kb)
		out.ReplyMarkup = &kb
	}
	return out
}

// apiError is a Bot API refusal.
type apiError struct {
	code        int
	description string
	retryAfter  int
}

func badRequest(format string, a ...any) *apiError {
	return &apiError{code: 400, description: "Bad Request: " + fmt.Sprintf(format, a...)}
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	if !ok {
		reply(w, 404, map[string]any{"ok": false, "error_code": 404, "description": "Not Found"})
		return
	}
	token, method, _ := strings.Cut(rest, "/")
	call := Call{Method: method, Fields: map[string]string{}, Files: map[string][]byte{}, Time: time.Now()}
	var result any
	var fail *apiError
	if token != s.Token {
		fail = &apiError{code: 401, description: "Unauthorized"}
	} else if err := readParams(r, &call); err != nil {
		fail = badRequest("%v", err)
	}
	s.mu.Lock()
	if fs := s.failures[method]; fail == nil && len(fs) > 0 {
		f := fs[0]
		s.failures[method] = fs[1:]
		fail = &apiError{code: f.code, description: http.StatusText(f.code)}
		if f.description != "" {
			fail.description = f.description
		}
		if f.code == 429 {
			fail.description = "Too Many Requests: retry after " + strconv.Itoa(f.retryAfter)
			fail.retryAfter = f.retryAfter
		}
	}
	switch {
	case fail != nil:
	case method == "getUpdates":
		s.mu.Unlock() // a long poll must not hold the fake
		result, fail = s.getUpdates(r, call)
		s.mu.Lock()
	default:
		result, fail = s.handle(call)
	}
	call.Status = 200
	if fail != nil {
		call.Status = fail.code
	}
	s.calls = append(s.calls, call)
	s.changedLocked()
	s.mu.Unlock()
	if fail != nil {
		body := map[string]any{"ok": false, "error_code": fail.code, "description": fail.description}
		if fail.retryAfter > 0 {
			body["parameters"] = map[string]int{"retry_after": fail.retryAfter}
		}
		reply(w, fail.code, body)
		return
	}
	reply(w, 200, map[string]any{"ok": true, "result": result})
}

// readParams reads a request's parameters in each form the Bot API accepts.
func readParams(r *http.Request, call *Call) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 50<<20))
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil // a method without parameters (the library still says multipart)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			return err
		}
		for k, v := range r.MultipartForm.Value {
			call.Fields[k] = v[0]
		}
		for k, fhs := range r.MultipartForm.File {
			f, err := fhs[0].Open()
			if err != nil {
				return err
			}
			call.Files[k], err = io.ReadAll(f)
			f.Close()
			if err != nil {
				return err
			}
			call.Fields[k+".filename"] = fhs[0].Filename
		}
	case "application/json":
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			if str, ok := v.(string); ok {
				call.Fields[k] = str
			} else {
				b, _ := json.Marshal(v)
				call.Fields[k] = string(b)
			}
		}
	default:
		if err := r.ParseForm(); err != nil {
			return err
		}
		for k, v := range r.Form {
			call.Fields[k] = v[0]
		}
	}
	return nil
}

// getUpdates forgets updates below offset (confirmed) and long-polls up to
// timeout seconds for the rest. A newer getUpdates ends a waiting one with
// 409, as Telegram does when two instances poll.
func (s *Server) getUpdates(r *http.Request, call Call) (any, *apiError) {
	offset, _ := strconv.ParseInt(call.Fields["offset"], 10, 64)
	timeout, _ := strconv.Atoi(call.Fields["timeout"])
	limit, _ := strconv.Atoi(call.Fields["limit"])
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()
	s.mu.Lock()
	if s.hookURL != "" {
		s.mu.Unlock()
		return nil, &apiError{code: 409, description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}
	}
	s.pollGen++
	gen := s.pollGen
	s.polling++
	s.changedLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.polling--
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		if s.pollGen != gen {
			s.mu.Unlock()
			return nil, &apiError{code: 409, description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}
		}
		var out []json.RawMessage
		kept := []queued{}
		for _, q := range s.queue {
			switch {
			case len(out) == limit:
				kept = append(kept, q)
			case q.again:
				out = append(out, q.raw) // sent once, then forgotten
			case offset > 0 && q.id < offset:
				// confirmed: gone for good
			default:
				out = append(out, q.raw)
				kept = append(kept, q)
			}
		}
		s.queue = kept
		wait := s.changed
		s.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-wait:
		case <-deadline.C:
			return []any{}, nil
		case <-r.Context().Done():
			return []any{}, nil
		case <-s.done:
			return []any{}, nil
		}
	}
}

// handle serves every method but getUpdates; s.mu is held.
func (s *Server) handle(c Call) (any, *apiError) {
	f := c.Fields
	switch c.Method {
	case "getMe":
		return s.botUser(), nil
	case "sendMessage":
		chat, thread, err := chatThread(f)
		if err != nil {
			return nil, err
		}
		if err := checkText(f["text"], f["parse_mode"]); err != nil {
			return nil, err
		}
		markup, err := checkMarkup(f["reply_markup"])
		if err != nil {
			return nil, err
		}
		var rp struct {
			MessageID int  `json:"message_id"`
			Allow     bool `json:"allow_sending_without_reply"`
		}
		if raw := f["reply_parameters"]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &rp); err != nil {
				return nil, badRequest("can't parse reply parameters JSON object")
			}
			if s.message(chat, rp.MessageID) == nil && !rp.Allow {
				return nil, badRequest("message to be replied not found")
			}
		}
		m := &Message{Chat: chat, ID: len(s.messages[chat]) + 1, Thread: thread, Text: f["text"], Markup: markup, ReplyTo: rp.MessageID}
		s.messages[chat] = append(s.messages[chat], m)
		return s.wireMessage(m), nil
	case "editMessageText":
		if f["inline_message_id"] != "" {
			return nil, badRequest("inline messages are not supported by this fake")
		}
		chat, _, err := chatThread(f)
		if err != nil {
			return nil, err
		}
		id, _ := strconv.Atoi(f["message_id"])
		m := s.message(chat, id)
		if m == nil || m.Document != nil {
			return nil, badRequest("message to edit not found")
		}
		if err := checkText(f["text"], f["parse_mode"]); err != nil {
			return nil, err
		}
		markup, err := checkMarkup(f["reply_markup"])
		if err != nil {
			return nil, err
		}
		if m.Text == f["text"] && m.Markup == markup {
			return nil, badRequest("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
		}
		m.Text, m.Markup = f["text"], markup
		m.Edits++
		return s.wireMessage(m), nil
	case "sendDocument", "sendPhoto":
		chat, thread, err := chatThread(f)
		if err != nil {
			return nil, err
		}
		field := "document"
		if c.Method == "sendPhoto" {
			field = "photo"
		}
		content, ok := c.Files[field]
		if !ok {
			return nil, badRequest("there is no %s in the request", field)
		}
		if field == "photo" {
			// https://core.telegram.org/bots/api#sendphoto: "The photo must
			// be at most 10 MB in size. The photo's width and height must
			// not exceed 10000 in total. Width and height ratio must be at
			// most 20." A file that is no image is refused outright.
			cfg, _, err := image.DecodeConfig(bytes.NewReader(content))
			switch {
			case err != nil:
				return nil, badRequest("IMAGE_PROCESS_FAILED")
			case len(content) > 10<<20 || cfg.Width+cfg.Height > 10000 ||
				cfg.Width > 20*cfg.Height || cfg.Height > 20*cfg.Width:
				return nil, badRequest("PHOTO_INVALID_DIMENSIONS")
			}
		}
		if len(utf16.Encode([]rune(f["caption"]))) > 1024 {
			return nil, badRequest("message caption is too long")
		}
		var rp struct {
			MessageID int `json:"message_id"`
		}
		if raw := f["reply_parameters"]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &rp); err != nil {
				return nil, badRequest("can't parse reply parameters JSON object")
			}
		}
		m := &Message{Chat: chat, ID: len(s.messages[chat]) + 1, Thread: thread, Document: &Document{
			Name: f[field+".filename"], Content: content, Caption: f["caption"], ReplyTo: rp.MessageID, Photo: field == "photo"}}
		s.messages[chat] = append(s.messages[chat], m)
		return s.wireMessage(m), nil
	case "answerCallbackQuery":
		id := f["callback_query_id"]
		if answered, issued := s.queries[id]; !issued || answered {
			return nil, badRequest("query is too old and response timeout expired or query ID is invalid")
		}
		if len(utf16.Encode([]rune(f["text"]))) > 200 {
			return nil, badRequest("MESSAGE_TOO_LONG")
		}
		s.queries[id] = true
		return true, nil
	case "setMyCommands":
		var cmds []models.BotCommand
		if err := json.Unmarshal([]byte(f["commands"]), &cmds); err != nil {
			return nil, badRequest("can't parse commands JSON object")
		}
		if len(cmds) > 100 {
			return nil, badRequest("too many commands")
		}
		for _, cmd := range cmds {
			if !commandName.MatchString(cmd.Command) {
				return nil, badRequest("BOT_COMMAND_INVALID")
			}
			if n := len([]rune(cmd.Description)); n == 0 || n > 256 {
				return nil, badRequest("BOT_COMMAND_DESCRIPTION_INVALID")
			}
		}
		s.commands = cmds
		return true, nil
	case "setWebhook":
		if f["url"] == "" {
			s.hookURL, s.hookSecret = "", ""
			return true, nil
		}
		if sec := f["secret_token"]; sec != "" && !secretToken.MatchString(sec) {
			return nil, badRequest("secret token contains unallowed characters")
		}
		s.hookURL, s.hookSecret = f["url"], f["secret_token"]
		return true, nil
	case "deleteWebhook":
		s.hookURL, s.hookSecret = "", ""
		if f["drop_pending_updates"] == "true" {
			s.queue = nil
		}
		return true, nil
	case "getWebhookInfo":
		return map[string]any{"url": s.hookURL, "has_custom_certificate": false, "pending_update_count": len(s.queue)}, nil
	}
	return nil, &apiError{code: 404, description: "Not Found"}
}

var (
	commandName = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)
	secretToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)
)

func chatThread(f map[string]string) (int64, int, *apiError) {
	chat, err := strconv.ParseInt(f["chat_id"], 10, 64)
	if err != nil || chat == 0 {
		return 0, 0, badRequest("chat not found")
	}
	thread := 0
	if t := f["message_thread_id"]; t != "" {
		if thread, err = strconv.Atoi(t); err != nil || thread <= 0 {
			return 0, 0, badRequest("message thread not found")
		}
	}
	return chat, thread, nil
}

// checkText applies Telegram's rules for a message text.
func checkText(text, parseMode string) *apiError {
	plain := text
	if strings.EqualFold(parseMode, "HTML") {
		var err error
		if plain, err = ParseHTML(text); err != nil {
			return badRequest("can't parse entities: %v", err)
		}
	} else if parseMode != "" {
		return badRequest("parse_mode %q is not supported by this fake", parseMode)
	}
	if strings.TrimSpace(plain) == "" {
		return badRequest("message text is empty")
	}
	if len(utf16.Encode([]rune(plain))) > 4096 {
		return badRequest("message is too long")
	}
	return nil
}

// htmlTags are the tags of Telegram's HTML parse mode.
var htmlTags = map[string]bool{"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true, "s": true,
	"strike": true, "del": true, "span": true, "tg-spoiler": true, "a": true, "code": true, "pre": true,
	"blockquote": true, "tg-emoji": true}

var entity = regexp.MustCompile(`^&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});`)

// ParseHTML checks text as Telegram's HTML parse mode does (supported tags,
// properly nested; every <, > and & part of a tag or an entity) and returns
// the text a reader sees.
func ParseHTML(text string) (string, error) {
	var out strings.Builder
	var open []string
	for i := 0; i < len(text); {
		switch c := text[i]; c {
		case '<':
			end := strings.IndexByte(text[i:], '>')
			if end < 0 {
				return "", fmt.Errorf("unclosed start tag at byte offset %d", i)
			}
			tag := text[i+1 : i+end]
			if name, closing := strings.CutPrefix(tag, "/"); closing {
				if len(open) == 0 || open[len(open)-1] != name {
					return "", fmt.Errorf("can't find start tag corresponding to end tag %q at byte offset %d", name, i)
				}
				open = open[:len(open)-1]
			} else {
				name, _, _ := strings.Cut(tag, " ")
				if !htmlTags[name] {
					return "", fmt.Errorf("unsupported start tag %q at byte offset %d", name, i)
				}
				open = append(open, name)
			}
			i += end + 1
		case '>':
			return "", fmt.Errorf("unexpected '>' at byte offset %d", i)
		case '&':
			m := entity.FindStringSubmatch(text[i:])
			if m == nil {
				return "", fmt.Errorf("unsupported HTML entity at byte offset %d", i)
			}
			switch m[1] {
			case "lt":
				out.WriteByte('<')
			case "gt":
				out.WriteByte('>')
			case "amp":
				out.WriteByte('&')
			case "quot":
				out.WriteByte('"')
			default:
				out.WriteByte('?') // a numeric entity is one character
			}
			i += len(m[0])
		default:
			out.WriteByte(c)
			i++
		}
	}
	if len(open) > 0 {
		return "", fmt.Errorf("can't find end tag corresponding to start tag %q", open[len(open)-1])
	}
	return out.String(), nil
}

// checkMarkup applies Telegram's rules for an inline keyboard and returns it
// in canonical form ("" for none or empty) to compare edits by.
func checkMarkup(raw string) (string, *apiError) {
	if raw == "" {
		return "", nil
	}
	var kb struct {
		InlineKeyboard [][]map[string]json.RawMessage `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(raw), &kb); err != nil {
		return "", badRequest("can't parse reply keyboard markup JSON object")
	}
	n := 0
	for _, row := range kb.InlineKeyboard {
		for _, b := range row {
			n++
			var text string
			if json.Unmarshal(b["text"], &text) != nil || text == "" {
				return "", badRequest("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
			}
			if raw, ok := b["copy_text"]; ok {
				var ct struct {
					Text string `json:"text"`
				}
				if json.Unmarshal(raw, &ct) != nil || ct.Text == "" {
					return "", badRequest("BUTTON_COPY_TEXT_INVALID")
				}
			}
			if raw, ok := b["style"]; ok {
				var style string
				_ = json.Unmarshal(raw, &style)
				if style != "danger" && style != "success" && style != "primary" {
					return "", badRequest("BUTTON_STYLE_INVALID")
				}
			}
			kinds := 0
			for k := range b {
				if k != "text" && k != "style" && k != "icon_custom_emoji_id" {
					kinds++
				}
			}
			if kinds != 1 {
				return "", badRequest("can't parse inline keyboard button: exactly one of the optional fields must be used")
			}
			if raw, ok := b["callback_data"]; ok {
				var data string
				if json.Unmarshal(raw, &data) != nil || len(data) == 0 || len(data) > 64 {
					return "", badRequest("BUTTON_DATA_INVALID")
				}
			}
		}
	}
	if n == 0 {
		return "", nil
	}
	canon, _ := json.Marshal(kb) // maps marshal with sorted keys
	return string(canon), nil
}
