// Package telegramtest is an in-process fake of the Telegram Bot API for
// tests: it speaks the real wire format (multipart/form-data requests whose
// nested values, like reply_markup, are JSON strings; {"ok":…} answers) and
// can be told to fail methods with 429 + retry_after or 5xx.
package telegramtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is one request the fake received.
type Call struct {
	Method string
	Fields map[string]string // form values (reply_markup stays a JSON string)
	Files  map[string][]byte // uploaded files by field name
}

// Server is the fake Bot API.
type Server struct {
	*httptest.Server
	Token string

	mu       sync.Mutex
	calls    []Call
	nextID   int
	texts    map[string]string // "chat/message" -> current text+markup, for "not modified"
	failures map[string][]failure
	queue    []queued
	offset   int64         // updates below it were confirmed by the client
	arrived  chan struct{} // closed and replaced when an update is pushed
}

type failure struct {
	code       int
	retryAfter int
}

// Start serves the fake on loopback until the test ends.
func Start(t testing.TB, token string) *Server {
	s := &Server{Token: token, texts: map[string]string{}, failures: map[string][]failure{}, arrived: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

type queued struct {
	id    int64
	raw   json.RawMessage
	again bool // a redelivery: sent even if its id was confirmed
}

// Push queues an update for getUpdates. Like the real API, an update whose
// id is below the offset a client has sent (confirmed) is not delivered.
func (s *Server) Push(update any) { s.push(update, false) }

// Redeliver queues an update that is delivered even if already confirmed,
// as happens when Telegram retries after the bot crashed mid-update.
func (s *Server) Redeliver(update any) { s.push(update, true) }

func (s *Server) push(update any, again bool) {
	b, err := json.Marshal(update)
	if err != nil {
		panic(err)
	}
	var head struct {
		ID int64 `json:"update_id"`
	}
	_ = json.Unmarshal(b, &head)
	s.mu.Lock()
	s.queue = append(s.queue, queued{id: head.ID, raw: b, again: again})
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
}

// getUpdates long-polls: it answers at once when updates are queued, else
// waits up to the request's timeout for one.
func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request, offset int64, timeout int) {
	deadline := time.After(time.Duration(timeout) * time.Second)
	for {
		s.mu.Lock()
		if offset > s.offset {
			s.offset = offset
		}
		var out []json.RawMessage
		for _, q := range s.queue {
			if q.again || q.id >= s.offset {
				out = append(out, q.raw)
			}
		}
		s.queue = nil
		if len(out) > 0 {
			s.mu.Unlock()
			reply(w, 200, map[string]any{"ok": true, "result": out})
			return
		}
		wait := s.arrived
		s.mu.Unlock()
		select {
		case <-wait:
		case <-deadline:
			reply(w, 200, map[string]any{"ok": true, "result": []any{}})
			return
		case <-r.Context().Done():
			return
		}
	}
}

// FailNext makes the next n calls of method fail with code (429 carries retryAfter seconds).
func (s *Server) FailNext(method string, n, code, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], failure{code: code, retryAfter: retryAfter})
	}
}

// Calls returns the calls of method ("" = all).
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

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/bot" + s.Token + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		reply(w, 401, map[string]any{"ok": false, "error_code": 401, "description": "Unauthorized"})
		return
	}
	method := strings.TrimPrefix(r.URL.Path, prefix)
	call := Call{Method: method, Fields: map[string]string{}, Files: map[string][]byte{}}
	if err := r.ParseMultipartForm(10 << 20); err != nil {
		reply(w, 400, map[string]any{"ok": false, "error_code": 400, "description": "Bad Request: " + err.Error()})
		return
	}
	for k, v := range r.MultipartForm.Value {
		call.Fields[k] = v[0]
	}
	for k, fhs := range r.MultipartForm.File {
		f, err := fhs[0].Open()
		if err == nil {
			call.Files[k], _ = io.ReadAll(f)
			f.Close()
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	if fs := s.failures[method]; len(fs) > 0 {
		f := fs[0]
		s.failures[method] = fs[1:]
		s.mu.Unlock()
		body := map[string]any{"ok": false, "error_code": f.code, "description": http.StatusText(f.code)}
		if f.code == 429 {
			body["description"] = "Too Many Requests: retry after " + itoa(f.retryAfter)
			body["parameters"] = map[string]int{"retry_after": f.retryAfter}
		}
		reply(w, f.code, body)
		return
	}
	if method == "getUpdates" {
		s.mu.Unlock()
		timeout, _ := strconv.Atoi(call.Fields["timeout"])
		offset, _ := strconv.ParseInt(call.Fields["offset"], 10, 64)
		s.getUpdates(w, r, offset, timeout)
		return
	}
	defer s.mu.Unlock()
	switch method {
	case "sendMessage", "sendDocument":
		s.nextID++
		key := call.Fields["chat_id"] + "/" + itoa(s.nextID)
		s.texts[key] = call.Fields["text"] + call.Fields["reply_markup"]
		reply(w, 200, map[string]any{"ok": true, "result": map[string]any{
			"message_id": s.nextID, "date": 0, "chat": map[string]any{"id": json.Number(call.Fields["chat_id"]), "type": "group"},
			"text": call.Fields["text"]}})
	case "editMessageText":
		key := call.Fields["chat_id"] + "/" + call.Fields["message_id"]
		now := call.Fields["text"] + call.Fields["reply_markup"]
		if s.texts[key] == now {
			reply(w, 400, map[string]any{"ok": false, "error_code": 400,
				"description": "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"})
			return
		}
		s.texts[key] = now
		reply(w, 200, map[string]any{"ok": true, "result": map[string]any{"message_id": json.Number(call.Fields["message_id"]), "date": 0,
			"chat": map[string]any{"id": json.Number(call.Fields["chat_id"]), "type": "group"}, "text": call.Fields["text"]}})
	default:
		reply(w, 200, map[string]any{"ok": true, "result": true})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
