package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

var (
	_ deploy.Store = (*DB)(nil)
	_ audit.Store  = (*DB)(nil)
)

func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

const jobCols = `id, app, env, action, ref, release, from_release, state, reason, req_user, req_identity, req_chat,
	approval_id, approved_by, card_ref, intent_seq, steps, output, created, started, ended`

type scanner interface{ Scan(dest ...any) error }

func scanJob(s scanner) (*deploy.Job, error) {
	var j deploy.Job
	var action, state, steps, output, created, started, ended string
	if err := s.Scan(&j.ID, &j.App, &j.Env, &action, &j.Ref, &j.Release, &j.FromRelease, &state, &j.Reason,
		&j.RequestedBy.User, &j.RequestedBy.Identity, &j.RequestedBy.Chat, &j.ApprovalID, &j.ApprovedBy, &j.CardRef,
		&j.IntentSeq, &steps, &output, &created, &started, &ended); err != nil {
		return nil, err
	}
	j.Action, j.State = deploy.Action(action), deploy.State(state)
	if err := json.Unmarshal([]byte(steps), &j.Steps); err != nil {
		return nil, fmt.Errorf("job %d steps: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(output), &j.Output); err != nil {
		return nil, fmt.Errorf("job %d output: %w", j.ID, err)
	}
	var err error
	if j.Created, err = parseTime(created); err == nil {
		if j.Started, err = parseTime(started); err == nil {
			j.Ended, err = parseTime(ended)
		}
	}
	return &j, err
}

func jobArgs(j *deploy.Job) ([]any, error) {
	steps, err := jsonText(nonNil(j.Steps))
	if err != nil {
		return nil, err
	}
	output, err := jsonText(nonNilS(j.Output))
	if err != nil {
		return nil, err
	}
	return []any{j.App, j.Env, string(j.Action), j.Ref, j.Release, j.FromRelease, string(j.State), j.Reason,
		j.RequestedBy.User, j.RequestedBy.Identity, j.RequestedBy.Chat, j.ApprovalID, j.ApprovedBy, j.CardRef,
		j.IntentSeq, steps, output, formatTime(j.Created), formatTime(j.Started), formatTime(j.Ended)}, nil
}

func nonNil(s []deploy.Step) []deploy.Step {
	if s == nil {
		return []deploy.Step{}
	}
	return s
}

func nonNilS(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// lockFor takes the (app, env) lock for job j inside w's transaction.
func (w *writer) lockFor(j *deploy.Job) error {
	held, err := w.lock(j.App, j.Env)
	switch {
	case err == nil && held.JobID == j.ID:
		return nil
	case err == nil:
		return &deploy.LockedError{Lock: *held}
	case !errors.Is(err, deploy.ErrNotFound):
		return err
	}
	_, err = w.tx.ExecContext(w.ctx, `INSERT INTO locks (app, env, owner, reason, job_id, since) VALUES (?,?,?,?,?,?)`,
		j.App, j.Env, j.RequestedBy.User, fmt.Sprintf("%s job #%d", j.Action, j.ID), j.ID, formatTime(w.now))
	return err
}

func (w *writer) lock(app, env string) (*deploy.Lock, error) {
	return scanLock(w.tx.QueryRowContext(w.ctx, `SELECT app, env, owner, reason, job_id, since FROM locks WHERE app = ? AND env = ?`, app, env))
}

func scanLock(s scanner) (*deploy.Lock, error) {
	var l deploy.Lock
	var since string
	err := s.Scan(&l.App, &l.Env, &l.Owner, &l.Reason, &l.JobID, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, deploy.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	l.Since, err = parseTime(since)
	return &l, err
}

// CreateJob implements deploy.Store.
func (db *DB) CreateJob(ctx context.Context, j *deploy.Job, a *deploy.Approval, events ...*audit.Event) error {
	var id int64
	err := db.write(ctx, func(w *writer) error {
		c := *j
		c.Created = w.now
		args, err := jobArgs(&c)
		if err != nil {
			return err
		}
		res, err := w.tx.ExecContext(w.ctx, `INSERT INTO jobs (`+strings.SplitN(jobCols, ", ", 2)[1]+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		c.ID = id
		if c.State == deploy.Queued {
			if err := w.lockFor(&c); err != nil {
				return err
			}
		}
		if a != nil {
			if err := w.insertApproval(a, id); err != nil {
				return err
			}
		}
		j.Created = c.Created
		return w.append(id, events)
	})
	if err != nil {
		return err
	}
	j.ID = id
	if a != nil {
		a.JobID = id
	}
	return nil
}

func (w *writer) insertApproval(a *deploy.Approval, jobID int64) error {
	roles, err := jsonText(nonNilS(a.Roles))
	if err != nil {
		return err
	}
	_, err = w.tx.ExecContext(w.ctx, `INSERT INTO approvals (id, job_id, app, env, action, version, requested_by, roles, state,
		decided_by, created, expires, decided) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		a.ID, jobID, a.App, a.Env, string(a.Action), a.Version, a.RequestedBy, roles, string(a.State), a.DecidedBy,
		formatTime(a.Created), formatTime(a.Expires), formatTime(a.Decided))
	return err
}

// updateJob is UpdateJob inside a transaction.
func (w *writer) updateJob(j *deploy.Job, from []deploy.State) error {
	var cur string
	err := w.tx.QueryRowContext(w.ctx, `SELECT state FROM jobs WHERE id = ?`, j.ID).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("job %d: %w", j.ID, deploy.ErrNotFound)
	}
	if err != nil {
		return err
	}
	allowed := false
	for _, f := range from {
		allowed = allowed || deploy.State(cur) == f
	}
	if !allowed {
		return fmt.Errorf("job %d is %s: %w", j.ID, cur, deploy.ErrConflict)
	}
	if j.State == deploy.Queued {
		if err := w.lockFor(j); err != nil {
			return err
		}
	}
	if j.State.Terminal() && j.State != deploy.Interrupted {
		if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM locks WHERE app = ? AND env = ? AND job_id = ?`, j.App, j.Env, j.ID); err != nil {
			return err
		}
	}
	args, err := jobArgs(j)
	if err != nil {
		return err
	}
	// card_ref (args[13]) is not a state: it is left as stored.
	upd := append(append(args[:13:13], args[14:]...), j.ID)
	_, err = w.tx.ExecContext(w.ctx, `UPDATE jobs SET app=?, env=?, action=?, ref=?, release=?, from_release=?, state=?, reason=?,
		req_user=?, req_identity=?, req_chat=?, approval_id=?, approved_by=?,
		intent_seq=?, steps=?, output=?, created=?, started=?, ended=? WHERE id = ?`, upd...)
	return err
}

// UpdateJob implements deploy.Store.
func (db *DB) UpdateJob(ctx context.Context, j *deploy.Job, from []deploy.State, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		if err := w.updateJob(j, from); err != nil {
			return err
		}
		return w.append(j.ID, events)
	})
}

// DecideApproval implements deploy.Store.
func (db *DB) DecideApproval(ctx context.Context, a *deploy.Approval, j *deploy.Job, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		res, err := w.tx.ExecContext(w.ctx, `UPDATE approvals SET state = ?, decided_by = ?, decided = ? WHERE id = ? AND state = ?`,
			string(a.State), a.DecidedBy, formatTime(a.Decided), a.ID, string(deploy.ApprovalPending))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("approval %s is no longer pending: %w", a.ID, deploy.ErrConflict)
		}
		if err := w.updateJob(j, []deploy.State{deploy.AwaitingApproval}); err != nil {
			return err
		}
		return w.append(j.ID, events)
	})
}

