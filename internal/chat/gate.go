// Package chat is what the chat adapters (shell, telegram, slack) share and
// must not write three times: the gate every inbound event passes, and the
// text helpers their renderers use. It sits beside the adapters in the import
// direction; an adapter may import it, never another adapter.
package chat

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

// Deduper remembers inbound keys durably (sqlite.DB implements it), so an
// event a platform delivers again (a retry after a slow answer, a
// reconnect) never counts twice.
type Deduper interface {
	// FirstSeen records key and reports whether it was new.
	FirstSeen(ctx context.Context, key string) (bool, error)
}

// HandleTimeout bounds the handling of one inbound request. Handling goes
// on past a shutdown (a command must not be cut in half) but not forever.
const HandleTimeout = 30 * time.Second

// RefusalEvery limits what a refused chat is told: once a minute, so a
// hostile group cannot make the bot spam. Every refusal is still audited.
const RefusalEvery = time.Minute

// keepTold bounds the refusal memory: past it, entries older than
// RefusalEvery (which would allow telling again anyway) are dropped.
const keepTold = 1000

// Gate admits inbound events in one order on every platform: dedupe, then
// the allow-list, then a rate-limited refusal, then the audit of it. A
// redelivered event from a refused chat is therefore neither audited nor
// answered twice.
type Gate struct {
	dedupe Deduper
	denied func(ctx context.Context, identity, chat, reason string)
	log    *slog.Logger
	name   string
	now    func() time.Time

	mu   sync.Mutex
	told map[string]time.Time // chat id -> when it was last told it is refused
}

// NewGate returns a Gate for the adapter called name ("slack"). denied, if
// set, hears every refusal (the caller audits it); log may be nil.
func NewGate(name string, dedupe Deduper, denied func(ctx context.Context, identity, chat, reason string), log *slog.Logger) *Gate {
	if log == nil {
		log = slog.Default()
	}
	return &Gate{dedupe: dedupe, denied: denied, log: log, name: name, now: time.Now, told: map[string]time.Time{}}
}

// Inbound is one event at the door.
type Inbound struct {
	// Key names this event, the same on every delivery of it.
	Key string
	// Identity is the platform's verified user ("slack:U123").
	Identity string
	Chat     notify.Channel
	// Refusal says why this chat may not use the bot; empty: it may.
	Refusal string
}

// Verdict is what to do with an Inbound.
type Verdict int

const (
	// Drop: delivered before; it was handled (or refused) then.
	Drop Verdict = iota
	// Retry: the dedupe could not be asked; handle nothing (running a
	// deploy twice is worse than asking to retry) and say so if the
	// platform lets the person see it.
	Retry
	// Pass: handle it.
	Pass
	// Refused: audited; the chat was told recently, say nothing.
	Refused
	// RefusedTell: audited; tell the chat it may not use the bot.
	RefusedTell
)

// Check runs the gate over in.
func (g *Gate) Check(ctx context.Context, in Inbound) Verdict {
	fresh, err := g.dedupe.FirstSeen(ctx, in.Key)
	if err != nil {
		g.log.Error(g.name+": request not handled: dedupe failed", "key", in.Key, "err", err)
		return Retry
	}
	if !fresh {
		g.log.Info(g.name+": duplicate delivery ignored", "key", in.Key)
		return Drop
	}
	if in.Refusal == "" {
		return Pass
	}
	g.Deny(ctx, in.Identity, in.Chat.String(), in.Refusal)
	if g.tell(in.Chat.ID) {
		return RefusedTell
	}
	return Refused
}

// Deny logs and reports a refusal made at the door (not by the dispatcher).
func (g *Gate) Deny(ctx context.Context, identity, chat, reason string) {
	g.log.Warn(g.name+": request refused", "identity", identity, "chat", chat, "reason", reason)
	if g.denied != nil {
		g.denied(ctx, identity, chat, reason)
	}
}

// tell reports whether chat may be told of a refusal now, and notes it.
func (g *Gate) tell(chat string) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.told[chat]; ok && now.Sub(last) < RefusalEvery {
		return false
	}
	if len(g.told) >= keepTold {
		for id, t := range g.told {
			if now.Sub(t) >= RefusalEvery {
				delete(g.told, id)
			}
		}
	}
	g.told[chat] = now
	return true
}
