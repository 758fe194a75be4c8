package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

func TestButtonsBindPostAndForget(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// Two buttons bound before their message is posted, then posted.
	for _, id := range []string{"stale", "edited"} {
		if _, err := db.BindButton(ctx, notify.BoundButton{ID: id, Data: "cancel:" + id, Chat: "telegram:1", Created: old}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PostedButtons(ctx, []string{"stale", "edited"}, "telegram:1", "10"); err != nil {
		t.Fatal(err)
	}
	b, err := db.Button(ctx, "edited")
	if err != nil || b.Message != "10" || b.Data != "cancel:edited" || b.Chat != "telegram:1" {
		t.Fatalf("posted button: %+v, %v", b, err)
	}

	// Re-editing the card binds the same data on the same message: the id
	// stays, and the button counts as bound now.
	now := old.Add(200 * 24 * time.Hour)
	id, err := db.BindButton(ctx, notify.BoundButton{ID: "fresh-id", Data: "cancel:edited", Chat: "telegram:1", Message: "10", Created: now})
	if err != nil || id != "edited" {
		t.Fatalf("re-bind gave %q, %v; want the button's existing id", id, err)
	}

	n, err := db.ForgetButtonsBefore(ctx, now.Add(-180*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("forgot %d buttons (%v), want the one not bound since", n, err)
	}
	if _, err := db.Button(ctx, "stale"); !errors.Is(err, notify.ErrNoButton) {
		t.Fatalf("a forgotten button answers %v, want ErrNoButton", err)
	}
	if _, err := db.Button(ctx, "edited"); err != nil {
		t.Fatalf("a card still being edited lost its button: %v", err)
	}
}
