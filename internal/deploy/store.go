package deploy

import (
	"context"

	"github.com/shipbot/shipbot/internal/audit"
)

// Store persists jobs, approvals, locks and releases together with their audit
// rows. Each method is one transaction: the state change and the audit events
// passed to it commit together or not at all, so an audit write that fails
// leaves nothing done (fail closed). Events get JobID set to the job's id when
// it is 0.
type Store interface {
	// CreateJob inserts j, setting j.ID and j.Created. If j.State is Queued it
	// takes the (app, env) lock for the job, returning *LockedError when the
	// lock is held. If a is not nil it is inserted bound to the job (a.JobID set).
	// The caller follows with UpdateJob storing what needs the id (a new
	// release's name, the intent's seq); a store that reports job changes
	// to chat reports the job first with that update, as new.
	CreateJob(ctx context.Context, j *Job, a *Approval, events ...*audit.Event) error
	// UpdateJob stores j if the stored job's state is one of from, else
	// ErrConflict. Entering Queued takes the lock (*LockedError if another
	// holder has it); entering a terminal state other than Interrupted
	// releases the lock the job holds.
	UpdateJob(ctx context.Context, j *Job, from []State, events ...*audit.Event) error
	// DecideApproval stores a (pending -> a.State) and j (awaiting_approval ->
	// j.State) in one transaction: ErrConflict if a is no longer pending.
	DecideApproval(ctx context.Context, a *Approval, j *Job, events ...*audit.Event) error
	Job(ctx context.Context, id int64) (*Job, error) // ErrNotFound
	Jobs(ctx context.Context, f JobFilter) ([]*Job, error)
	Approval(ctx context.Context, id string) (*Approval, error) // ErrNotFound
	PendingApprovals(ctx context.Context) ([]*Approval, error)
	// Lock returns the lock on (app, env) or ErrNotFound.
	Lock(ctx context.Context, app, env string) (*Lock, error)
	Locks(ctx context.Context) ([]Lock, error)
	// AcquireLock takes a manual lock; *LockedError if held.
	AcquireLock(ctx context.Context, l Lock, events ...*audit.Event) error
	// ReleaseLock removes the lock on (app, env) if check(lock) returns nil;
	// ErrNotFound if there is none. check runs inside the transaction.
	ReleaseLock(ctx context.Context, app, env string, check func(Lock) error, events ...*audit.Event) error
	// UpdateLock changes the lock on (app, env) through update, which runs
	// inside the transaction and may refuse with an error; only Expires and
	// Reminded are stored. ErrNotFound if there is no lock.
	UpdateLock(ctx context.Context, app, env string, update func(*Lock) error, events ...*audit.Event) error
	PutRelease(ctx context.Context, r Release) error
	Releases(ctx context.Context, app, env string) ([]Release, error) // newest first
	// Append writes events that belong to no state change (denials, read commands).
	Append(ctx context.Context, events ...*audit.Event) error
}

// JobFilter narrows Jobs. Zero values match everything; States matches any.
type JobFilter struct {
	App, Env string
	States   []State
	Limit    int // newest first
}

// InterruptedLocks is implemented by a store that notes, on an interrupted
// job, who released the lock it held (the sqlite store and deploytest do),
// so its card and /job can say so. Without it the lock is released all the
// same and the job keeps saying it holds it.
type InterruptedLocks interface {
	// ReleaseLockBy is ReleaseLock that, when the lock belongs to an
	// interrupted job, sets that job's LockReleasedBy to by in the same
	// transaction.
	ReleaseLockBy(ctx context.Context, app, env, by string, check func(Lock) error, events ...*audit.Event) error
}
