package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

// dedupe is a Deduper in memory with an injectable failure.
type dedupe struct {
	mu   sync.Mutex
	seen map[string]bool
	fail error
}

func (d *dedupe) FirstSeen(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return false, d.fail
	}
	if d.seen[key] {
		return false, nil
	}
	d.seen[key] = true
	return true, nil
}

func TestGateOrder(t *testing.T) {
	ctx := context.Background()
	var denials []string
	d := &dedupe{seen: map[string]bool{}}
	g := NewGate("test", d, func(_ context.Context, identity, chat, reason string) {
		denials = append(denials, identity+" "+chat+" "+reason)
	}, nil)
	ch := notify.Channel{Platform: "slack", ID: "C0OUT"}
	out := Inbound{Key: "e1", Identity: "slack:U1", Chat: ch, Refusal: "channel not allowed"}
	if v := g.Check(ctx, out); v != RefusedTell {
		t.Fatalf("first refusal: %v", v)
	}
	// The same event again is a redelivery: dropped before the allow-list,
	// so it is not audited twice.
	if v := g.Check(ctx, out); v != Drop || len(denials) != 1 {
		t.Fatalf("redelivery: %v, denials %v", v, denials)
	}
	// Another event from that chat within the minute: audited, not told.
	out.Key = "e2"
	if v := g.Check(ctx, out); v != Refused || len(denials) != 2 {
		t.Fatalf("second refusal: %v, denials %v", v, denials)
	}
	if v := g.Check(ctx, Inbound{Key: "e3", Identity: "slack:U1", Chat: notify.Channel{Platform: "slack", ID: "C0IN"}}); v != Pass {
		t.Fatalf("allowed chat: %v", v)
	}
	d.fail = errors.New("disk full")
	if v := g.Check(ctx, Inbound{Key: "e4", Chat: ch, Refusal: "x"}); v != Retry || len(denials) != 2 {
		t.Fatalf("dedupe failure: %v, denials %v", v, denials)
	}
}

// The refusal memory does not grow without bound: once full, chats told
// more than a minute ago are forgotten.
func TestGateForgetsOldRefusals(t *testing.T) {
	ctx := context.Background()
	g := NewGate("test", &dedupe{seen: map[string]bool{}}, nil, nil)
	now := time.Unix(1_700_000_000, 0)
	g.now = func() time.Time { return now }
	for i := range keepTold {
		g.Check(ctx, Inbound{Key: fmt.Sprint("a", i), Chat: notify.Channel{ID: fmt.Sprint("C", i)}, Refusal: "no"})
	}
	now = now.Add(RefusalEvery)
	for i := range 10 {
		g.Check(ctx, Inbound{Key: fmt.Sprint("b", i), Chat: notify.Channel{ID: fmt.Sprint("D", i)}, Refusal: "no"})
	}
	if n := len(g.told); n != 10 {
		t.Fatalf("%d chats remembered, want the 10 recent ones", n)
	}
}
