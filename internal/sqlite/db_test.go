package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/sqlite"
	_ "modernc.org/sqlite"
)

func open(t testing.TB) (*sqlite.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shipbot.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

var alice = deploy.Who{User: "alice", Identity: "shell:alice", Chat: "shell:terminal"}

func ev(cmd string) *audit.Event {
	return &audit.Event{Kind: audit.KindIntent, Actor: "alice", Command: cmd, Args: []string{"demo", "staging"}, App: "demo", Env: "staging"}
}

func TestJobRoundTripAndLockRules(t *testing.T) {
	db, _ := open(t)
	ctx := context.Background()
	j := &deploy.Job{App: "demo", Env: "staging", Action: deploy.ActionDeploy, Ref: "v1", State: deploy.Queued, RequestedBy: alice,
		Steps: []deploy.Step{{Name: "build", State: deploy.StepRunning}}, Output: []string{"hello"}}
	in := ev("deploy")
	if err := db.CreateJob(ctx, j, nil, in); err != nil {
		t.Fatal(err)
	}
	if j.ID == 0 || in.Seq != 1 || in.JobID != j.ID {
		t.Fatalf("ids not filled: job %d, event seq %d job %d", j.ID, in.Seq, in.JobID)
	}
	got, err := db.Job(ctx, j.ID)
	if err != nil || got.Ref != "v1" || got.Steps[0].Name != "build" || got.Output[0] != "hello" || got.RequestedBy != alice {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	l, err := db.Lock(ctx, "demo", "staging")
	if err != nil || l.JobID != j.ID || l.Owner != "alice" {
		t.Fatalf("lock with job: %+v %v", l, err)
	}
	// A second queued job on the same env is refused, naming the holder; nothing of it is stored.
	j2 := &deploy.Job{App: "demo", Env: "staging", Action: deploy.ActionDeploy, State: deploy.Queued, RequestedBy: alice}
	err = db.CreateJob(ctx, j2, nil, ev("deploy"))
	var locked *deploy.LockedError
	if !errors.As(err, &locked) || locked.Lock.JobID != j.ID {
		t.Fatalf("second job: %v", err)
	}
	if js, _ := db.Jobs(ctx, deploy.JobFilter{}); len(js) != 1 {
		t.Fatalf("refused job stored: %d jobs", len(js))
	}
	if evs, _ := db.AuditEvents(ctx, audit.Filter{}); len(evs) != 1 {
		t.Fatalf("refused job's audit row stored: %d rows", len(evs))
	}
	// CAS: from the wrong state is a conflict.
	j.State = deploy.Succeeded
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Running}); !errors.Is(err, deploy.ErrConflict) {
		t.Fatalf("CAS from wrong state: %v", err)
	}
	// Interrupted keeps the lock, a terminal state releases it.
	j.State = deploy.Interrupted
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lock(ctx, "demo", "staging"); err != nil {
		t.Fatalf("interrupted job lost its lock: %v", err)
	}
	j.State = deploy.Cancelled
	out := &audit.Event{Kind: audit.KindOutcome, Command: "deploy", IntentSeq: in.Seq, Outcome: "cancelled"}
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Interrupted}, out); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lock(ctx, "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("lock kept after terminal state: %v", err)
	}
	// A second outcome for the same intent is refused by the schema.
	dup := &audit.Event{Kind: audit.KindOutcome, Command: "deploy", IntentSeq: in.Seq}
	if err := db.Append(ctx, dup); err == nil {
		t.Fatal("second outcome for one intent accepted")
	}
	if open, _ := db.OpenIntents(ctx); len(open) != 0 {
		t.Fatalf("open intents: %+v", open)
	}
	if n, err := db.VerifyAudit(ctx); err != nil || n != 2 {
		t.Fatalf("verify: %d %v", n, err)
	}
}

