package deploy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// A manual lock is reminded once in its last quarter and released at its
// end with an audit intent and outcome; a job lock and a lock without
// expiry are never touched.
func TestLockExpiry(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	l, err := r.engine.LockFor(ctx, "demo", "staging", "db migration", alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if l.Chat != alice.Chat || !l.Expires.Equal(l.Since.Add(time.Hour)) {
		t.Fatalf("lock = %+v", l)
	}
	if _, err := r.engine.LockFor(ctx, "demo", "qa", "forever", bob, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.store.AcquireLock(ctx, deploy.Lock{App: "demo", Env: "production", Owner: "carol", Reason: "deploy job", JobID: 7,
		Since: r.clock().Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	tick := func() deploy.LockTick {
		t.Helper()
		got, err := r.engine.TickLocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := tick(); len(got.Due) != 0 || len(got.Released) != 0 {
		t.Fatalf("fresh lock: %+v", got)
	}
	r.advance(50 * time.Minute) // within the last 10 minutes
	got := tick()
	if len(got.Due) != 1 || got.Due[0].Env != "staging" || len(got.Released) != 0 {
		t.Fatalf("near the end: %+v", got)
	}
	if err := r.engine.MarkReminded(ctx, got.Due[0]); err != nil {
		t.Fatal(err)
	}
	if got := tick(); len(got.Due) != 0 {
		t.Fatalf("reminded twice: %+v", got)
	}

	// Extending moves the end and asks for a new reminder; only the holder
	// (or force) may.
	if _, err := r.engine.ExtendLock(ctx, "demo", "staging", bob, time.Hour, false); !errors.As(err, new(*deploy.Refusal)) {
		t.Fatalf("bob extended alice's lock: %v", err)
	}
	ext, err := r.engine.ExtendLock(ctx, "demo", "staging", alice, time.Hour, false)
	if err != nil || !ext.Expires.Equal(l.Expires.Add(time.Hour)) || ext.Reminded {
		t.Fatalf("extend = %+v, %v", ext, err)
	}
	if _, err := r.engine.ExtendLock(ctx, "demo", "qa", bob, time.Hour, false); !errors.As(err, new(*deploy.Refusal)) {
		t.Fatalf("a lock without expiry was extended: %v", err)
	}

	r.advance(2 * time.Hour)
	before := len(r.store.Events())
	got = tick()
	if len(got.Released) != 1 || got.Released[0].Env != "staging" {
		t.Fatalf("after the end: %+v", got)
	}
	if _, err := r.store.Lock(ctx, "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("expired lock still held: %v", err)
	}
	for _, env := range []string{"qa", "production"} {
		if _, err := r.store.Lock(ctx, "demo", env); err != nil {
			t.Fatalf("%s lock gone: %v", env, err)
		}
	}
	evs := r.store.Events()[before:]
	if len(evs) != 2 || evs[0].Kind != audit.KindIntent || evs[1].Kind != audit.KindOutcome ||
		evs[1].Actor != deploy.SchedulerUser || evs[1].Command != "unlock" {
		t.Fatalf("expiry audit rows = %+v", evs)
	}
	if got := tick(); len(got.Released) != 0 {
		t.Fatalf("released twice: %+v", got)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Second: "1s", 90 * time.Second: "1m30s", 2 * time.Hour: "2h",
		time.Hour + 3*time.Second: "1h3s", 72 * time.Hour: "3d", 0: "0s"} {
		if got := deploy.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
