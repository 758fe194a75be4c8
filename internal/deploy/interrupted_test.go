package deploy_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
)

// procStore is the in-memory store with step process records, as the sqlite
// store keeps them.
type procStore struct {
	*deploytest.Store
	mu    sync.Mutex
	procs map[string]deploy.StepProcess
}

func (s *procStore) AddStepProcess(_ context.Context, p deploy.StepProcess) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs[p.Token] = p
	return nil
}

func (s *procStore) RemoveStepProcess(_ context.Context, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.procs, token)
	return nil
}

func (s *procStore) StepProcesses(context.Context) ([]deploy.StepProcess, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []deploy.StepProcess
	for _, p := range s.procs {
		out = append(out, p)
	}
	return out, nil
}

// interruptedRig deploys two releases with the fake driver, then leaves a
// deploy job running as a crash would, its FromRelease and Release chosen by
// pick from the older and the current release; Recover then interrupts it.
func interruptedRig(t *testing.T, pick func(older, current string) (from, release string)) (*rig, *deploy.Job, string, string) {
	t.Helper()
	r := newRig(t)
	ctx := context.Background()
	for range 2 {
		j, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "staging", Action: deploy.ActionDeploy})
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, r.store, j.ID, deploy.Succeeded)
	}
	rs, err := r.driver.Releases(ctx)
	if err != nil || len(rs) != 2 {
		t.Fatalf("releases %v %v", rs, err)
	}
	older, current := rs[1].ID, rs[0].ID // newest first
	from, release := pick(older, current)
	j := &deploy.Job{App: "demo", Env: "staging", Action: deploy.ActionDeploy, State: deploy.Queued, RequestedBy: alice,
		FromRelease: from, Release: release}
	in := &audit.Event{Kind: audit.KindIntent, Command: "deploy", App: "demo", Env: "staging"}
	if err := r.store.CreateJob(ctx, j, nil, in); err != nil {
		t.Fatal(err)
	}
	j.IntentSeq, j.State = in.Seq, deploy.Running
	if err := r.store.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.engine.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	return r, j, older, current
}

