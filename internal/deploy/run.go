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
	res, err := actionOf(j.Action).run(e, runJob{ctx: ctx, runCtx: runCtx, j: j, d: d, tr: tr, resume: resume})
	tr.stop()
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
			e.finish(j, Failed, e.redact.String(err.Error()), []State{Running}, audit.Denial(j.RequestedBy, string(j.Action),
				[]string{j.Target()}, j.App, j.Env, "driver refused: "+e.redact.String(err.Error())))
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
	ev := audit.Outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, text)
	ev.Args = []string{j.Target()}
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
		in := audit.Intent(who, "cancel", j.App, j.Env, []string{fmt.Sprint(id)})
		out := audit.Closing(in, j.ID, fmt.Sprintf("cancelled job #%d", id))
		jobOut := audit.Outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, "cancelled by "+who.User)
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
		in := audit.Intent(who, "cancel", j.App, j.Env, []string{fmt.Sprint(id)})
		out := audit.Closing(in, j.ID, fmt.Sprintf("cancel requested for job #%d", id))
		if err := e.store.Append(ctx, in, out); err != nil {
			return nil, err
		}
		r.cancel(cancelRequest{by: who.User})
		return j, nil
	default:
		return j, refuse("job #%d already ended (%s)", id, j.State)
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
// and last output lines, stores them (a step at once, output at most once
// per Options.OutputEvery), and tells the observer. What it stores is what
// the chat sees: the store writes the job's card with each change.
type tracker struct {
	e   *Engine
	mu  sync.Mutex
	job Job
	// flush is the pending write of new output lines; stopped is set once
	// the job's work returned, after which only finish writes the job.
	flush   *time.Timer
	stopped bool
	// wmu orders the tracker's writes, each of a snapshot taken under it,
	// so an older snapshot never lands after a newer one.
	wmu sync.Mutex
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
	t.persist()
	t.e.observer.JobChanged(snap)
}

// persist stores the newest snapshot. A failure here must not stop the
// deploy: the next write, and the final one, carry the same lines again.
func (t *tracker) persist() {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	snap := t.snapshot()
	if err := t.e.store.UpdateJob(context.Background(), &snap, []State{Running}); err != nil {
		t.e.log.Warn("job progress not stored", "job", snap.ID, "err", err)
	}
}

func (t *tracker) Output(line string) {
	t.mu.Lock()
	t.job.Output = append(t.job.Output, t.e.redact.String(line))
	if over := len(t.job.Output) - t.e.outLines; over > 0 {
		t.job.Output = append(t.job.Output[:0], t.job.Output[over:]...)
	}
	if t.flush == nil && !t.stopped {
		// A build printing thousands of lines costs one write per
		// interval, not one per line.
		t.flush = time.AfterFunc(t.e.outputEvery, t.flushOutput)
	}
	snap := t.copyLocked()
	t.mu.Unlock()
	t.e.observer.JobChanged(snap)
}

func (t *tracker) flushOutput() {
	t.mu.Lock()
	t.flush = nil
	stopped := t.stopped
	t.mu.Unlock()
	if !stopped {
		t.persist()
	}
}

// stop ends the tracker's own writes once the job's work has returned:
// the job's final write, which carries every line, must be the last.
func (t *tracker) stop() {
	t.mu.Lock()
	t.stopped = true
	if t.flush != nil {
		t.flush.Stop()
		t.flush = nil
	}
	t.mu.Unlock()
	// A write in flight ends before this returns, so before finish writes.
	t.wmu.Lock()
	defer t.wmu.Unlock()
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
	in := audit.Intent(who, "unlock", app, env, nil)
	out := audit.Closing(in, 0, "unlocked")
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
		// The store rewrote the interrupted job's card with the release;
		// its watchers hear it here.
		if j, jerr := e.store.Job(ctx, held.JobID); jerr == nil && j.State == Interrupted && j.LockReleasedBy != "" {
			e.observer.JobChanged(*j)
		}
	}
	return held, err
}
