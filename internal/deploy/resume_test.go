package deploy_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
)

// resumable is a driver whose deploys go on on the target after a crash.
type resumable struct {
	*deploytest.Driver
	resumed atomic.Int32
	req     atomic.Value
}

func (r *resumable) Resume(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	r.resumed.Add(1)
	r.req.Store(req)
	p.Step("wait", deploy.StepDone, "done on the target")
	return deploy.Result{Release: req.Release, Message: "finished while shipbot was away"}, nil
}

// runningJob stores j as a job of alice on demo/prod that a crashed process
// left running, with its audit intent.
func runningJob(t *testing.T, store *deploytest.Store, j *deploy.Job) *deploy.Job {
	t.Helper()
	ctx := context.Background()
	j.App, j.Env, j.RequestedBy, j.State = "demo", "prod", alice, deploy.Queued
	in := &audit.Event{Kind: audit.KindIntent, Actor: "alice", Command: string(j.Action), App: "demo", Env: "prod", Decision: "allowed"}
	if err := store.CreateJob(ctx, j, nil, in); err != nil {
		t.Fatal(err)
	}
	j.IntentSeq, j.State = in.Seq, deploy.Running
	if err := store.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestRecoverResumesADeployTheTargetIsStillRunning(t *testing.T) {
	store := deploytest.NewStore()
	ctx := context.Background()
	j := runningJob(t, store, &deploy.Job{Action: deploy.ActionDeploy, Ref: "v9", Release: "20261123-010000-1"})
	// A new process starts.
	d := &resumable{Driver: deploytest.NewDriver()}
	e := deploy.NewEngine(deploy.Options{Store: store, Drivers: func(app, env string) (deploy.Driver, bool) { return d, true }})
	interrupted, err := e.Recover(ctx)
	if err != nil || len(interrupted) != 0 {
		t.Fatalf("recover: %v, interrupted %d", err, len(interrupted))
	}
	done := waitState(t, store, j.ID, deploy.Succeeded)
	if d.resumed.Load() != 1 || d.Deploys.Load() != 0 {
		t.Fatalf("resumed %d, deployed %d: the deploy must be followed, not started again", d.resumed.Load(), d.Deploys.Load())
	}
	if req := d.req.Load().(deploy.DeployRequest); req.JobID != j.ID || req.Release != j.Release || req.Ref != "v9" {
		t.Errorf("resume request = %+v", req)
	}
	if done.Reason != "finished while shipbot was away" {
		t.Errorf("reason = %q", done.Reason)
	}
	if _, err := store.Lock(ctx, "demo", "prod"); err == nil {
		t.Error("lock still held after the resumed deploy ended")
	}
	outs := 0
	for _, ev := range store.Events() {
		if ev.Kind == audit.KindOutcome && ev.IntentSeq == j.IntentSeq {
			outs++
		}
	}
	if outs != 1 {
		t.Errorf("%d outcomes close the deploy's intent, want 1", outs)
	}
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	e.Drain(ctx2)
}

func TestRecoverMarksAnInterruptedBackupFailed(t *testing.T) {
	store := deploytest.NewStore()
	ctx := context.Background()
	j := runningJob(t, store, &deploy.Job{Action: deploy.ActionBackup, Backup: "20261123-010000-1"})
	d := deploytest.NewBackupDriver()
	e := deploy.NewEngine(deploy.Options{Store: store, Drivers: func(app, env string) (deploy.Driver, bool) { return d, true }})
	got, err := e.Recover(ctx)
	if err != nil || len(got) != 1 || got[0].State != deploy.Interrupted {
		t.Fatalf("recover: %v %+v", err, got)
	}
	b, err := store.Backup(ctx, "demo", "prod", j.Backup)
	if err != nil || b.State != deploy.BackupFailed {
		t.Fatalf("interrupted backup record: %+v %v", b, err)
	}
	if _, err := e.Unlock(ctx, "demo", "prod", alice, false); err != nil {
		t.Fatal(err)
	}
	_, err = e.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "prod", Action: deploy.ActionVerify, Backup: j.Backup})
	if err == nil || !strings.Contains(err.Error(), "is failed") {
		t.Fatalf("drill of an interrupted backup: %v", err)
	}
}
