package deploy_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
)

type recorder struct {
	mu   sync.Mutex
	seen []deploy.Job
}

func (r *recorder) JobChanged(j deploy.Job) {
	r.mu.Lock()
	r.seen = append(r.seen, j)
	r.mu.Unlock()
}

type rig struct {
	store  *deploytest.Store
	driver *deploytest.Driver
	engine *deploy.Engine
	obs    *recorder
	now    time.Time
	mu     sync.Mutex
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{store: deploytest.NewStore(), driver: deploytest.NewDriver(), obs: &recorder{}, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	r.engine = deploy.NewEngine(deploy.Options{
		Store:    r.store,
		Drivers:  func(app, env string) (deploy.Driver, bool) { return r.driver, app == "demo" },
		Observer: r.obs,
		Now:      r.clock,
		Redactor: audit.NewRedactor(audit.NewSecret("hunter22")),
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.engine.Drain(ctx)
	})
	return r
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.now.Add(time.Second) // distinct, increasing release ids
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

var (
	alice = deploy.Who{User: "alice", Identity: "shell:alice", Chat: "shell:terminal"}
	bob   = deploy.Who{User: "bob", Identity: "shell:bob", Chat: "shell:terminal"}
	prod  = deploy.ApprovalPolicy{Required: true, Roles: []string{"lead"}, TTL: 30 * time.Minute}
)

// waitState polls the store until job id reaches want or the deadline passes.
func waitState(t *testing.T, s deploy.Store, id int64, want deploy.State) *deploy.Job {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		j, err := s.Job(context.Background(), id)
		if err == nil && j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			state := deploy.State("?")
			if j != nil {
				state = j.State
			}
			t.Fatalf("job #%d: want state %s, have %s", id, want, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAuditFailureRunsNothing(t *testing.T) {
	r := newRig(t)
	r.store.SetFailAppend(true)
	_, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy})
	if !errors.Is(err, deploytest.ErrInjected) {
		t.Fatalf("Submit with failing audit: err = %v, want injected failure", err)
	}
	if n := r.driver.Calls(); n != 0 {
		t.Fatalf("driver called %d times although the intent could not be written", n)
	}
	if js, _ := r.store.Jobs(context.Background(), deploy.JobFilter{}); len(js) != 0 {
		t.Fatalf("a job was stored: %+v", js[0])
	}
	if _, err := r.store.Lock(context.Background(), "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("lock taken although nothing was recorded: %v", err)
	}
}

func TestDeployWithoutApprovalSucceedsAndClosesIntent(t *testing.T) {
	r := newRig(t)
	j, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy, Ref: "v1", Args: []string{"demo", "staging", "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	done := waitState(t, r.store, j.ID, deploy.Succeeded)
	if done.Release == "" || r.driver.Current() != done.Release {
		t.Fatalf("release %q not live (driver current %q)", done.Release, r.driver.Current())
	}
	if _, err := r.store.Lock(context.Background(), "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("lock not released after success: %v", err)
	}
	evs := r.store.Events()
	if len(evs) != 2 || evs[0].Kind != audit.KindIntent || evs[1].Kind != audit.KindOutcome || evs[1].IntentSeq != evs[0].Seq {
		t.Fatalf("want intent + outcome closing it, got %+v", evs)
	}
	if evs[0].JobID != j.ID || evs[1].Outcome != "succeeded" {
		t.Fatalf("audit rows not tied to job: %+v", evs)
	}
	if err := r.store.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestApprovalFlow(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	j, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "production", Action: deploy.ActionDeploy, Ref: "v2", Approval: prod})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != deploy.AwaitingApproval || j.ApprovalID == "" {
		t.Fatalf("want awaiting approval with an id, got %s %q", j.State, j.ApprovalID)
	}
	if _, err := r.store.Lock(ctx, "demo", "production"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatal("an unapproved job must not hold the lock")
	}
	if _, err := r.engine.Decide(ctx, j.ApprovalID, alice, true); !errors.Is(err, deploy.ErrSelfApprove) {
		t.Fatalf("self-approval: err = %v", err)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("driver ran before approval")
	}
	if _, err := r.engine.Decide(ctx, j.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	done := waitState(t, r.store, j.ID, deploy.Succeeded)
	if done.ApprovedBy != "bob" {
		t.Fatalf("approved by %q", done.ApprovedBy)
	}
	// A second press finds the approval used and runs nothing.
	_, err = r.engine.Decide(ctx, j.ApprovalID, bob, true)
	var refusal *deploy.Refusal
	if !errors.As(err, &refusal) {
		t.Fatalf("second approval: err = %v, want refusal", err)
	}
	if n := r.driver.Deploys.Load(); n != 1 {
		t.Fatalf("driver deployed %d times, want 1", n)
	}
	if err := r.store.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentApprovalsRunOnce(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	j, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "production", Action: deploy.ActionDeploy, Approval: prod})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok sync.Map
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := r.engine.Decide(ctx, j.ApprovalID, bob, true); err == nil {
				ok.Store(i, true)
			}
		}(i)
	}
	wg.Wait()
	n := 0
	ok.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d presses succeeded, want exactly 1", n)
	}
	waitState(t, r.store, j.ID, deploy.Succeeded)
	if d := r.driver.Deploys.Load(); d != 1 {
		t.Fatalf("deployed %d times", d)
	}
}

