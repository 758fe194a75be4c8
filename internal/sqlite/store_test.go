package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

func TestOpenCreatesPrivateWALDatabase(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v %v, want 0700", fi.Mode(), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v, want 0600", fi.Mode(), err)
	}
	raw := rawDB(t, path)
	var mode string
	var version int
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q %v", mode, err)
	}
	files, _ := os.ReadDir("migrations")
	if err := raw.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != len(files) || version < 2 {
		t.Fatalf("user_version %d %v", version, err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("ping after close: %v", err)
	}

	// Reopening applies nothing twice; a schema from a newer shipbot is refused.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	db2.Close()
	if _, err := raw.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	if db3, err := Open(ctx, path); err == nil {
		db3.Close()
		t.Fatal("opened a database with a newer schema")
	}
}

func TestJobRoundTripAndFilter(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	started := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	j := &deploy.Job{App: "helpdesk", Env: "staging", Action: deploy.ActionDeploy, Ref: "v1.2", Release: "20261122-090000-1",
		FromRelease: "20261121-090000-0", State: deploy.Queued, Reason: "", RequestedBy: alice, ApprovedBy: "bob",
		IntentSeq: 0, Steps: []deploy.Step{{Name: "fetch", State: deploy.StepDone, Detail: "ok"},
			{Name: "build", State: deploy.StepRunning}}, Output: []string{"line 1", "line 2"}, Started: started}
	in := intentEv(alice, "deploy", "helpdesk", "staging")
	before := time.Now()
	if err := db.CreateJob(ctx, j, nil, in); err != nil {
		t.Fatal(err)
	}
	if j.ID != 1 || j.Created.Before(before.Add(-time.Second)) || j.Created.After(time.Now()) {
		t.Fatalf("CreateJob set id %d created %v", j.ID, j.Created)
	}
	if in.Seq != 1 || in.JobID != j.ID || in.Hash == "" {
		t.Fatalf("intent not sealed with the job: %+v", in)
	}
	got, err := db.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Started.Equal(started) || !got.Created.Equal(j.Created) || !got.Ended.IsZero() {
		t.Fatalf("times: started %v created %v ended %v", got.Started, got.Created, got.Ended)
	}
	want := *j
	want.Started, want.Created = got.Started, got.Created
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, &want)
	}

	// More jobs: another env, then a finished one on staging.
	other := queuedJob("helpdesk", "production", alice)
	other.State = deploy.AwaitingApproval
	if err := db.CreateJob(ctx, other, nil); err != nil {
		t.Fatal(err)
	}
	j.State, j.Ended = deploy.Succeeded, time.Now()
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); err != nil {
		t.Fatal(err)
	}
	third := queuedJob("helpdesk", "staging", bob)
	if err := db.CreateJob(ctx, third, nil); err != nil {
		t.Fatal(err)
	}
	ids := func(f deploy.JobFilter) []int64 {
		t.Helper()
		js, err := db.Jobs(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	for name, tc := range map[string]struct {
		f    deploy.JobFilter
		want []int64
	}{
		"all newest first": {deploy.JobFilter{}, []int64{3, 2, 1}},
		"limit":            {deploy.JobFilter{Limit: 2}, []int64{3, 2}},
		"env":              {deploy.JobFilter{App: "helpdesk", Env: "staging"}, []int64{3, 1}},
		"states":           {deploy.JobFilter{States: []deploy.State{deploy.Queued, deploy.AwaitingApproval}}, []int64{3, 2}},
		"nothing":          {deploy.JobFilter{App: "nosuch"}, nil},
	} {
		if got := ids(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	if _, err := db.Job(ctx, 42); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
}

func TestCreateJobOnHeldLockChangesNothing(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	first := queuedJob("demo", "staging", alice)
	if err := db.CreateJob(ctx, first, nil, intentEv(alice, "deploy", "demo", "staging")); err != nil {
		t.Fatal(err)
	}
	l, err := db.Lock(ctx, "demo", "staging")
	if err != nil || l.JobID != first.ID || l.Owner != "alice" || l.Since.IsZero() {
		t.Fatalf("job lock %+v %v", l, err)
	}

	second := queuedJob("demo", "staging", bob)
	in := intentEv(bob, "deploy", "demo", "staging")
	err = db.CreateJob(ctx, second, nil, in)
	var locked *deploy.LockedError
	if !errors.As(err, &locked) || locked.Lock.JobID != first.ID || locked.Lock.Owner != "alice" {
		t.Fatalf("second job on a held lock: %v", err)
	}
	if second.ID != 0 || !second.Created.IsZero() || in.Seq != 0 || in.Hash != "" || in.JobID != 0 {
		t.Fatalf("a refused write filled in its values: job %+v event %+v", second, in)
	}
	if js, _ := db.Jobs(ctx, deploy.JobFilter{}); len(js) != 1 {
		t.Fatalf("refused job stored: %d jobs", len(js))
	}
	mustVerify(t, db, 1)
}

func TestUpdateJobStateCAS(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	j := queuedJob("demo", "staging", alice)
	if err := db.CreateJob(ctx, j, nil); err != nil {
		t.Fatal(err)
	}
	j.State, j.Reason = deploy.Failed, "late"
	ev := intentEv(alice, "cancel", "demo", "staging")
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Running}, ev); !errors.Is(err, deploy.ErrConflict) {
		t.Fatalf("update from a state the job is not in: %v", err)
	}
	if got, _ := db.Job(ctx, j.ID); got.State != deploy.Queued || got.Reason != "" {
		t.Fatalf("conflicting update stored: %+v", got)
	}
	if ev.Seq != 0 {
		t.Fatal("conflicting update's event sealed")
	}
	mustVerify(t, db, 0)

	missing := queuedJob("demo", "staging", alice)
	missing.ID = 99
	if err := db.UpdateJob(ctx, missing, []deploy.State{deploy.Queued}); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("update of a missing job: %v", err)
	}

	j.State, j.Started = deploy.Running, time.Now()
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Queued, deploy.AwaitingApproval}, ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Job(ctx, j.ID); got.State != deploy.Running || ev.JobID != j.ID {
		t.Fatalf("update not stored: %+v, event job %d", got, ev.JobID)
	}
}

