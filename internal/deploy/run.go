package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

// start launches a queued job in its own goroutine. The goroutine works on
// its own copy, so the caller may go on reading j.
func (e *Engine) start(j *Job) error { return e.launch(j, false) }

// launch runs j in its own goroutine; resume follows a deploy the target
// is still doing (see Resumer) instead of starting it.
func (e *Engine) launch(j *Job, resume bool) error {
	own := *j
	j = &own
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining {
		// The job is queued and holds its lock; Recover on the next start
		// marks it interrupted so a person decides.
		return ErrDraining
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	e.running[j.ID] = &run{cancel: cancel}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer cancel(nil)
		e.execute(ctx, j, resume)
		e.mu.Lock()
		delete(e.running, j.ID)
		if len(e.running) == 0 {
			close(e.idle)
			e.idle = make(chan struct{})
		}
		e.mu.Unlock()
	}()
	return nil
}

// cancelRequest is the cause of a /cancel.
type cancelRequest struct{ by string }

func (c cancelRequest) Error() string { return "cancelled by " + c.by }

// execute runs one job from queued to its end. The job's intent was written
// when it was created; whatever happens, exactly one outcome row closes it.
func (e *Engine) execute(ctx context.Context, j *Job, resume bool) {
	d, err := e.driver(j.App, j.Env)
	if err == nil {
		err = e.recheckApproval(ctx, j)
	}
	if err != nil {
		e.finish(j, Failed, err.Error(), []State{j.State})
		return
	}
	if !resume {
		j.State, j.Started = Running, e.now()
		if err := e.store.UpdateJob(ctx, j, []State{Queued}); err != nil {
			e.log.Error("job start not recorded", "job", j.ID, "err", err)
			e.finish(j, Failed, "could not record job start", []State{Queued})
			return
		}
	}
	tr := newTracker(e, j)
	e.observer.JobChanged(tr.snapshot())

	runCtx, cancel := context.WithTimeout(e.withProcesses(ctx, j), e.timeout)
	defer cancel()
	var res Result
	switch j.Action {
	case ActionDeploy:
		rel := Release{App: j.App, Env: j.Env, ID: j.Release, Ref: j.Ref, JobID: j.ID, By: j.RequestedBy.User, Created: e.now(), State: ReleaseBuilding}
		if e.policy(j.App, j.Env).BeforeDeploy && !resume {
			rel.BackupID, err = e.preDeployBackup(runCtx, j, tr)
		} else if resume {
			rel.BackupID = j.BackupID
		}
		if err == nil {
			err = e.store.PutRelease(ctx, rel)
		}
		if err == nil {
			req := DeployRequest{JobID: j.ID, App: j.App, Env: j.Env, Ref: j.Ref,
				Release: j.Release, Previous: j.FromRelease, By: j.RequestedBy.User, Redeploy: j.Redeploy}
			if r, ok := d.(Resumer); ok && resume {
				tr.Output("shipbot restarted: following the deploy the target is still running")
				res, err = r.Resume(runCtx, req, tr)
			} else {
				res, err = d.Deploy(runCtx, req, tr)
			}
			rel.State = ReleaseActive
			if err != nil || res.RolledBack {
				rel.State = ReleaseFailed
			}
			if perr := e.store.PutRelease(context.WithoutCancel(ctx), rel); perr != nil {
				e.log.Error("release record not updated", "job", j.ID, "release", rel.ID, "err", perr)
			}
		}
	case ActionRollback:
		if j.BackupID != "" {
			res, err = e.runRollbackWithDB(runCtx, j, d, tr)
			break
		}
		res, err = d.Rollback(runCtx, RollbackRequest{JobID: j.ID, App: j.App, Env: j.Env, To: j.Release,
			From: j.FromRelease, By: j.RequestedBy.User}, tr)
		if err == nil && j.FromRelease != "" {
			e.markRolledBack(context.WithoutCancel(ctx), j)
		}
	case ActionStop:
		res, err = d.(StartStopper).Stop(runCtx, tr)
	case ActionStart:
		res, err = d.(StartStopper).Start(runCtx, tr)
	case ActionBackup:
		res, err = e.runBackupJob(runCtx, j, tr)
	case ActionVerify:
		res, err = e.runVerifyJob(runCtx, j, tr)
	case ActionRestore:
		res, err = e.runRestoreJob(runCtx, j, tr, false)
	default:
		err = fmt.Errorf("unknown action %q", j.Action)
	}
	tr.copyInto(j)
	switch {
	case err == nil && res.RolledBack:
		e.finish(j, RolledBack, e.redact.String(res.Message), []State{Running})
	case err == nil:
		e.finish(j, Succeeded, e.redact.String(res.Message), []State{Running})
	case errors.As(context.Cause(ctx), new(cancelRequest)):
		e.finish(j, Cancelled, context.Cause(ctx).Error(), []State{Running})
	case errors.Is(context.Cause(ctx), errShutdown):
		e.finish(j, Cancelled, "shipbot shut down before the job ended", []State{Running})
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		e.finish(j, Failed, fmt.Sprintf("timeout after %s", e.timeout), []State{Running})
	default:
		var denied *DeniedError
		if errors.As(err, &denied) {
			e.finish(j, Failed, e.redact.String(err.Error()), []State{Running}, &audit.Event{Kind: audit.KindDenial,
				Actor: j.RequestedBy.User, Identity: j.RequestedBy.Identity, Chat: j.RequestedBy.Chat, Command: string(j.Action),
				Args: []string{j.Release}, App: j.App, Env: j.Env, Decision: "denied", Outcome: "driver refused: " + e.redact.String(err.Error())})
			return
		}
		e.finish(j, Failed, e.redact.String(err.Error()), []State{Running})
	}
}

