package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

func TestAppendSealsAndLinks(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	in := intentEv(alice, "deploy", "demo", "staging")
	out := outcomeEv(in, "ok")
	before := time.Now()
	if err := db.Append(ctx, in, out); err != nil {
		t.Fatal(err)
	}
	if in.Seq != 1 || out.Seq != 2 || out.IntentSeq != 1 || out.PrevHash != in.Hash || in.PrevHash != "" {
		t.Fatalf("not chained: intent %+v outcome %+v", in, out)
	}
	if in.Time.Location() != time.UTC || in.Time.Before(before.Add(-time.Second)) || out.Closes != in {
		t.Fatalf("time %v, closes %p", in.Time, out.Closes)
	}
	// A given time is kept (in UTC); what is stored is what was sealed.
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("X", -7200))
	denial := &audit.Event{Kind: audit.KindDenial, Actor: "mallory", Command: "deploy", Time: at, Outcome: "no permission"}
	if err := db.Append(ctx, denial); err != nil {
		t.Fatal(err)
	}
	if !denial.Time.Equal(at) || denial.Time.Location() != time.UTC {
		t.Fatalf("given time became %v", denial.Time)
	}
	var stored []audit.Event
	if err := db.WalkAudit(ctx, func(e *audit.Event) error { stored = append(stored, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 || stored[2].Hash != denial.Hash || !stored[2].Time.Equal(at) || stored[0].Args[1] != "staging" {
		t.Fatalf("stored %+v", stored)
	}
	mustVerify(t, db, 3)

	// An intent gets one outcome; the refused second one changes nothing.
	dup := &audit.Event{Kind: audit.KindOutcome, Command: "deploy", IntentSeq: in.Seq, Outcome: "again"}
	if err := db.Append(ctx, dup); err == nil {
		t.Fatal("second outcome for one intent accepted")
	}
	if dup.Seq != 0 {
		t.Fatal("refused event sealed")
	}
	if err := db.Append(ctx); err != nil {
		t.Fatalf("empty append: %v", err)
	}
	mustVerify(t, db, 3)

	stop := errors.New("enough")
	n := 0
	if err := db.WalkAudit(ctx, func(*audit.Event) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("walk did not stop: %d %v", n, err)
	}
}

func TestAuditEventsAndOpenIntents(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	var open []int64
	for i := 0; i < 30; i++ {
		who, env := alice, "staging"
		if i%3 == 0 {
			who, env = bob, "production"
		}
		in := intentEv(who, "deploy", "demo", env)
		if i%10 == 9 {
			// Left open, as a crash between intent and outcome would.
			if err := db.Append(ctx, in); err != nil {
				t.Fatal(err)
			}
			open = append(open, in.Seq)
			continue
		}
		if err := db.Append(ctx, in, outcomeEv(in, "ok")); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(f audit.Filter) []int64 {
		t.Helper()
		evs, err := db.AuditEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.Seq)
		}
		return out
	}
	all := seqs(audit.Filter{})
	if len(all) != DefaultAuditLimit || all[0] != 57 || all[19] != 38 {
		t.Fatalf("default listing %v", all)
	}
	if got := seqs(audit.Filter{Limit: 3}); !slices.Equal(got, []int64{57, 56, 55}) {
		t.Fatalf("limit 3: %v", got)
	}
	bobs := seqs(audit.Filter{Limit: 100, Actor: "bob"})
	prod := seqs(audit.Filter{Limit: 100, App: "demo", Env: "production"})
	if len(bobs) != 19 || !slices.Equal(bobs, prod) || !slices.IsSortedFunc(bobs, func(a, b int64) int { return int(b - a) }) {
		t.Fatalf("bob %v, production %v", bobs, prod)
	}
	if got := seqs(audit.Filter{Actor: "nobody"}); len(got) != 0 {
		t.Fatalf("unknown actor: %v", got)
	}

	intents, err := db.OpenIntents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, e := range intents {
		got = append(got, e.Seq)
	}
	if !slices.Equal(got, open) || len(got) != 3 {
		t.Fatalf("open intents %v, want %v", got, open)
	}
	if err := db.Append(ctx, &audit.Event{Kind: audit.KindOutcome, IntentSeq: open[0], Outcome: "closed late"}); err != nil {
		t.Fatal(err)
	}
	if intents, _ := db.OpenIntents(ctx); len(intents) != 2 || intents[0].Seq != open[1] {
		t.Fatalf("after closing one: %+v", intents)
	}
}

// Fifty goroutines append intent+outcome pairs (and keep failing a job on a
// held lock in the same groups): one contiguous chain comes out.
func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	if err := db.AcquireLock(ctx, deploy.Lock{App: "demo", Env: "staging", Owner: "carol"}); err != nil {
		t.Fatal(err)
	}
	const goroutines, pairs = 50, 20
	var (
		mu   sync.Mutex
		seqs []int64
		wg   sync.WaitGroup
	)
	errs := make(chan error, goroutines*pairs*2)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < pairs; i++ {
				in := intentEv(alice, "status", "demo", "staging")
				out := outcomeEv(in, "ok")
				if err := db.Append(ctx, in, out); err != nil {
					errs <- err
					continue
				}
				if out.Seq != in.Seq+1 || out.IntentSeq != in.Seq || out.PrevHash != in.Hash {
					errs <- fmt.Errorf("pair split: intent %d, outcome %d closing %d", in.Seq, out.Seq, out.IntentSeq)
				}
				mu.Lock()
				seqs = append(seqs, in.Seq, out.Seq)
				mu.Unlock()
				if i%4 == 0 {
					var locked *deploy.LockedError
					if err := db.CreateJob(ctx, queuedJob("demo", "staging", alice), nil, intentEv(alice, "deploy", "demo", "staging")); !errors.As(err, &locked) {
						errs <- fmt.Errorf("job on a held lock: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seqs not contiguous at %d: %d", i, s)
		}
	}
	mustVerify(t, db, goroutines*pairs*2)
}

// One group commit holding writes that fail in different ways: each failure
// is undone alone (including rows it had already appended), the rest commit,
// and the chain has no gap.
func TestFailingOpsInABatchAreUndoneAlone(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	in0 := intentEv(alice, "deploy", "demo", "staging")
	if err := db.Append(ctx, in0, outcomeEv(in0, "ok")); err != nil {
		t.Fatal(err)
	}
	if err := db.AcquireLock(ctx, deploy.Lock{App: "demo", Env: "staging", Owner: "carol"}); err != nil {
		t.Fatal(err)
	}
	running := queuedJob("demo", "production", alice)
	if err := db.CreateJob(ctx, running, nil); err != nil {
		t.Fatal(err)
	}

	release := hold(t, db)
	in1 := intentEv(alice, "status", "demo", "staging")
	out1 := outcomeEv(in1, "ok")
	okPair := async(t, db, 1, func() error { return db.Append(ctx, in1, out1) })
	// Appends one row, then fails on the second: the first must go too.
	half := intentEv(bob, "status", "demo", "staging")
	dup := &audit.Event{Kind: audit.KindOutcome, IntentSeq: in0.Seq, Outcome: "second outcome"}
	dupPair := async(t, db, 2, func() error { return db.Append(ctx, half, dup) })
	lockedJob := queuedJob("demo", "staging", bob)
	lockedIn := intentEv(bob, "deploy", "demo", "staging")
	onLock := async(t, db, 3, func() error { return db.CreateJob(ctx, lockedJob, nil, lockedIn) })
	panicky := async(t, db, 4, func() error {
		return db.ReleaseLock(ctx, "demo", "staging", func(deploy.Lock) error { panic("boom") })
	})
	in2 := intentEv(alice, "help", "", "")
	single := async(t, db, 5, func() error { return db.Append(ctx, in2) })
	running.State = deploy.Running
	runIn := intentEv(alice, "deploy", "demo", "production")
	update := async(t, db, 6, func() error { return db.UpdateJob(ctx, running, []deploy.State{deploy.Queued}, runIn) })
	release()

	if err := result(t, okPair); err != nil {
		t.Fatal(err)
	}
	if err := result(t, dupPair); err == nil {
		t.Fatal("duplicate outcome accepted")
	}
	var locked *deploy.LockedError
	if err := result(t, onLock); !errors.As(err, &locked) || locked.Lock.Owner != "carol" {
		t.Fatalf("job on a held lock: %v", err)
	}
	if err := result(t, panicky); err == nil {
		t.Fatal("panicking check succeeded")
	}
	if err := result(t, single); err != nil {
		t.Fatal(err)
	}
	if err := result(t, update); err != nil {
		t.Fatal(err)
	}

	if half.Seq != 0 || dup.Seq != 0 || lockedIn.Seq != 0 || lockedJob.ID != 0 {
		t.Fatalf("failed writes filled in values: %d %d %d job %d", half.Seq, dup.Seq, lockedIn.Seq, lockedJob.ID)
	}
	if in1.Seq != 3 || out1.Seq != 4 || in2.Seq != 5 || runIn.Seq != 6 || runIn.JobID != running.ID {
		t.Fatalf("seqs %d %d %d %d", in1.Seq, out1.Seq, in2.Seq, runIn.Seq)
	}
	if _, err := db.Lock(ctx, "demo", "staging"); err != nil {
		t.Fatalf("manual lock lost: %v", err)
	}
	if js, _ := db.Jobs(ctx, deploy.JobFilter{}); len(js) != 1 || js[0].State != deploy.Running {
		t.Fatalf("jobs after the batch: %+v", js)
	}
	mustVerify(t, db, 6)
}

// When the COMMIT itself fails, every write of the batch gets the error,
// none of their values are filled in, and the chain goes on from the last
// committed row.
func TestFailedCommitFailsTheWholeBatch(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	in0 := intentEv(alice, "deploy", "demo", "staging")
	if err := db.Append(ctx, in0); err != nil {
		t.Fatal(err)
	}

	release := hold(t, db)
	in1 := intentEv(alice, "status", "demo", "staging")
	first := async(t, db, 1, func() error { return db.Append(ctx, in1, outcomeEv(in1, "ok")) })
	// A foreign key checked only at COMMIT: the one way to make a real
	// COMMIT fail on demand.
	poison := async(t, db, 2, func() error {
		return db.write(ctx, func(w *writer) error {
			if _, err := w.exec(`PRAGMA defer_foreign_keys = ON`); err != nil {
				return err
			}
			_, err := w.exec(`INSERT INTO approvals (id, job_id, app, env, action, version, requested_by, roles, state,
				decided_by, created, expires, decided) VALUES ('orphan', 999, '', '', '', '', '', '[]', 'pending', '', '', '', '')`)
			return err
		})
	})
	j := queuedJob("demo", "staging", bob)
	jobIn := intentEv(bob, "deploy", "demo", "staging")
	create := async(t, db, 3, func() error { return db.CreateJob(ctx, j, nil, jobIn) })
	release()

	for name, c := range map[string]<-chan error{"append": first, "poison": poison, "create": create} {
		if err := result(t, c); err == nil {
			t.Errorf("%s: succeeded in a batch whose commit failed", name)
		}
	}
	if in1.Seq != 0 || jobIn.Seq != 0 || j.ID != 0 {
		t.Fatalf("values of an undone batch filled in: %d %d job %d", in1.Seq, jobIn.Seq, j.ID)
	}
	if _, err := db.Lock(ctx, "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("lock of an undone job: %v", err)
	}
	in2 := intentEv(alice, "status", "demo", "staging")
	if err := db.Append(ctx, in2); err != nil {
		t.Fatal(err)
	}
	if in2.Seq != 2 || in2.PrevHash != in0.Hash {
		t.Fatalf("chain after a failed commit: seq %d", in2.Seq)
	}
	mustVerify(t, db, 2)
}

func TestTamperingIsDetected(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sql     string
		wantSeq int64
	}{
		{"outcome of a middle row changed", `UPDATE audit SET outcome = 'nothing happened' WHERE seq = 4`, 4},
		{"actor of a middle row changed", `UPDATE audit SET actor = 'mallory' WHERE seq = 3`, 3},
		{"middle row deleted", `DELETE FROM audit WHERE seq = 3`, 3},
		{"last row deleted", `DELETE FROM audit WHERE seq = 6`, 6},
		{"everything deleted", `DELETE FROM audit`, 1},
		{"row forged at the end", `INSERT INTO audit SELECT seq + 1, time, kind, actor, identity, chat, command, args, app,
			env, decision, job_id, 0, outcome, hash, hash, via FROM audit WHERE seq = 6`, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, path := openDB(t)
			ctx := context.Background()
			for i := 0; i < 3; i++ {
				in := intentEv(alice, "deploy", "demo", "staging")
				if err := db.Append(ctx, in, outcomeEv(in, "ok")); err != nil {
					t.Fatal(err)
				}
			}
			mustVerify(t, db, 6)

			raw := rawDB(t, path)
			// The schema refuses changes to audit rows...
			if _, err := raw.Exec(`UPDATE audit SET outcome = 'x' WHERE seq = 1`); err == nil {
				t.Fatal("UPDATE of an audit row allowed")
			}
			if _, err := raw.Exec(`DELETE FROM audit WHERE seq = 1`); err == nil {
				t.Fatal("DELETE of an audit row allowed")
			}
			// ...but whoever has the file can drop the triggers.
			for _, s := range []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`, tc.sql} {
				if _, err := raw.Exec(s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			_, err := db.VerifyAudit(ctx)
			var ce *audit.ChainError
			if !errors.As(err, &ce) || ce.Seq != tc.wantSeq {
				t.Fatalf("verify: %v, want a chain error at row %d", err, tc.wantSeq)
			}
		})
	}
}

func TestReopenContinuesTheChain(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	in := intentEv(alice, "deploy", "demo", "staging")
	if err := db.Append(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	out := &audit.Event{Kind: audit.KindOutcome, IntentSeq: in.Seq, Outcome: "ok"}
	if err := db2.Append(ctx, out); err != nil {
		t.Fatal(err)
	}
	if out.Seq != 2 || out.PrevHash != in.Hash {
		t.Fatalf("after reopen: seq %d prev %q", out.Seq, out.PrevHash)
	}
	mustVerify(t, db2, 2)
	if intents, _ := db2.OpenIntents(ctx); len(intents) != 0 {
		t.Fatalf("open intents after reopen: %+v", intents)
	}
}

// Close drains what is queued; writes racing it either commit or get
// ErrClosed, and none hangs.
func TestCloseRacingWrites(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := 0
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				err := db.Append(ctx, intentEv(alice, "status", "demo", "staging"))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				committed++
				mu.Unlock()
			}
		}()
	}
	waitCommitted := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := committed
		mu.Unlock()
		if n >= 20 || time.Now().After(waitCommitted) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a write racing Close never returned")
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	mustVerify(t, db2, int64(committed))
}

func TestCancelledContextWritesNothing(t *testing.T) {
	db, _ := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := intentEv(alice, "deploy", "demo", "staging")
	if err := db.Append(ctx, in); !errors.Is(err, context.Canceled) || in.Seq != 0 {
		t.Fatalf("append with a cancelled context: %v, seq %d", err, in.Seq)
	}

	// Cancelled while queued behind another write: answered without running.
	release := hold(t, db)
	ctx2, cancel2 := context.WithCancel(context.Background())
	in2 := intentEv(alice, "deploy", "demo", "staging")
	queued := async(t, db, 1, func() error { return db.Append(ctx2, in2) })
	cancel2()
	release()
	if err := result(t, queued); !errors.Is(err, context.Canceled) || in2.Seq != 0 {
		t.Fatalf("append cancelled in the queue: %v, seq %d", err, in2.Seq)
	}
	mustVerify(t, db, 0)
}

// BenchmarkAppendSerial is the durable cost of one audited command (an intent
// and its outcome, one transaction, synchronous=FULL) with nobody to share
// the fsync with.
func BenchmarkAppendSerial(b *testing.B) {
	db, _ := openDB(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := intentEv(alice, "status", "demo", "staging")
		if err := db.Append(ctx, in, outcomeEv(in, "ok")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel is the same with many commands at once: group
// commit lets them share fsyncs, so ns/op is the throughput figure.
func BenchmarkAppendParallel(b *testing.B) {
	db, _ := openDB(b)
	ctx := context.Background()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			in := intentEv(alice, "status", "demo", "staging")
			if err := db.Append(ctx, in, outcomeEv(in, "ok")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// `bot audit verify` runs beside a live bot: rows appended during the walk
// must not look like a removed tail.
func TestVerifyWhileAppending(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := 0; i < 300; i++ {
			if err := db.Append(ctx, &audit.Event{Kind: audit.KindDenial, Command: "deploy", Outcome: "no"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for verified := 0; ; verified++ {
		select {
		case <-appended:
			if verified == 0 {
				t.Fatal("no verify ran while appending")
			}
			mustVerify(t, db, 300)
			return
		default:
		}
		if _, err := db.VerifyAudit(ctx); err != nil {
			t.Fatalf("verify %d while appending: %v", verified, err)
		}
	}
}
