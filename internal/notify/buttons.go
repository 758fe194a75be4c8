package notify

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// ButtonPrefix starts the data of every button shipbot posts: "b:" and a
// random id. What the button does stays on the server, bound to the chat and
// message it was posted on, so a press means exactly what its card shows:
// data copied from one card and replayed on another is refused.
const ButtonPrefix = "b:"

// BoundButton is the server-side record of one posted button.
type BoundButton struct {
	ID string
	// Data is what the button does ("approve:ID", "unlock:12"…), the value
	// a Message's Button carried before binding.
	Data string
	// Chat is the Channel (platform and id, no thread) the button is in.
	Chat string
	// Message is the ref id of the message carrying it; "" until the
	// message is posted and the platform has named it.
	Message string
	Created time.Time
}

// ErrNoButton is what ButtonStore.Button answers for an id it never issued.
var ErrNoButton = errors.New("no such button")

// ButtonStore keeps bound buttons (the sqlite store does; MemoryButtons in
// memory).
type ButtonStore interface {
	// BindButton stores b and returns its id. For a message already posted
	// (b.Message set), a button with the same chat, message and data keeps
	// the id it has, so re-editing a card does not mint new ids.
	BindButton(ctx context.Context, b BoundButton) (string, error)
	// PostedButtons records that ids went out on message in chat.
	PostedButtons(ctx context.Context, ids []string, chat, message string) error
	// Button returns the button id, or ErrNoButton.
	Button(ctx context.Context, id string) (BoundButton, error)
}

// Binder is a Sender that binds every button of a message before it goes
// out, replacing its data with ButtonPrefix and a fresh random id.
type Binder struct {
	next  Sender
	store ButtonStore
	log   *slog.Logger
	now   func() time.Time
}

var _ Sender = (*Binder)(nil)

// NewBinder returns a Binder sending through next.
func NewBinder(next Sender, store ButtonStore, log *slog.Logger) *Binder {
	if log == nil {
		log = slog.Default()
	}
	return &Binder{next: next, store: store, log: log, now: time.Now}
}

// ChatKey is how a bound button names its chat: platform and id, without a
// thread (a press in a topic or thread is still in the same chat).
func ChatKey(ch Channel) string { return ch.Platform + ":" + ch.ID }

func newButtonID() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:])), nil
}

// bind returns m with bound buttons and the ids it used.
func (b *Binder) bind(ctx context.Context, ch Channel, message string, m Message) (Message, []string, error) {
	if len(m.Buttons) == 0 {
		return m, nil, nil
	}
	out := m
	out.Buttons = make([]Button, len(m.Buttons))
	ids := make([]string, 0, len(m.Buttons))
	for i, btn := range m.Buttons {
		id, err := newButtonID()
		if err != nil {
			return m, nil, err
		}
		id, err = b.store.BindButton(ctx, BoundButton{ID: id, Data: btn.Data, Chat: ChatKey(ch), Message: message, Created: b.now()})
		if err != nil {
			return m, nil, err
		}
		btn.Data = ButtonPrefix + id
		out.Buttons[i] = btn
		ids = append(ids, id)
	}
	return out, ids, nil
}

// Send binds m's buttons to ch, posts it, then binds them to the message.
func (b *Binder) Send(ctx context.Context, ch Channel, m Message) (Ref, error) {
	bound, ids, err := b.bind(ctx, ch, "", m)
	if err != nil {
		return Ref{}, err
	}
	ref, err := b.next.Send(ctx, ch, bound)
	if err != nil || len(ids) == 0 {
		return ref, err
	}
	// Slack names a DM by its conversation id only in the answer, so the
	// chat is taken from the ref.
	if perr := b.store.PostedButtons(ctx, ids, ChatKey(ref.Channel), ref.ID); perr != nil {
		// The message is out; its buttons are refused until the next edit
		// binds them again. Failing Send now would post it twice.
		b.log.Warn("buttons not bound to their message", "chat", ref.Channel.String(), "err", perr)
	}
	return ref, nil
}

// Edit binds m's buttons to ref's message and edits it.
func (b *Binder) Edit(ctx context.Context, ref Ref, m Message) error {
	bound, _, err := b.bind(ctx, ref.Channel, ref.ID, m)
	if err != nil {
		return err
	}
	return b.next.Edit(ctx, ref, bound)
}

// MemoryButtons is a ButtonStore in memory, for tests and the shell.
type MemoryButtons struct {
	mu   sync.Mutex
	byID map[string]BoundButton
}

var _ ButtonStore = (*MemoryButtons)(nil)

// NewMemoryButtons returns an empty MemoryButtons.
func NewMemoryButtons() *MemoryButtons { return &MemoryButtons{byID: map[string]BoundButton{}} }

func (s *MemoryButtons) BindButton(_ context.Context, b BoundButton) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Message != "" {
		for id, x := range s.byID {
			if x.Chat == b.Chat && x.Message == b.Message && x.Data == b.Data {
				return id, nil
			}
		}
	}
	s.byID[b.ID] = b
	return b.ID, nil
}

func (s *MemoryButtons) PostedButtons(_ context.Context, ids []string, chat, message string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if b, ok := s.byID[id]; ok {
			b.Chat, b.Message = chat, message
			s.byID[id] = b
		}
	}
	return nil
}

func (s *MemoryButtons) Button(_ context.Context, id string) (BoundButton, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.byID[id]
	if !ok {
		return BoundButton{}, ErrNoButton
	}
	return b, nil
}