func (e *Engine) markRolledBack(ctx context.Context, j *Job) {
	recs, err := e.store.Releases(ctx, j.App, j.Env)
	if err != nil {
		return
	}
	for _, r := range recs {
		if r.ID == j.FromRelease && r.State == ReleaseActive {
			r.State = ReleaseRolledBack
			if err := e.store.PutRelease(ctx, r); err != nil {
				e.log.Error("release record not updated", "release", r.ID, "err", err)
			}
		}
	}
}

// recheckApproval holds the approval to its job when the job starts: a row
// edited in the database between approval and start does not run anything.
func (e *Engine) recheckApproval(ctx context.Context, j *Job) error {
	if j.ApprovalID == "" {
		return nil
	}
	a, err := e.store.Approval(ctx, j.ApprovalID)
	if err != nil {
		return fmt.Errorf("approval %s: %w", j.ApprovalID, err)
	}
	switch {
	case a.State != ApprovalApproved:
		return fmt.Errorf("approval %s is %s, not approved", a.ID, a.State)
	case a.DecidedBy == "" || a.DecidedBy == a.RequestedBy || a.DecidedBy == j.RequestedBy.User:
		return fmt.Errorf("approval %s was not given by a second person", a.ID)
	case !bound(a, j):
		return fmt.Errorf("approval %s does not match job #%d", a.ID, j.ID)
	}
	return nil
}

// finish moves j to its end state and writes the outcome that closes its
// intent. If the store refuses, it retries: an intent without an outcome is
// only acceptable after a crash, where Recover closes it.
func (e *Engine) finish(j *Job, s State, reason string, from []State, extra ...*audit.Event) {
	j.State, j.Reason, j.Ended = s, reason, e.now()
	text := string(s)
	if reason != "" && !strings.HasPrefix(reason, text) {
		text += ": " + reason
	} else if reason != "" {
		text = reason // "cancelled by bob" says it already
	}
	ev := outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, text)
	ev.Args = []string{j.Release}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := e.store.UpdateJob(context.Background(), j, from, append([]*audit.Event{ev}, extra...)...)
		if err == nil {
			break
		}
		e.log.Error("job outcome not recorded", "job", j.ID, "attempt", attempt, "err", err)
		if errors.Is(err, ErrConflict) || attempt == 8 {
			break
		}
		time.Sleep(backoff) // retry pacing, not waiting for state
		backoff *= 2
	}
	e.observer.JobChanged(*j)
}