// Job implements deploy.Store.
func (db *DB) Job(ctx context.Context, id int64) (*deploy.Job, error) {
	j, err := scanJob(db.r.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("job #%d: %w", id, deploy.ErrNotFound)
	}
	return j, err
}

// Jobs implements deploy.Store.
func (db *DB) Jobs(ctx context.Context, f deploy.JobFilter) ([]*deploy.Job, error) {
	q := `SELECT ` + jobCols + ` FROM jobs WHERE 1=1`
	var args []any
	if f.App != "" {
		q += ` AND app = ?`
		args = append(args, f.App)
	}
	if f.Env != "" {
		q += ` AND env = ?`
		args = append(args, f.Env)
	}
	if len(f.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(",?", len(f.States)-1) + `)`
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*deploy.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

const approvalCols = `id, job_id, app, env, action, version, requested_by, roles, state, decided_by, created, expires, decided`

func scanApproval(s scanner) (*deploy.Approval, error) {
	var a deploy.Approval
	var action, roles, state, created, expires, decided string
	if err := s.Scan(&a.ID, &a.JobID, &a.App, &a.Env, &action, &a.Version, &a.RequestedBy, &roles, &state, &a.DecidedBy,
		&created, &expires, &decided); err != nil {
		return nil, err
	}
	a.Action, a.State = deploy.Action(action), deploy.ApprovalState(state)
	if err := json.Unmarshal([]byte(roles), &a.Roles); err != nil {
		return nil, err
	}
	var err error
	if a.Created, err = parseTime(created); err == nil {
		if a.Expires, err = parseTime(expires); err == nil {
			a.Decided, err = parseTime(decided)
		}
	}
	return &a, err
}

// Approval implements deploy.Store.
func (db *DB) Approval(ctx context.Context, id string) (*deploy.Approval, error) {
	a, err := scanApproval(db.r.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("approval %s: %w", id, deploy.ErrNotFound)
	}
	return a, err
}

// PendingApprovals implements deploy.Store.
func (db *DB) PendingApprovals(ctx context.Context) ([]*deploy.Approval, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE state = ? ORDER BY job_id`, string(deploy.ApprovalPending))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*deploy.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Lock implements deploy.Store.
func (db *DB) Lock(ctx context.Context, app, env string) (*deploy.Lock, error) {
	return scanLock(db.r.QueryRowContext(ctx, `SELECT app, env, owner, reason, job_id, since FROM locks WHERE app = ? AND env = ?`, app, env))
}

// Locks implements deploy.Store.
func (db *DB) Locks(ctx context.Context) ([]deploy.Lock, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT app, env, owner, reason, job_id, since FROM locks ORDER BY app, env`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.Lock
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *l)
	}
	return out, rows.Err()
}

