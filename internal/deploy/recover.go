package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

// Recover runs at start-up, before commands are accepted: jobs left queued or
// running by a crash become interrupted, keep their lock, and their intent is
// closed. It returns them so the chat can be told. A running deploy whose
// driver is a Resumer is followed to its end instead (it keeps running on
// the target whether shipbot watches or not).
func (e *Engine) Recover(ctx context.Context) ([]*Job, error) {
	// Steps of the dead process may still run: stop them before anyone is
	// told the job is interrupted, so nothing writes into its release after.
	reaped := e.reapLeftovers(ctx)
	js, err := e.store.Jobs(ctx, JobFilter{States: []State{Queued, Running}})
	if err != nil {
		return nil, err
	}
	var out []*Job
	for _, j := range js {
		if j.State == Running && actionOf(j.Action).resumable {
			if d, err := e.driver(j.App, j.Env); err == nil {
				if _, ok := As[Resumer](d); ok {
					// The target is still deploying: follow it rather than
					// leave a live deploy unobserved and its lock stuck.
					e.log.Info("resuming a deploy the target is still running", "job", j.ID)
					if err := e.launch(j, true); err != nil {
						return out, err
					}
					continue
				}
			}
		}
		from := j.State
		j.State, j.Reason, j.Ended = Interrupted, "shipbot stopped while the job was "+string(from), e.now()
		j.Switch = e.switchState(ctx, j, from)
		if n := reaped[j.ID]; n > 0 {
			j.Output = append(j.Output, fmt.Sprintf("shipbot restarted: stopped %d step process(es) the previous run left behind", n))
		}
		ev := audit.Outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, "interrupted: "+j.Reason)
		if err := e.store.UpdateJob(ctx, j, []State{from}, ev); err != nil {
			return out, fmt.Errorf("job #%d: %w", j.ID, err)
		}
		if at := actionOf(j.Action).interrupted; at != nil && j.Target() != "" {
			at(e, ctx, j)
		}
		out = append(out, j)
		e.observer.JobChanged(*j)
	}
	return out, nil
}

// switchState looks at the target to tell whether interrupted job j (a
// deploy or rollback) moved current away from the release it found live.
func (e *Engine) switchState(ctx context.Context, j *Job, from State) SwitchState {
	switch {
	case !j.Action.Switches():
		return SwitchUnknown
	case from == Queued:
		return SwitchNever // it never started
	}
	d, err := e.driver(j.App, j.Env)
	if err != nil {
		return SwitchUnknown
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cur, err := e.currentRelease(ctx, d)
	if err != nil {
		e.log.Warn("cannot tell whether the interrupted job switched", "job", j.ID, "err", err)
		return SwitchUnknown
	}
	if cur == j.FromRelease {
		return SwitchNever
	}
	return SwitchDone
}

// RollbackInterrupted is the Rollback of an interrupted job's card: make sure
// the release that was live before job id is live again (switch, restart,
// health check) in a rollback job that takes over job id's lock. If job id
// never switched there is nothing to roll back, and the answer says so.
func (e *Engine) RollbackInterrupted(ctx context.Context, id int64, who Who, approval ApprovalPolicy) (*Job, error) {
	j, err := e.store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State != Interrupted {
		return nil, refuse("job #%d is %s, not interrupted; use /rollback %s %s", id, j.State, j.App, j.Env)
	}
	if j.LockReleasedBy != "" {
		return nil, refuse("job #%d's lock was already released by %s; use /rollback %s %s", id, j.LockReleasedBy, j.App, j.Env)
	}
	if l, err := e.store.Lock(ctx, j.App, j.Env); err != nil || l.JobID != j.ID {
		return nil, refuse("job #%d no longer holds the lock of %s/%s; use /rollback %s %s", id, j.App, j.Env, j.App, j.Env)
	}
	if !j.Action.Switches() {
		return nil, refuse("job #%d (%s) switches no release: nothing to roll back; release its lock instead", id, j.Action)
	}
	if j.FromRelease == "" {
		return nil, refuse("no release was live before job #%d: nothing to go back to; release its lock instead", id)
	}
	d, err := e.driver(j.App, j.Env)
	if err != nil {
		return nil, err
	}
	cur, err := e.currentRelease(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("reading releases on %s/%s: %w", j.App, j.Env, err)
	}
	if cur == j.FromRelease {
		return nil, refuse("job #%d never switched: %s, the release live before it, is still live; nothing to roll back; release its lock instead", id, cur)
	}
	return e.Submit(ctx, JobRequest{Who: who, App: j.App, Env: j.Env, Action: ActionRollback, RollbackTo: j.FromRelease,
		Approval: approval, Args: []string{j.FromRelease, fmt.Sprintf("after-interrupted-job:%d", id)}, TakesOver: id})
}

func (e *Engine) failBuilding(ctx context.Context, j *Job) {
	recs, err := e.store.Releases(ctx, j.App, j.Env)
	if err != nil {
		return
	}
	for _, r := range recs {
		if r.ID == j.Release && r.State == ReleaseBuilding {
			r.State = ReleaseFailed
			_ = e.store.PutRelease(ctx, r)
		}
	}
}
