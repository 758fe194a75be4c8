package commands

import (
	"context"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// Engine is what the dispatcher asks of the deploy engine, declared here
// where it is used (deploy.Engine implements it): jobs, locks, and what a
// target says. The dispatcher never reaches past it into the engine's
// drivers or its store's writes.
type Engine interface {
	Jobs
	Locks
	Targets
	// Draining reports a shutdown: mutating commands are refused.
	Draining() bool
}

// Jobs make and decide jobs.
type Jobs interface {
	Submit(ctx context.Context, r deploy.JobRequest) (*deploy.Job, error)
	RollbackInterrupted(ctx context.Context, id int64, who deploy.Who, approval deploy.ApprovalPolicy) (*deploy.Job, error)
	Cancel(ctx context.Context, id int64, who deploy.Who) (*deploy.Job, error)
	Decide(ctx context.Context, id string, who deploy.Who, approve bool) (*deploy.Job, error)
}

// Locks take, extend and release env locks, and tell which are expiring.
type Locks interface {
	LockFor(ctx context.Context, app, env, reason string, who deploy.Who, ttl time.Duration) (deploy.Lock, error)
	ExtendLock(ctx context.Context, app, env string, who deploy.Who, d time.Duration, force bool) (deploy.Lock, error)
	Unlock(ctx context.Context, app, env string, who deploy.Who, force bool) (deploy.Lock, error)
	LockBySince(ctx context.Context, since time.Time) (deploy.Lock, error)
	TickLocks(ctx context.Context) (deploy.LockTick, error)
	MarkReminded(ctx context.Context, l deploy.Lock) error
}

// Targets read what is on a target: releases, health, logs, backups, and
// what a deploy would do.
type Targets interface {
	Plan(ctx context.Context, app, env, ref string) (deploy.Plan, *deploy.Lock, error)
	Releases(ctx context.Context, app, env string) ([]deploy.ReleaseView, error)
	Status(ctx context.Context, app, env string) (deploy.Status, error)
	Logs(ctx context.Context, app, env string, lines int) (deploy.Logs, error)
	BuildLogs(ctx context.Context, app, env string, lines int) (deploy.Logs, error)
	Backups(ctx context.Context, app, env string) ([]deploy.Backup, error)
}

// Records is what the dispatcher reads of the engine's records (jobs,
// approvals, locks), and where it writes the audit rows of reads and
// refusals. deploy.Store implements it.
type Records interface {
	Job(ctx context.Context, id int64) (*deploy.Job, error)
	Jobs(ctx context.Context, f deploy.JobFilter) ([]*deploy.Job, error)
	Approval(ctx context.Context, id string) (*deploy.Approval, error)
	PendingApprovals(ctx context.Context) ([]*deploy.Approval, error)
	Lock(ctx context.Context, app, env string) (*deploy.Lock, error)
	Locks(ctx context.Context) ([]deploy.Lock, error)
	Append(ctx context.Context, events ...*audit.Event) error
}

var (
	_ Engine  = (*deploy.Engine)(nil)
	_ Records = (deploy.Store)(nil)
)
