package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

// A plan that fails (a stored record it cannot read) rolls back the
// delivery key too: the source's retry is processed, not a "duplicate".
func TestIngestPlanErrorRollsBackTheKey(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	broken := errors.New("stored record unreadable")
	if _, err := db.Ingest(ctx, "d1", "p1", func(*notify.Tracked) (*notify.Tracked, []notify.Post, error) {
		return nil, nil, broken
	}); !errors.Is(err, broken) {
		t.Fatalf("err %v", err)
	}
	planned := false
	dup, err := db.Ingest(ctx, "d1", "p1", func(prev *notify.Tracked) (*notify.Tracked, []notify.Post, error) {
		planned = prev == nil
		return &notify.Tracked{Topic: "p1", Project: "acme/web", SHA: "abc", Status: "running", Event: []byte(`{}`)}, nil, nil
	})
	if err != nil || dup || !planned {
		t.Fatalf("retry after a failed plan: dup %v planned %v err %v", dup, planned, err)
	}
}

// The same card again is no new version: the relay has nothing to send,
// so no edit that changes nothing spends the chat's rate limit. A changed
// card is a new version again.
func TestEnqueueSkipsAnIdenticalMessage(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	ch := notify.Channel{Platform: "slack", ID: "C1"}
	post := func(title string) {
		t.Helper()
		if err := db.Enqueue(ctx, notify.Post{Topic: "p1", Channel: ch, Message: notify.Message{Title: title}}); err != nil {
			t.Fatal(err)
		}
	}
	due := func() []notify.Delivery {
		t.Helper()
		d, err := db.Due(ctx, time.Now().Add(time.Second), 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	post("running")
	d := due()
	if len(d) != 1 || d[0].Version != 1 {
		t.Fatalf("due %+v", d)
	}
	if err := db.SaveRef(ctx, d[0].ID, notify.Ref{Channel: ch, ID: "1.1"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Delivered(ctx, d[0].ID, 1); err != nil {
		t.Fatal(err)
	}
	post("running")
	if d := due(); len(d) != 0 {
		t.Fatalf("an identical card was queued again: %+v", d)
	}
	post("passed")
	if d := due(); len(d) != 1 || d[0].Version != 2 || d[0].Message.Title != "passed" || d[0].Ref == nil {
		t.Fatalf("a changed card: %+v", d)
	}
}