// Cancel stops a job. An awaiting job is cancelled at once; a queued or
// running job has its context cancelled and ends cancelled once the driver
// has stopped the work.
func (e *Engine) Cancel(ctx context.Context, id int64, who Who) (*Job, error) {
	j, err := e.store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	switch j.State {
	case AwaitingApproval:
		a, err := e.store.Approval(ctx, j.ApprovalID)
		if err != nil {
			return nil, err
		}
		a.State, a.DecidedBy, a.Decided = ApprovalDenied, who.User, e.now()
		j.State, j.Reason, j.Ended = Cancelled, "cancelled by "+who.User, e.now()
		in := intent(who, "cancel", j.App, j.Env, []string{fmt.Sprint(id)})
		out := outcome(who, "cancel", j.App, j.Env, j.ID, 0, fmt.Sprintf("cancelled job #%d", id))
		out.Closes = in
		jobOut := outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, "cancelled by "+who.User)
		if err := e.store.DecideApproval(ctx, a, j, in, out, jobOut); err != nil {
			return nil, err
		}
		e.observer.JobChanged(*j)
		return j, nil
	case Queued, Running:
		e.mu.Lock()
		r := e.running[id]
		e.mu.Unlock()
		if r == nil {
			return j, refuse("job #%d is %s but not running in this process", id, j.State)
		}
		in := intent(who, "cancel", j.App, j.Env, []string{fmt.Sprint(id)})
		out := outcome(who, "cancel", j.App, j.Env, j.ID, 0, fmt.Sprintf("cancel requested for job #%d", id))
		out.Closes = in
		if err := e.store.Append(ctx, in, out); err != nil {
			return nil, err
		}
		r.cancel(cancelRequest{by: who.User})
		return j, nil
	default:
		return j, refuse("job #%d already ended (%s)", id, j.State)
	}
}

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
		if j.State == Running && j.Action == ActionDeploy {
			if d, err := e.driver(j.App, j.Env); err == nil {
				if _, ok := d.(Resumer); ok {
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
		ev := outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, "interrupted: "+j.Reason)
		if err := e.store.UpdateJob(ctx, j, []State{from}, ev); err != nil {
			return out, fmt.Errorf("job #%d: %w", j.ID, err)
		}
		if j.Action == ActionDeploy && j.Release != "" {
			e.failBuilding(ctx, j)
		}
		if j.Action == ActionBackup && j.Release != "" {
			// Its files may be partial: never offer it for a restore.
			if bs, ok := e.store.(BackupStore); ok {
				_ = bs.PutBackup(ctx, Backup{App: j.App, Env: j.Env, ID: j.Release, JobID: j.ID, By: j.RequestedBy.User,
					Reason: "interrupted", Created: j.Started, State: BackupFailed,
					Error: "shipbot stopped during the backup; partial files may remain on the host"})
			}
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
	case j.Action != ActionDeploy && j.Action != ActionRollback:
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
	if j.Action != ActionDeploy && j.Action != ActionRollback {
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
	return e.Submit(ctx, JobRequest{Who: who, App: j.App, Env: j.Env, Action: ActionRollback, Release: j.FromRelease,
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

// Drain stops taking new work and waits for running jobs until ctx ends;
// then it cancels what still runs and waits for the drivers to stop it.
func (e *Engine) Drain(ctx context.Context) {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	e.mu.Lock()
	for _, r := range e.running {
		r.cancel(errShutdown)
	}
	e.mu.Unlock()
	<-done
}

// WaitIdle returns when no job is queued or running, or when ctx ends.
func (e *Engine) WaitIdle(ctx context.Context) error {
	for {
		e.mu.Lock()
		n, ch := len(e.running), e.idle
		e.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tracker is the Progress a driver reports to: it keeps the job's checklist
// and last output lines, persists step changes, and tells the observer.
type tracker struct {
	e   *Engine
	mu  sync.Mutex
	job Job
}

var _ Progress = (*tracker)(nil)

func newTracker(e *Engine, j *Job) *tracker {
	t := &tracker{e: e, job: *j}
	t.job.Steps = append([]Step(nil), j.Steps...)
	t.job.Output = append([]string(nil), j.Output...)
	return t
}

// stepTimes stamps when s began running and when it finished.
func stepTimes(s *Step, now time.Time) {
	switch s.State {
	case StepRunning:
		if s.Started.IsZero() {
			s.Started = now
		}
	case StepDone, StepFailed:
		if s.Started.IsZero() {
			s.Started = now
		}
		if s.Ended.IsZero() {
			s.Ended = now
		}
	}
}

func (t *tracker) Step(name string, state StepState, detail string) {
	t.mu.Lock()
	found := false
	now := t.e.now()
	for i := range t.job.Steps {
		if t.job.Steps[i].Name == name {
			t.job.Steps[i].State, t.job.Steps[i].Detail = state, t.e.redact.String(detail)
			stepTimes(&t.job.Steps[i], now)
			found = true
		}
	}
	if !found {
		t.job.Steps = append(t.job.Steps, Step{Name: name, State: state, Detail: t.e.redact.String(detail)})
		stepTimes(&t.job.Steps[len(t.job.Steps)-1], now)
	}
	snap := t.copyLocked()
	t.mu.Unlock()
	// Persisting steps lets /job show them from another process; a failure
	// here must not stop the deploy, the final write carries them again.
	if err := t.e.store.UpdateJob(context.Background(), &snap, []State{Running}); err != nil {
		t.e.log.Warn("job progress not stored", "job", snap.ID, "err", err)
	}
	t.e.observer.JobChanged(snap)
}

func (t *tracker) Output(line string) {
	t.mu.Lock()
	t.job.Output = append(t.job.Output, t.e.redact.String(line))
	if over := len(t.job.Output) - t.e.outLines; over > 0 {
		t.job.Output = append(t.job.Output[:0], t.job.Output[over:]...)
	}
	snap := t.copyLocked()
	t.mu.Unlock()
	t.e.observer.JobChanged(snap)
}

func (t *tracker) copyLocked() Job {
	j := t.job
	j.Steps = append([]Step(nil), t.job.Steps...)
	j.Output = append([]string(nil), t.job.Output...)
	return j
}

func (t *tracker) snapshot() Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.copyLocked()
}

func (t *tracker) copyInto(j *Job) {
	s := t.snapshot()
	j.Steps, j.Output = s.Steps, s.Output
}

// Lock takes a manual lock on (app, env) that does not expire (see LockFor).
func (e *Engine) Lock(ctx context.Context, app, env, reason string, who Who) error {
	_, err := e.LockFor(ctx, app, env, reason, who, 0)
	return err
}

// Unlock removes the lock on (app, env). The holder may; so may anyone with
// force. A lock held by a queued or running job is never removed: cancel the job.
func (e *Engine) Unlock(ctx context.Context, app, env string, who Who, force bool) (Lock, error) {
	in := intent(who, "unlock", app, env, nil)
	out := outcome(who, "unlock", app, env, 0, 0, "unlocked")
	out.Closes = in
	var held Lock
	release := e.store.ReleaseLock
	il, byJob := e.store.(InterruptedLocks)
	if byJob {
		release = func(ctx context.Context, app, env string, check func(Lock) error, events ...*audit.Event) error {
			return il.ReleaseLockBy(ctx, app, env, who.User, check, events...)
		}
	}
	err := release(ctx, app, env, func(l Lock) error {
		held = l
		if l.JobID != 0 {
			j, err := e.store.Job(ctx, l.JobID)
			if err == nil && (j.State == Queued || j.State == Running) {
				return refuse("%s/%s is locked by running job #%d; cancel it instead", app, env, l.JobID)
			}
		}
		if l.Owner != who.User && !force {
			return refuse("%s/%s is locked by %s; only they or someone with lock:force may unlock", app, env, l.Owner)
		}
		out.Outcome = fmt.Sprintf("unlocked (was held by %s: %s)", l.Owner, l.Reason)
		if l.JobID != 0 {
			out.Outcome = fmt.Sprintf("unlocked (was held by %s's job #%d: %s)", l.Owner, l.JobID, l.Reason)
		}
		return nil
	}, in, out)
	if err == nil && held.JobID != 0 && byJob {
		// An interrupted job's card and /job now say who released its lock.
		if j, jerr := e.store.Job(ctx, held.JobID); jerr == nil && j.State == Interrupted && j.LockReleasedBy != "" {
			e.observer.JobChanged(*j)
		}
	}
	return held, err
}

// Plan says what a deploy would do, running nothing.
func (e *Engine) Plan(ctx context.Context, app, env, ref string) (Plan, *Lock, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return Plan{}, nil, err
	}
	cur, err := e.currentRelease(ctx, d)
	if err != nil {
		return Plan{}, nil, err
	}
	p, err := d.Plan(ctx, DeployRequest{App: app, Env: env, Ref: ref, Release: NewReleaseID(e.now(), 0), Previous: cur})
	if err != nil {
		return Plan{}, nil, err
	}
	l, err := e.store.Lock(ctx, app, env)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return p, nil, err
	}
	return p, l, nil
}

// ReleaseView is a release on the target joined with the engine's record of it.
type ReleaseView struct {
	ReleaseInfo
	Record *Release // nil when the engine has no record (made by hand, or before shipbot)
}

// Releases lists what is on the target, newest first, with who/when/state.
func (e *Engine) Releases(ctx context.Context, app, env string) ([]ReleaseView, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return nil, err
	}
	onDisk, err := d.Releases(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := e.store.Releases(ctx, app, env)
	if err != nil {
		return nil, err
	}
	byID := map[string]*Release{}
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	out := make([]ReleaseView, 0, len(onDisk))
	for _, r := range onDisk {
		out = append(out, ReleaseView{ReleaseInfo: r, Record: byID[r.ID]})
	}
	return out, nil
}

// Status asks the driver what is live.
func (e *Engine) Status(ctx context.Context, app, env string) (Status, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return Status{}, err
	}
	return d.Status(ctx)
}

// Logs reads bounded log lines; secrets known to the redactor are removed.
func (e *Engine) Logs(ctx context.Context, app, env string, lines int) (Logs, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return Logs{}, err
	}
	l, err := d.Logs(ctx, lines)
	for i := range l.Lines {
		l.Lines[i] = e.redact.String(l.Lines[i])
	}
	return l, err
}

// Store gives read access for listings.
func (e *Engine) Store() Store { return e.store }