// The job switched (current is its release): Rollback puts back the release
// live before it and takes over its lock in the same job.
func TestRollbackOfAnInterruptedJobThatSwitched(t *testing.T) {
	// Killed after the switch: current is the job's release.
	r, j, older, current := interruptedRig(t, func(older, current string) (string, string) { return older, current })
	ctx := context.Background()
	got, _ := r.store.Job(ctx, j.ID)
	if got.State != deploy.Interrupted || got.Switch != deploy.SwitchDone {
		t.Fatalf("recovered %s, switch %q", got.State, got.Switch)
	}
	// A plain deploy is still refused: the lock is the interrupted job's.
	if _, err := r.engine.Submit(ctx, deploy.JobRequest{Who: bob, App: "demo", Env: "staging", Action: deploy.ActionDeploy}); !errors.As(err, new(*deploy.LockedError)) {
		t.Fatalf("deploy while interrupted: %v", err)
	}
	rb, err := r.engine.RollbackInterrupted(ctx, j.ID, bob, deploy.ApprovalPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Action != deploy.ActionRollback || rb.RollbackTo != older || rb.FromRelease != current {
		t.Fatalf("rollback job %+v, want %s → %s", rb, current, older)
	}
	waitState(t, r.store, rb.ID, deploy.Succeeded)
	if r.driver.Current() != older {
		t.Fatalf("current %s, want %s", r.driver.Current(), older)
	}
	old, _ := r.store.Job(ctx, j.ID)
	if old.LockReleasedBy != "bob (job #"+strconv.FormatInt(rb.ID, 10)+")" {
		t.Fatalf("interrupted job says lock released by %q", old.LockReleasedBy)
	}
	if _, err := r.store.Lock(ctx, "demo", "staging"); !errors.Is(err, deploy.ErrNotFound) {
		t.Fatalf("lock after the rollback: %v", err)
	}
	// Pressing it again does nothing twice.
	if _, err := r.engine.RollbackInterrupted(ctx, j.ID, bob, deploy.ApprovalPolicy{}); err == nil || !strings.Contains(err.Error(), "already released by bob") {
		t.Fatalf("second press: %v", err)
	}
}

// The job never switched: there is nothing to roll back; Unlock releases the
// lock and the job says by whom.
func TestInterruptedJobThatNeverSwitched(t *testing.T) {
	// Killed before the switch: current is still the release it found.
	r, j, _, current := interruptedRig(t, func(_, current string) (string, string) { return current, "20261122-100009-3" })
	ctx := context.Background()
	got, _ := r.store.Job(ctx, j.ID)
	if got.Switch != deploy.SwitchNever {
		t.Fatalf("switch %q, want never", got.Switch)
	}
	_, err := r.engine.RollbackInterrupted(ctx, j.ID, bob, deploy.ApprovalPolicy{})
	var refusal *deploy.Refusal
	if !errors.As(err, &refusal) || !strings.Contains(err.Error(), "never switched") || r.driver.Rollbacks.Load() != 0 {
		t.Fatalf("rollback of a job that never switched: %v (%d rollbacks)", err, r.driver.Rollbacks.Load())
	}
	if _, err := r.engine.Unlock(ctx, "demo", "staging", alice, false); err != nil {
		t.Fatal(err)
	}
	got, _ = r.store.Job(ctx, j.ID)
	if got.LockReleasedBy != "alice" || got.State != deploy.Interrupted {
		t.Fatalf("after unlock: %s, released by %q", got.State, got.LockReleasedBy)
	}
	if r.driver.Current() != current {
		t.Fatal("unlock changed what is live")
	}
}

// Recovery stops what a crash left of a job's steps before anyone hears of
// the job, and says so on its card.
func TestRecoverStopsLeftoverStepsBeforeAnnouncing(t *testing.T) {
	store := &procStore{Store: deploytest.NewStore(), procs: map[string]deploy.StepProcess{}}
	obs := &recorder{}
	var killed []deploy.StepProcess
	e := deploy.NewEngine(deploy.Options{Store: store, Observer: obs,
		Drivers: func(string, string) (deploy.Driver, bool) { return deploytest.NewDriver(), true },
		KillLeftovers: func(p deploy.StepProcess) (int, error) {
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.seen) != 0 {
				return 0, errors.New("killed after the job was announced")
			}
			killed = append(killed, p)
			return 2, nil
		}})
	j := runningJob(t, store.Store, &deploy.Job{Action: deploy.ActionDeploy, Release: "r9"})
	_ = store.AddStepProcess(context.Background(), deploy.StepProcess{JobID: j.ID, PGID: 4242, Token: "t1"})
	got, err := e.Recover(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("recover: %v %v", got, err)
	}
	if len(killed) != 1 || killed[0].PGID != 4242 {
		t.Fatalf("killed %+v", killed)
	}
	if left, _ := store.StepProcesses(context.Background()); len(left) != 0 {
		t.Fatalf("records left %+v", left)
	}
	if out := got[0].Output; len(out) == 0 || !strings.Contains(out[len(out)-1], "stopped 2 step process(es)") {
		t.Fatalf("output %q", got[0].Output)
	}
}

// Where rollbacks need a second person, the card's Rollback waits for the
// approval and only then takes over the interrupted job's lock.
func TestRollbackOfAnInterruptedJobWithApproval(t *testing.T) {
	r, j, older, _ := interruptedRig(t, func(older, current string) (string, string) { return older, current })
	ctx := context.Background()
	rb, err := r.engine.RollbackInterrupted(ctx, j.ID, alice, prod)
	if err != nil || rb.State != deploy.AwaitingApproval {
		t.Fatalf("rollback: %+v, %v", rb, err)
	}
	if l, err := r.store.Lock(ctx, "demo", "staging"); err != nil || l.JobID != j.ID {
		t.Fatalf("lock while awaiting approval: %+v %v; want it still job #%d's", l, err, j.ID)
	}
	if _, err := r.engine.Decide(ctx, rb.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	waitState(t, r.store, rb.ID, deploy.Succeeded)
	if r.driver.Current() != older {
		t.Fatalf("current %s, want %s", r.driver.Current(), older)
	}
	if old, _ := r.store.Job(ctx, j.ID); !strings.HasPrefix(old.LockReleasedBy, "alice (job #") {
		t.Fatalf("interrupted job's lock released by %q", old.LockReleasedBy)
	}
}