func TestApprovalExpiresAndIsBound(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	j, _ := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "production", Action: deploy.ActionDeploy, Ref: "v1", Approval: prod})
	// Someone edits the approval to cover another version: it no longer binds the job.
	r.store.EditApproval(j.ApprovalID, func(a *deploy.Approval) { a.Version = "v9" })
	var refusal *deploy.Refusal
	if _, err := r.engine.Decide(ctx, j.ApprovalID, bob, true); !errors.As(err, &refusal) {
		t.Fatalf("mismatched approval: err = %v", err)
	}
	r.store.EditApproval(j.ApprovalID, func(a *deploy.Approval) { a.Version = "v1" })
	r.advance(31 * time.Minute)
	if _, err := r.engine.Decide(ctx, j.ApprovalID, bob, true); !errors.As(err, &refusal) {
		t.Fatalf("expired approval: err = %v", err)
	}
	got := waitState(t, r.store, j.ID, deploy.Cancelled)
	if got.Reason != "approval expired" || r.driver.Calls() != 0 {
		t.Fatalf("reason %q, driver calls %d", got.Reason, r.driver.Calls())
	}
}

func TestExpireApprovalsSweeps(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	j, _ := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "production", Action: deploy.ActionDeploy, Approval: prod})
	if n, _ := r.engine.ExpireApprovals(ctx); n != 0 {
		t.Fatalf("expired %d fresh approvals", n)
	}
	r.advance(time.Hour)
	if n, err := r.engine.ExpireApprovals(ctx); n != 1 || err != nil {
		t.Fatalf("expired %d, err %v", n, err)
	}
	waitState(t, r.store, j.ID, deploy.Cancelled)
	// The intent of the request is closed by exactly one outcome.
	closing := 0
	for _, e := range r.store.Events() {
		if e.Kind == audit.KindOutcome && e.IntentSeq == j.IntentSeq {
			closing++
		}
	}
	if closing != 1 {
		t.Fatalf("%d outcomes close the job's intent", closing)
	}
}

func TestLocks(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if err := r.engine.Lock(ctx, "demo", "staging", "db maintenance", alice); err != nil {
		t.Fatal(err)
	}
	_, err := r.engine.Submit(ctx, deploy.JobRequest{Who: bob, App: "demo", Env: "staging", Action: deploy.ActionDeploy})
	var locked *deploy.LockedError
	if !errors.As(err, &locked) || locked.Lock.Owner != "alice" || locked.Lock.Reason != "db maintenance" {
		t.Fatalf("deploy to locked env: err = %v", err)
	}
	var refusal *deploy.Refusal
	if _, err := r.engine.Unlock(ctx, "demo", "staging", bob, false); !errors.As(err, &refusal) {
		t.Fatalf("unlock by non-holder: %v", err)
	}
	if _, err := r.engine.Unlock(ctx, "demo", "staging", bob, true); err != nil {
		t.Fatalf("forced unlock: %v", err)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("driver ran")
	}
}

func TestCancelStopsRunningJob(t *testing.T) {
	r := newRig(t)
	r.driver.Block = true
	ctx := context.Background()
	j, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy})
	if err != nil {
		t.Fatal(err)
	}
	<-r.driver.Started
	waitState(t, r.store, j.ID, deploy.Running)
	if _, err := r.engine.Cancel(ctx, j.ID, bob); err != nil {
		t.Fatal(err)
	}
	got := waitState(t, r.store, j.ID, deploy.Cancelled)
	if got.Reason != "cancelled by bob" {
		t.Fatalf("reason %q", got.Reason)
	}
	if _, err := r.store.Lock(ctx, "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatal("lock kept after cancel")
	}
}

