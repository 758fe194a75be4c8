package commands_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify/notifytest"
)

// Lock reminders and expiries go into the outbox like every other message:
// a reminder that cannot be queued is not marked sent (the next tick tries
// again), one queued twice is one message, and nothing goes to the chat
// around the relay.
func TestLockNoticesGoThroughTheOutbox(t *testing.T) {
	store, chat, outbox := deploytest.NewStore(), &sender{}, notifytest.NewOutbox()
	var mu sync.Mutex
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	engine := deploy.NewEngine(deploy.Options{Store: store, Now: clock,
		Drivers: func(string, string) (deploy.Driver, bool) { return deploytest.NewDriver(), true }})
	d := commands.New(commands.Options{Engine: engine, Sender: chat, Audit: store, Notices: outbox.Enqueue,
		Policy: commands.NewPolicy(nil, nil), Catalog: commands.Catalog{"demo": {"staging": {}}},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	who := deploy.Who{User: "alice", Identity: "telegram:1", Chat: "telegram:-100"}
	if _, err := engine.LockFor(ctx, "demo", "staging", "db migration", who, time.Hour); err != nil {
		t.Fatal(err)
	}
	advance(time.Hour - time.Second) // inside the reminder lead
	outbox.SetFailEnqueue(true)
	if err := d.WatchLocks(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := store.Lock(ctx, "demo", "staging"); l == nil || l.Reminded {
		t.Fatalf("lock %+v: a reminder that was not queued must not count as sent", l)
	}
	outbox.SetFailEnqueue(false)
	for range 2 {
		if err := d.WatchLocks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rows := outbox.Rows()
	if len(rows) != 1 || rows[0].Version != 1 || !strings.HasSuffix(rows[0].Topic, ":reminder") ||
		rows[0].Channel.String() != "telegram:-100" || len(rows[0].Message.Buttons) != 2 {
		t.Fatalf("rows %+v: want one reminder with Extend and Unlock", rows)
	}
	advance(2 * time.Second)
	if err := d.WatchLocks(ctx); err != nil {
		t.Fatal(err)
	}
	rows = outbox.Rows()
	if len(rows) != 2 || !strings.HasSuffix(rows[1].Topic, ":expired") || !strings.Contains(rows[1].Message.Title, "expired") {
		t.Fatalf("rows %+v: want the expiry notice queued", rows)
	}
	if l, _ := store.Lock(ctx, "demo", "staging"); l != nil {
		t.Fatalf("lock %+v still held after its expiry", l)
	}
	if n := len(chat.sent); n != 0 {
		t.Fatalf("%d messages sent around the outbox", n)
	}
}
