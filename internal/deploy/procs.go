package deploy

import (
	"context"
	"fmt"
	"time"
)

// StepProcess is a process group a driver started on this machine for one
// step of a job. It is recorded while the step runs so that, after a crash,
// the next start can stop what the dead process left running: a build
// script's children outlive their parent (they are re-parented to init) and
// would go on writing into the release while the chat already says
// "interrupted".
type StepProcess struct {
	JobID int64
	PGID  int
	// Token is a random value put into the step's environment. A process
	// group id is reused once the group is gone; only a group whose members
	// still carry the token is the step's.
	Token   string
	Started time.Time
}

// ProcessStore is implemented by a store that keeps step process groups
// (the sqlite store does). Each call is its own transaction.
type ProcessStore interface {
	// AddStepProcess inserts p, or updates the PGID of the record with
	// its token.
	AddStepProcess(ctx context.Context, p StepProcess) error
	RemoveStepProcess(ctx context.Context, token string) error
	StepProcesses(ctx context.Context) ([]StepProcess, error)
}

// ProcessRecorder is what a driver tells about the process groups it starts
// for a job. The engine puts one into the context it gives Deploy, Rollback
// and the other driver calls; drivers find it with ProcessRecorderFrom.
type ProcessRecorder interface {
	// Started records p (JobID is filled in by the recorder) before the step
	// goes on: once with PGID 0 just before the start, again with the group
	// once it exists. An error means it could not be recorded, and the
	// driver does not start, or stops, the step rather than run something a
	// crash could leave behind.
	Started(p StepProcess) error
	// Ended forgets p once the whole group is gone.
	Ended(p StepProcess)
}

type recorderKey struct{}

// WithProcessRecorder returns ctx carrying r.
func WithProcessRecorder(ctx context.Context, r ProcessRecorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// ProcessRecorderFrom returns the recorder in ctx, or nil.
func ProcessRecorderFrom(ctx context.Context) ProcessRecorder {
	r, _ := ctx.Value(recorderKey{}).(ProcessRecorder)
	return r
}

// jobProcesses records the step processes of one job in the store.
type jobProcesses struct {
	e     *Engine
	store ProcessStore
	job   int64
}

var _ ProcessRecorder = (*jobProcesses)(nil)

func (r *jobProcesses) Started(p StepProcess) error {
	p.JobID = r.job
	if p.Started.IsZero() {
		p.Started = r.e.now()
	}
	// Not the job's context: a step started just before a cancel is still
	// recorded, and its end still forgotten.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.store.AddStepProcess(ctx, p); err != nil {
		return fmt.Errorf("recording step process group %d of job #%d: %w", p.PGID, r.job, err)
	}
	return nil
}

func (r *jobProcesses) Ended(p StepProcess) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.store.RemoveStepProcess(ctx, p.Token); err != nil {
		// A stale row only makes the next start look for a group that is gone.
		r.e.log.Warn("step process record not removed", "job", r.job, "pgid", p.PGID, "err", err)
	}
}

// withProcesses gives the driver calls of job j a recorder, when the store
// keeps step processes.
func (e *Engine) withProcesses(ctx context.Context, j *Job) context.Context {
	ps, ok := e.store.(ProcessStore)
	if !ok {
		return ctx
	}
	return WithProcessRecorder(ctx, &jobProcesses{e: e, store: ps, job: j.ID})
}

// reapLeftovers stops every step process group a previous run of shipbot
// recorded and did not see end, and returns how many processes it stopped
// per job. It runs before anything else starts, so every recorded group is
// a leftover.
func (e *Engine) reapLeftovers(ctx context.Context) map[int64]int {
	ps, ok := e.store.(ProcessStore)
	if !ok || e.killLeftovers == nil {
		return nil
	}
	procs, err := ps.StepProcesses(ctx)
	if err != nil {
		e.log.Error("step processes of the previous run not read; leftovers may still run", "err", err)
		return nil
	}
	killed := map[int64]int{}
	for _, p := range procs {
		n, err := e.killLeftovers(p)
		if err != nil {
			// Kept: the next start tries again.
			e.log.Error("leftover step processes not stopped", "job", p.JobID, "pgid", p.PGID, "err", err)
			continue
		}
		if n > 0 {
			e.log.Warn("stopped leftover step processes of an interrupted job", "job", p.JobID, "pgid", p.PGID, "processes", n)
			killed[p.JobID] += n
		}
		if err := ps.RemoveStepProcess(ctx, p.Token); err != nil {
			e.log.Warn("step process record not removed", "job", p.JobID, "pgid", p.PGID, "err", err)
		}
	}
	return killed
}
