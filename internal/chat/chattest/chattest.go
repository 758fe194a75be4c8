// Package chattest holds the hand-written fakes chat adapter tests share: a
// Deduper in memory with an injectable failure, a Handler that records
// requests, a recorder of refusals, and a log sink safe for concurrent use.
package chattest

import (
	"bytes"
	"context"
	"sync"

	"github.com/shipbot/shipbot/internal/commands"
)

// Dedupe is a Deduper in memory; the durable one is sqlite's FirstSeen.
type Dedupe struct {
	mu   sync.Mutex
	seen map[string]int // key -> times asked
	fail error
}

// NewDedupe returns an empty Dedupe.
func NewDedupe() *Dedupe { return &Dedupe{seen: map[string]int{}} }

// FirstSeen records key and reports whether it was new; it fails with the
// injected error, if any, recording nothing.
func (d *Dedupe) FirstSeen(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return false, d.fail
	}
	d.seen[key]++
	return d.seen[key] == 1, nil
}

// Asked is how often key was asked about.
func (d *Dedupe) Asked(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[key]
}

// Keys are the keys asked about.
func (d *Dedupe) Keys() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k := range d.seen {
		out = append(out, k)
	}
	return out
}

// SetFail makes every later call fail with err (nil heals).
func (d *Dedupe) SetFail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = err
}

// Recorder is a commands.Handler that remembers requests and answers each
// with the Reply set by SetReply (none by default).
type Recorder struct {
	mu    sync.Mutex
	reqs  []commands.Request
	reply commands.Reply
}

// SetReply sets the answer to later requests.
func (r *Recorder) SetReply(rep commands.Reply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reply = rep
}

var _ commands.Handler = (*Recorder)(nil)

// Handle records req.
func (r *Recorder) Handle(_ context.Context, req commands.Request) commands.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return r.reply
}

// Requests returns what was handled, in order.
func (r *Recorder) Requests() []commands.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]commands.Request(nil), r.reqs...)
}

// Denial is one refusal an adapter reported.
type Denial struct{ Identity, Chat, Reason string }

// Denials records an adapter's Denied calls.
type Denials struct {
	mu  sync.Mutex
	all []Denial
}

// Record has the signature of the adapters' Denied option.
func (d *Denials) Record(_ context.Context, identity, chat, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, Denial{identity, chat, reason})
}

// List returns the refusals so far.
func (d *Denials) List() []Denial {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Denial(nil), d.all...)
}

// Buffer is a log sink safe for an adapter's goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
