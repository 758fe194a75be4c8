package sqlite

import (
	"context"
	"fmt"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

var _ deploy.InterruptedLocks = (*DB)(nil)

// releaseInterrupted removes the lock held, which belongs to an interrupted
// job, and notes on that job who released it. ErrConflict if the job is no
// longer interrupted or its lock was released already.
func (w *writer) releaseInterrupted(held deploy.Lock, by string) error {
	res, err := w.exec(`UPDATE jobs SET lock_released_by = ? WHERE id = ? AND state = ? AND lock_released_by = ''`,
		by, held.JobID, string(deploy.Interrupted))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("job #%d no longer holds its lock as an interrupted job: %w", held.JobID, deploy.ErrConflict)
	}
	if _, err = w.exec(`DELETE FROM locks WHERE app = ? AND env = ? AND job_id = ?`, held.App, held.Env, held.JobID); err != nil {
		return err
	}
	// The job's card says who released its lock, and loses its buttons.
	j, err := w.job(held.JobID)
	if err != nil {
		return err
	}
	return w.reportJob(j.State, *j)
}

// ReleaseLockBy implements deploy.InterruptedLocks.
func (db *DB) ReleaseLockBy(ctx context.Context, app, env, by string, check func(deploy.Lock) error, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		held, err := w.heldLock(app, env, check)
		if err != nil {
			return err
		}
		if held.JobID != 0 {
			var state string
			if err := w.scan(`SELECT state FROM jobs WHERE id = ?`, []any{held.JobID}, &state); err == nil && deploy.State(state) == deploy.Interrupted {
				if err := w.releaseInterrupted(held, by); err != nil {
					return err
				}
				return w.append(0, events)
			}
		}
		if _, err := w.exec(`DELETE FROM locks WHERE app = ? AND env = ?`, app, env); err != nil {
			return err
		}
		return w.append(0, events)
	})
}