func TestLockFollowsJobState(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	lockOf := func(app, env string) *deploy.Lock {
		t.Helper()
		l, err := db.Lock(ctx, app, env)
		if errors.Is(err, deploy.ErrNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	// Interrupted keeps the lock for a person to look at.
	a := queuedJob("demo", "staging", alice)
	if err := db.CreateJob(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	a.State = deploy.Running
	if err := db.UpdateJob(ctx, a, []deploy.State{deploy.Queued}); err != nil {
		t.Fatal(err)
	}
	a.State = deploy.Interrupted
	if err := db.UpdateJob(ctx, a, []deploy.State{deploy.Running}); err != nil {
		t.Fatal(err)
	}
	if l := lockOf("demo", "staging"); l == nil || l.JobID != a.ID {
		t.Fatalf("interrupted job's lock: %+v", l)
	}

	// Every other terminal state releases it.
	for _, end := range []deploy.State{deploy.Succeeded, deploy.Failed, deploy.RolledBack, deploy.Cancelled} {
		j := queuedJob("demo", string(end), alice)
		if err := db.CreateJob(ctx, j, nil); err != nil {
			t.Fatal(err)
		}
		j.State = end
		if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); err != nil {
			t.Fatal(err)
		}
		if l := lockOf("demo", string(end)); l != nil {
			t.Fatalf("%s kept the lock: %+v", end, l)
		}
	}

	// A job that never held the lock does not remove someone else's.
	if err := db.AcquireLock(ctx, deploy.Lock{App: "demo", Env: "production", Owner: "bob", Reason: "freeze"}); err != nil {
		t.Fatal(err)
	}
	w := queuedJob("demo", "production", alice)
	w.State = deploy.AwaitingApproval
	if err := db.CreateJob(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	// Entering queued while the manual lock is held is refused...
	w.State = deploy.Queued
	var locked *deploy.LockedError
	if err := db.UpdateJob(ctx, w, []deploy.State{deploy.AwaitingApproval}); !errors.As(err, &locked) || locked.Lock.Owner != "bob" {
		t.Fatalf("queue behind a manual lock: %v", err)
	}
	if got, _ := db.Job(ctx, w.ID); got.State != deploy.AwaitingApproval {
		t.Fatalf("refused queueing stored state %s", got.State)
	}
	// ...and cancelling the waiting job leaves the manual lock alone.
	w.State = deploy.Cancelled
	if err := db.UpdateJob(ctx, w, []deploy.State{deploy.AwaitingApproval}); err != nil {
		t.Fatal(err)
	}
	if l := lockOf("demo", "production"); l == nil || l.Owner != "bob" || l.JobID != 0 {
		t.Fatalf("manual lock after another job ended: %+v", l)
	}
}

func newApproval(id string) *deploy.Approval {
	now := time.Now().UTC()
	return &deploy.Approval{ID: id, App: "helpdesk", Env: "production", Action: deploy.ActionDeploy, Version: "v2",
		RequestedBy: "alice", Roles: []string{"lead", "sre"}, State: deploy.ApprovalPending, Created: now,
		Expires: now.Add(30 * time.Minute)}
}

func TestDecideApprovalIsSingleUse(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	j := queuedJob("helpdesk", "production", alice)
	j.State, j.Ref, j.ApprovalID = deploy.AwaitingApproval, "v2", "approval1approval1approval1"
	a := newApproval(j.ApprovalID)
	in := intentEv(alice, "deploy", "helpdesk", "production")
	if err := db.CreateJob(ctx, j, a, in); err != nil {
		t.Fatal(err)
	}
	if a.JobID != j.ID {
		t.Fatalf("approval bound to job %d, want %d", a.JobID, j.ID)
	}
	if _, err := db.Lock(ctx, "helpdesk", "production"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("a job awaiting approval took the lock: %v", err)
	}
	got, err := db.Approval(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(a.Created) || !got.Expires.Equal(a.Expires) || !got.Decided.IsZero() {
		t.Fatalf("approval times %+v", got)
	}
	got.Created, got.Expires = a.Created, a.Expires
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("approval round trip\n got %+v\nwant %+v", got, a)
	}
	pending, err := db.PendingApprovals(ctx)
	if err != nil || len(pending) != 1 || pending[0].ID != a.ID {
		t.Fatalf("pending %+v %v", pending, err)
	}

	a.State, a.DecidedBy, a.Decided = deploy.ApprovalApproved, "bob", time.Now()
	j.State, j.ApprovedBy = deploy.Queued, "bob"
	yes := intentEv(bob, "approve", "helpdesk", "production")
	if err := db.DecideApproval(ctx, a, j, yes, outcomeEv(yes, "approved")); err != nil {
		t.Fatal(err)
	}
	if l, err := db.Lock(ctx, "helpdesk", "production"); err != nil || l.JobID != j.ID {
		t.Fatalf("approved job's lock %+v %v", l, err)
	}
	if got, _ := db.Approval(ctx, a.ID); got.State != deploy.ApprovalApproved || got.DecidedBy != "bob" || got.Decided.IsZero() {
		t.Fatalf("decision not stored: %+v", got)
	}
	if got, _ := db.Job(ctx, j.ID); got.State != deploy.Queued || got.ApprovedBy != "bob" {
		t.Fatalf("job not moved: %+v", got)
	}
	if pending, _ := db.PendingApprovals(ctx); len(pending) != 0 {
		t.Fatalf("decided approval still pending: %+v", pending)
	}
	if yes.JobID != j.ID {
		t.Fatalf("decision event job %d", yes.JobID)
	}

	// The second press of the button.
	again := intentEv(bob, "approve", "helpdesk", "production")
	if err := db.DecideApproval(ctx, a, j, again); !errors.Is(err, deploy.ErrConflict) {
		t.Fatalf("second decision: %v", err)
	}
	if again.Seq != 0 {
		t.Fatal("second decision's event sealed")
	}
	mustVerify(t, db, 3)

	if _, err := db.Approval(ctx, "nosuch"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("missing approval: %v", err)
	}
	if err := db.DecideApproval(ctx, &deploy.Approval{ID: "nosuch"}, j); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("deciding a missing approval: %v", err)
	}
}

func TestDecideApprovalOnHeldLockLeavesItPending(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	j := queuedJob("helpdesk", "production", alice)
	j.State, j.ApprovalID = deploy.AwaitingApproval, "approval2approval2approval2"
	a := newApproval(j.ApprovalID)
	if err := db.CreateJob(ctx, j, a); err != nil {
		t.Fatal(err)
	}
	if err := db.AcquireLock(ctx, deploy.Lock{App: "helpdesk", Env: "production", Owner: "carol", Reason: "db work"}); err != nil {
		t.Fatal(err)
	}
	a.State, a.DecidedBy = deploy.ApprovalApproved, "bob"
	j.State = deploy.Queued
	var locked *deploy.LockedError
	if err := db.DecideApproval(ctx, a, j); !errors.As(err, &locked) || locked.Lock.Owner != "carol" {
		t.Fatalf("approve behind a lock: %v", err)
	}
	if got, _ := db.Approval(ctx, a.ID); got.State != deploy.ApprovalPending {
		t.Fatalf("approval decided although its job could not queue: %s", got.State)
	}

	// An approval decides only its own job.
	other := queuedJob("helpdesk", "staging", alice)
	other.State = deploy.AwaitingApproval
	if err := db.CreateJob(ctx, other, nil); err != nil {
		t.Fatal(err)
	}
	other.State = deploy.Cancelled
	a.State = deploy.ApprovalDenied
	if err := db.DecideApproval(ctx, a, other); !errors.Is(err, deploy.ErrConflict) {
		t.Fatalf("approval used for another job: %v", err)
	}
}

func TestManualLocks(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	since := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	l := deploy.Lock{App: "demo", Env: "staging", Owner: "alice", Reason: "migration", Since: since}
	in := intentEv(alice, "lock", "demo", "staging")
	if err := db.AcquireLock(ctx, l, in, outcomeEv(in, "locked")); err != nil {
		t.Fatal(err)
	}
	got, err := db.Lock(ctx, "demo", "staging")
	if err != nil || *got != l {
		t.Fatalf("lock round trip %+v %v", got, err)
	}
	var locked *deploy.LockedError
	if err := db.AcquireLock(ctx, deploy.Lock{App: "demo", Env: "staging", Owner: "bob"}); !errors.As(err, &locked) || locked.Lock != l {
		t.Fatalf("second lock: %v", err)
	}
	if err := db.AcquireLock(ctx, deploy.Lock{App: "demo", Env: "production", Owner: "bob"}); err != nil {
		t.Fatal(err)
	}
	ls, err := db.Locks(ctx)
	if err != nil || len(ls) != 2 || ls[0].Env != "production" || ls[1].Env != "staging" || ls[0].Since.IsZero() {
		t.Fatalf("locks %+v %v", ls, err)
	}

	// check runs inside the write and its refusal (or panic) changes nothing.
	notYours := errors.New("not yours")
	un := intentEv(bob, "unlock", "demo", "staging")
	if err := db.ReleaseLock(ctx, "demo", "staging", func(held deploy.Lock) error {
		if held != l {
			t.Errorf("check got %+v", held)
		}
		return notYours
	}, un); !errors.Is(err, notYours) {
		t.Fatalf("refused unlock: %v", err)
	}
	if err := db.ReleaseLock(ctx, "demo", "staging", func(deploy.Lock) error { panic("bad check") }, un); err == nil {
		t.Fatal("panicking check released the lock")
	}
	if _, err := db.Lock(ctx, "demo", "staging"); err != nil {
		t.Fatalf("refused unlock removed the lock: %v", err)
	}
	if un.Seq != 0 {
		t.Fatal("refused unlock's event sealed")
	}
	// The check may read the store while the writer waits for it.
	if err := db.ReleaseLock(ctx, "demo", "staging", func(held deploy.Lock) error {
		_, err := db.Lock(ctx, held.App, held.Env)
		return err
	}, un, outcomeEv(un, "unlocked")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lock(ctx, "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("lock after unlock: %v", err)
	}
	if err := db.ReleaseLock(ctx, "demo", "staging", func(deploy.Lock) error { return nil }); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("unlocking a free env: %v", err)
	}
	mustVerify(t, db, 4)
}

func TestReleases(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	put := func(r deploy.Release) {
		t.Helper()
		if err := db.PutRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	put(deploy.Release{App: "demo", Env: "staging", ID: "20261120-120000-1", Ref: "v1", JobID: 1, By: "alice", Created: base, State: deploy.ReleaseActive})
	// Half a second later: text order must still be time order.
	put(deploy.Release{App: "demo", Env: "staging", ID: "20261120-120000-2", Ref: "v2", JobID: 2, By: "bob", Created: base.Add(500 * time.Millisecond), State: deploy.ReleaseBuilding})
	put(deploy.Release{App: "demo", Env: "production", ID: "20261120-120000-3", Ref: "v2", JobID: 3, By: "bob", Created: base.Add(time.Second), State: deploy.ReleaseActive})
	// Upsert: the build finished.
	put(deploy.Release{App: "demo", Env: "staging", ID: "20261120-120000-2", Ref: "v2", JobID: 2, By: "bob", Created: base.Add(500 * time.Millisecond), State: deploy.ReleaseFailed})

	rs, err := db.Releases(ctx, "demo", "staging")
	if err != nil {
		t.Fatal(err)
	}
	want := []deploy.Release{
		{App: "demo", Env: "staging", ID: "20261120-120000-2", Ref: "v2", JobID: 2, By: "bob", Created: base.Add(500 * time.Millisecond), State: deploy.ReleaseFailed},
		{App: "demo", Env: "staging", ID: "20261120-120000-1", Ref: "v1", JobID: 1, By: "alice", Created: base, State: deploy.ReleaseActive},
	}
	if !reflect.DeepEqual(rs, want) {
		t.Fatalf("releases\n got %+v\nwant %+v", rs, want)
	}
	if rs, _ := db.Releases(ctx, "demo", "nowhere"); len(rs) != 0 {
		t.Fatalf("releases of an unknown env: %+v", rs)
	}
}

func TestEventsGetTheJobID(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	j := queuedJob("demo", "staging", alice)
	in := intentEv(alice, "deploy", "demo", "staging")
	pinned := intentEv(alice, "other", "demo", "staging")
	pinned.JobID = 77
	if err := db.CreateJob(ctx, j, nil, in, pinned); err != nil {
		t.Fatal(err)
	}
	out := &audit.Event{Kind: audit.KindOutcome, IntentSeq: in.Seq, Outcome: "done"}
	j.State = deploy.Succeeded
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Queued}, out); err != nil {
		t.Fatal(err)
	}
	evs, err := db.AuditEvents(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].JobID != j.ID || evs[1].JobID != 77 || evs[2].JobID != j.ID {
		t.Fatalf("stored job ids: %+v", evs)
	}
}
