package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// openDB opens a fresh database in a directory that does not exist yet.
func openDB(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "shipbot.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

var (
	alice = deploy.Who{User: "alice", Identity: "shell:alice", Chat: "shell:ops"}
	bob   = deploy.Who{User: "bob", Identity: "shell:bob", Chat: "shell:ops"}
)

func intentEv(who deploy.Who, cmd, app, env string) *audit.Event {
	return &audit.Event{Kind: audit.KindIntent, Actor: who.User, Identity: who.Identity, Chat: who.Chat,
		Command: cmd, Args: []string{app, env}, App: app, Env: env, Decision: "allowed"}
}

func outcomeEv(in *audit.Event, text string) *audit.Event {
	return &audit.Event{Kind: audit.KindOutcome, Actor: in.Actor, Identity: in.Identity, Chat: in.Chat,
		Command: in.Command, App: in.App, Env: in.Env, Decision: "allowed", Closes: in, Outcome: text}
}

func queuedJob(app, env string, who deploy.Who) *deploy.Job {
	return &deploy.Job{App: app, Env: env, Action: deploy.ActionDeploy, Ref: "main", State: deploy.Queued, RequestedBy: who}
}

// hold blocks the writer goroutine inside a write until release is called,
// so a test can queue requests that the writer then takes as one batch.
func hold(t *testing.T, db *DB) (release func()) {
	t.Helper()
	entered, rel := make(chan struct{}), make(chan struct{})
	go db.write(context.Background(), func(*writer) error {
		close(entered)
		<-rel
		return nil
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("writer never ran the holding write")
	}
	return func() { close(rel) }
}

// waitQueued polls until n requests wait in the writer's queue.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(db.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(db.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// async runs a write in the background and returns its result channel once
// the write is queued behind the ones before it.
func async(t *testing.T, db *DB, queued int, f func() error) <-chan error {
	t.Helper()
	c := make(chan error, 1)
	go func() { c <- f() }()
	waitQueued(t, db, queued)
	return c
}

func result(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("write never answered")
		return nil
	}
}

// rawDB opens the file as anyone holding it could, without shipbot.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func mustVerify(t *testing.T, db *DB, want int64) {
	t.Helper()
	n, err := db.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if n != want {
		t.Fatalf("verified %d rows, want %d", n, want)
	}
}