// AcquireLock implements deploy.Store.
func (db *DB) AcquireLock(ctx context.Context, l deploy.Lock, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		if held, err := w.lock(l.App, l.Env); err == nil {
			return &deploy.LockedError{Lock: *held}
		} else if !errors.Is(err, deploy.ErrNotFound) {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO locks (app, env, owner, reason, job_id, since) VALUES (?,?,?,?,?,?)`,
			l.App, l.Env, l.Owner, l.Reason, l.JobID, formatTime(l.Since)); err != nil {
			return err
		}
		return w.append(0, events)
	})
}

// ReleaseLock implements deploy.Store. check runs inside the write
// transaction; it may read through the store's readers (WAL gives them the
// last committed state).
func (db *DB) ReleaseLock(ctx context.Context, app, env string, check func(deploy.Lock) error, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		held, err := w.lock(app, env)
		if err != nil {
			return err
		}
		if err := check(*held); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM locks WHERE app = ? AND env = ?`, app, env); err != nil {
			return err
		}
		return w.append(0, events)
	})
}

// PutRelease implements deploy.Store.
func (db *DB) PutRelease(ctx context.Context, r deploy.Release) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO releases (app, env, id, ref, job_id, by_user, created, state) VALUES (?,?,?,?,?,?,?,?)
			ON CONFLICT (app, env, id) DO UPDATE SET ref = excluded.ref, job_id = excluded.job_id, by_user = excluded.by_user,
			created = excluded.created, state = excluded.state`,
			r.App, r.Env, r.ID, r.Ref, r.JobID, r.By, formatTime(r.Created), string(r.State))
		return err
	})
}

// Releases implements deploy.Store.
func (db *DB) Releases(ctx context.Context, app, env string) ([]deploy.Release, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT app, env, id, ref, job_id, by_user, created, state FROM releases
		WHERE app = ? AND env = ? ORDER BY id DESC`, app, env)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.Release
	for rows.Next() {
		var r deploy.Release
		var created, state string
		if err := rows.Scan(&r.App, &r.Env, &r.ID, &r.Ref, &r.JobID, &r.By, &created, &state); err != nil {
			return nil, err
		}
		r.State = deploy.ReleaseState(state)
		if r.Created, err = parseTime(created); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
