package chat

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/commands"
)

// Redactor takes an adapter's secrets (tokens, signing secrets) out of any
// text before it reaches a log or an error: a library error may quote a
// request URL or body that carries one.
type Redactor struct{ secrets []string }

// NewRedactor redacts the non-empty secrets.
func NewRedactor(secrets ...string) Redactor {
	var r Redactor
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
	return r
}

// Text is s with every secret replaced by "[redacted]".
func (r Redactor) Text(s string) string {
	for _, t := range r.secrets {
		s = strings.ReplaceAll(s, t, "[redacted]")
	}
	return s
}

// Err is err with a redacted message; errors.Is and As still see the
// original. nil stays nil, and an error quoting no secret is returned as is.
func (r Redactor) Err(err error) error {
	if err == nil {
		return nil
	}
	if msg := r.Text(err.Error()); msg != err.Error() {
		return &redacted{msg: msg, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Retry calls f until it succeeds or ctx ends (both nil), backing off from
// 100 ms to 30 s, or until fatal says an error is for good (a token the
// platform refuses) by returning what to report instead. Errors are
// redacted before fatal or the log sees them. A bot that gave up on a
// network blip at boot would run on deaf.
func (r Redactor) Retry(ctx context.Context, log *slog.Logger, what string, f func() error, fatal func(error) error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		err = r.Err(err)
		if ferr := fatal(err); ferr != nil {
			return ferr
		}
		log.Warn(what+" failed; retrying", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// Slot holds where an adapter's requests go and what the platform says the
// bot is called (its user id or @name, known once Run has asked). The
// dispatcher needs the adapter's Sender before it exists, so the handler is
// set late; both are read from the adapter's goroutines.
type Slot struct {
	mu   sync.RWMutex
	h    commands.Handler
	self string
}

// SetHandler sets where requests go.
func (s *Slot) SetHandler(h commands.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h = h
}

// SetSelf records the bot's own name on the platform.
func (s *Slot) SetSelf(self string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.self = self
}

// Current is the handler (nil before it is set) and the bot's own name.
func (s *Slot) Current() (commands.Handler, string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.h, s.self
}