func TestHealthFailureRollsBackAndPlainRollbackSkipsIt(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	deployOnce := func(want deploy.State) *deploy.Job {
		j, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy})
		if err != nil {
			t.Fatal(err)
		}
		return waitState(t, r.store, j.ID, want)
	}
	first := deployOnce(deploy.Succeeded)
	second := deployOnce(deploy.Succeeded)
	r.driver.Unhealthy = true
	bad := deployOnce(deploy.RolledBack)
	r.driver.Unhealthy = false
	if r.driver.Current() != second.Release {
		t.Fatalf("current %s, want %s", r.driver.Current(), second.Release)
	}
	rels, _ := r.store.Releases(ctx, "demo", "staging")
	for _, rel := range rels {
		if rel.ID == bad.Release && rel.State != deploy.ReleaseFailed {
			t.Fatalf("unhealthy release marked %s", rel.State)
		}
	}
	j, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionRollback})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, r.store, j.ID, deploy.Succeeded)
	if r.driver.Current() != first.Release {
		t.Fatalf("rollback went to %s, want %s (skipping the failed %s)", r.driver.Current(), first.Release, bad.Release)
	}
	// second is now rolled back; another plain rollback has nothing older.
	_, err = r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionRollback})
	var refusal *deploy.Refusal
	if !errors.As(err, &refusal) {
		t.Fatalf("rollback with nothing older: %v", err)
	}
}

func TestRecoverInterruptsAndKeepsLock(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	// A job the previous process left running: created and moved to running
	// directly in the store, as a crash would leave it.
	j := &deploy.Job{App: "demo", Env: "staging", Action: deploy.ActionDeploy, State: deploy.Queued, RequestedBy: alice}
	in := &audit.Event{Kind: audit.KindIntent, Command: "deploy", App: "demo", Env: "staging"}
	if err := r.store.CreateJob(ctx, j, nil, in); err != nil {
		t.Fatal(err)
	}
	j.IntentSeq = in.Seq
	j.State = deploy.Running
	if err := r.store.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); err != nil {
		t.Fatal(err)
	}
	got, err := r.engine.Recover(ctx)
	if err != nil || len(got) != 1 || got[0].State != deploy.Interrupted {
		t.Fatalf("Recover = %v, %v", got, err)
	}
	if l, err := r.store.Lock(ctx, "demo", "staging"); err != nil || l.JobID != j.ID {
		t.Fatalf("lock after recovery: %v %v", l, err)
	}
	evs := r.store.Events()
	last := evs[len(evs)-1]
	if last.Kind != audit.KindOutcome || last.IntentSeq != in.Seq {
		t.Fatalf("intent not closed: %+v", last)
	}
	// The interrupted job's lock is released by its requester, not by a running-job rule.
	if _, err := r.engine.Unlock(ctx, "demo", "staging", alice, false); err != nil {
		t.Fatalf("unlock interrupted job: %v", err)
	}
}

func TestDrainRefusesNewWorkAndStopsOldAtDeadline(t *testing.T) {
	r := newRig(t)
	r.driver.Block = true
	j, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy})
	if err != nil {
		t.Fatal(err)
	}
	<-r.driver.Started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r.engine.Drain(ctx)
	got := waitState(t, r.store, j.ID, deploy.Cancelled)
	if got.Reason == "" {
		t.Fatal("no reason for shutdown cancel")
	}
	if _, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy}); !errors.Is(err, deploy.ErrDraining) {
		t.Fatalf("submit while draining: %v", err)
	}
}

func TestSecretsRedactedFromOutputAndLogs(t *testing.T) {
	r := newRig(t)
	l, err := r.engine.Logs(context.Background(), "demo", "staging", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range l.Lines {
		if contains(line, "hunter22") {
			t.Fatalf("secret in logs: %q", line)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestDriverDenialIsAudited(t *testing.T) {
	r := newRig(t)
	r.driver.DeployErr = &deploy.DeniedError{Err: errors.New("host key of web1 changed: presented SHA256:abc, expected SHA256:def")}
	j, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy})
	if err != nil {
		t.Fatal(err)
	}
	got := waitState(t, r.store, j.ID, deploy.Failed)
	if !strings.Contains(got.Reason, "SHA256:abc") {
		t.Fatalf("reason %q", got.Reason)
	}
	var denial, outcome int
	for _, e := range r.store.Events() {
		switch {
		case e.Kind == audit.KindDenial && e.JobID == j.ID && strings.Contains(e.Outcome, "SHA256:def"):
			denial++
		case e.Kind == audit.KindOutcome && e.IntentSeq == j.IntentSeq:
			outcome++
		}
	}
	if denial != 1 || outcome != 1 {
		t.Fatalf("denial rows %d, outcomes %d; want 1 and 1", denial, outcome)
	}
}