func TestApprovalSingleUse(t *testing.T) {
	db, _ := open(t)
	ctx := context.Background()
	j := &deploy.Job{App: "demo", Env: "production", Action: deploy.ActionDeploy, Ref: "v2", State: deploy.AwaitingApproval, RequestedBy: alice}
	a := &deploy.Approval{ID: "abcdefghijklmnopqrstuvwx", App: "demo", Env: "production", Action: deploy.ActionDeploy, Version: "v2",
		RequestedBy: "alice", Roles: []string{"lead"}, State: deploy.ApprovalPending, Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	if err := db.CreateJob(ctx, j, a, ev("deploy")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lock(ctx, "demo", "production"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatal("awaiting job took the lock")
	}
	got, err := db.Approval(ctx, a.ID)
	if err != nil || got.JobID != j.ID || got.Roles[0] != "lead" || got.Version != "v2" {
		t.Fatalf("approval round trip %+v %v", got, err)
	}
	pend, _ := db.PendingApprovals(ctx)
	if len(pend) != 1 {
		t.Fatalf("pending %d", len(pend))
	}
	a.State, a.DecidedBy, a.Decided = deploy.ApprovalApproved, "bob", time.Now()
	j.State = deploy.Queued
	if err := db.DecideApproval(ctx, a, j); err != nil {
		t.Fatal(err)
	}
	if l, err := db.Lock(ctx, "demo", "production"); err != nil || l.JobID != j.ID {
		t.Fatalf("approval did not take the lock: %v", err)
	}
	if err := db.DecideApproval(ctx, a, j); !errors.Is(err, deploy.ErrConflict) {
		t.Fatalf("second decision: %v", err)
	}
	if _, err := db.Approval(ctx, "nosuchidnosuchidnosuchid"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("missing approval: %v", err)
	}
}

func TestManualLocksAndReleases(t *testing.T) {
	db, _ := open(t)
	ctx := context.Background()
	l := deploy.Lock{App: "demo", Env: "staging", Owner: "alice", Reason: "migration", Since: time.Now()}
	if err := db.AcquireLock(ctx, l, ev("lock")); err != nil {
		t.Fatal(err)
	}
	var locked *deploy.LockedError
	if err := db.AcquireLock(ctx, l, ev("lock")); !errors.As(err, &locked) || locked.Lock.Reason != "migration" {
		t.Fatalf("double lock: %v", err)
	}
	refuse := errors.New("not yours")
	if err := db.ReleaseLock(ctx, "demo", "staging", func(deploy.Lock) error { return refuse }, ev("unlock")); !errors.Is(err, refuse) {
		t.Fatalf("refused unlock: %v", err)
	}
	if err := db.ReleaseLock(ctx, "demo", "staging", func(deploy.Lock) error { return nil }, ev("unlock")); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseLock(ctx, "demo", "staging", func(deploy.Lock) error { return nil }); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("unlock of free env: %v", err)
	}
	for i, st := range []deploy.ReleaseState{deploy.ReleaseActive, deploy.ReleaseFailed} {
		if err := db.PutRelease(ctx, deploy.Release{App: "demo", Env: "staging", ID: fmt.Sprintf("2026112%d", i), By: "alice", State: deploy.ReleaseBuilding}); err != nil {
			t.Fatal(err)
		}
		if err := db.PutRelease(ctx, deploy.Release{App: "demo", Env: "staging", ID: fmt.Sprintf("2026112%d", i), By: "alice", State: st}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := db.Releases(ctx, "demo", "staging")
	if err != nil || len(rs) != 2 || rs[0].ID != "20261121" || rs[0].State != deploy.ReleaseFailed || rs[1].State != deploy.ReleaseActive {
		t.Fatalf("releases %+v %v", rs, err)
	}
	// The refused unlock wrote nothing: lock, lock, unlock rows only.
	if n, err := db.VerifyAudit(ctx); err != nil || n != 2 {
		t.Fatalf("audit rows %d %v", n, err)
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	db, path := open(t)
	ctx := context.Background()
	if err := db.AcquireLock(ctx, deploy.Lock{App: "demo", Env: "staging", Owner: "bob", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				in := ev("whoami")
				out := &audit.Event{Kind: audit.KindOutcome, Command: "whoami", Closes: in}
				if err := db.Append(ctx, in, out); err != nil {
					errs <- err
				}
				if out.IntentSeq != in.Seq || out.Seq != in.Seq+1 {
					errs <- fmt.Errorf("pair not linked: intent %d, outcome %d closes %d", in.Seq, out.Seq, out.IntentSeq)
				}
				// Every few writes, an operation that fails inside the same
				// group commit: it must not take the others down.
				if i%5 == 0 {
					j := &deploy.Job{App: "demo", Env: "staging", Action: deploy.ActionDeploy, State: deploy.Queued, RequestedBy: alice}
					var locked *deploy.LockedError
					if err := db.CreateJob(ctx, j, nil, ev("deploy")); !errors.As(err, &locked) {
						errs <- fmt.Errorf("job on locked env: %v", err)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n, err := db.VerifyAudit(ctx)
	if err != nil || n != 50*20*2 {
		t.Fatalf("verify: %d rows, %v", n, err)
	}
	// Reopen: the chain continues from the stored head.
	db.Close()
	db2, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	e := ev("help")
	if err := db2.Append(ctx, e); err != nil || e.Seq != n+1 {
		t.Fatalf("append after reopen: seq %d, %v", e.Seq, err)
	}
	if m, err := db2.VerifyAudit(ctx); err != nil || m != n+1 {
		t.Fatalf("verify after reopen: %d %v", m, err)
	}
}

// tamper runs SQL against the file as an attacker with the file would,
// dropping the append-only triggers first.
func tamper(t *testing.T, path string, stmts ...string) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, s := range append([]string{`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`}, stmts...) {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestTamperingIsDetected(t *testing.T) {
	cases := []struct {
		name    string
		stmt    string
		wantSeq int64
	}{
		{"update a middle row", `UPDATE audit SET outcome = 'nothing to see' WHERE seq = 4`, 4},
		{"change an actor", `UPDATE audit SET actor = 'mallory' WHERE seq = 2`, 2},
		{"delete a middle row", `DELETE FROM audit WHERE seq = 3`, 3},
		{"delete the last row", `DELETE FROM audit WHERE seq = 6`, 6},
		{"delete everything", `DELETE FROM audit`, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, path := open(t)
			ctx := context.Background()
			for i := 0; i < 3; i++ {
				in := ev("deploy")
				if err := db.Append(ctx, in, &audit.Event{Kind: audit.KindOutcome, Command: "deploy", Closes: in, Outcome: "ok"}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.VerifyAudit(ctx); err != nil {
				t.Fatal(err)
			}
			// The bot's own connection cannot change rows.
			db.Close()
			raw, _ := sql.Open("sqlite", "file:"+path)
			if _, err := raw.Exec(`UPDATE audit SET outcome = 'x' WHERE seq = 1`); err == nil {
				t.Fatal("append-only trigger did not stop an UPDATE")
			}
			raw.Close()
			tamper(t, path, tc.stmt)
			db2, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			_, err = db2.VerifyAudit(ctx)
			var ce *audit.ChainError
			if !errors.As(err, &ce) || ce.Seq != tc.wantSeq {
				t.Fatalf("verify after %s: %v, want chain error at row %d", tc.name, err, tc.wantSeq)
			}
		})
	}
}

func TestWriteAfterClose(t *testing.T) {
	db, _ := open(t)
	db.Close()
	if err := db.Append(context.Background(), ev("x")); !errors.Is(err, sqlite.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// BenchmarkAuditPair is the durable cost of one audited command: an intent
// and its outcome in one transaction, synchronous=FULL.
func BenchmarkAuditPair(b *testing.B) {
	db, _ := open(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := ev("whoami")
		if err := db.Append(ctx, in, &audit.Event{Kind: audit.KindOutcome, Command: "whoami", Closes: in}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditPairParallel shows group commit: concurrent commands share fsyncs.
func BenchmarkAuditPairParallel(b *testing.B) {
	db, _ := open(b)
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			in := ev("whoami")
			if err := db.Append(ctx, in, &audit.Event{Kind: audit.KindOutcome, Command: "whoami", Closes: in}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
