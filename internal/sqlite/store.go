package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

var _ deploy.Store = (*DB)(nil)

type rowScanner interface{ Scan(...any) error }

// jsonArray stores a nil slice as [] so the column always holds an array.
func jsonArray[T any](s []T) (string, error) {
	if s == nil {
		s = []T{}
	}
	b, err := json.Marshal(s)
	return string(b), err
}

// ---- jobs

const jobCols = `id, app, env, action, ref, release, from_release, state, reason, req_user, req_identity, req_chat,
	approval_id, approved_by, intent_seq, steps, output, backup_id, redeploy, switch_state, lock_released_by, takes_over,
	approver_roles, rollback_to, backup, req_via, created, started, ended`

func scanJob(s rowScanner) (*deploy.Job, error) {
	var j deploy.Job
	var action, state, steps, output, switched, roles, created, started, ended string
	if err := s.Scan(&j.ID, &j.App, &j.Env, &action, &j.Ref, &j.Release, &j.FromRelease, &state, &j.Reason,
		&j.RequestedBy.User, &j.RequestedBy.Identity, &j.RequestedBy.Chat, &j.ApprovalID, &j.ApprovedBy,
		&j.IntentSeq, &steps, &output, &j.BackupID, &j.Redeploy, &switched, &j.LockReleasedBy, &j.TakesOver,
		&roles, &j.RollbackTo, &j.Backup, &j.RequestedBy.Via, &created, &started, &ended); err != nil {
		return nil, err
	}
	j.Action, j.State, j.Switch = deploy.Action(action), deploy.State(state), deploy.SwitchState(switched)
	if err := json.Unmarshal([]byte(steps), &j.Steps); err != nil {
		return nil, fmt.Errorf("job #%d: steps: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(output), &j.Output); err != nil {
		return nil, fmt.Errorf("job #%d: output: %w", j.ID, err)
	}
	if roles != "" && roles != "[]" {
		if err := json.Unmarshal([]byte(roles), &j.ApproverRoles); err != nil {
			return nil, fmt.Errorf("job #%d: approver roles: %w", j.ID, err)
		}
	}
	var err error
	for _, t := range []struct {
		dst *time.Time
		s   string
	}{{&j.Created, created}, {&j.Started, started}, {&j.Ended, ended}} {
		if *t.dst, err = parseTime(t.s); err != nil {
			return nil, fmt.Errorf("job #%d: %w", j.ID, err)
		}
	}
	return &j, nil
}

// jobValues are the values of every column after id and before created, in
// jobCols order.
func jobValues(j *deploy.Job) ([]any, error) {
	steps, err := jsonArray(j.Steps)
	if err != nil {
		return nil, err
	}
	output, err := jsonArray(j.Output)
	if err != nil {
		return nil, err
	}
	roles, err := jsonArray(j.ApproverRoles)
	if err != nil {
		return nil, err
	}
	return []any{j.App, j.Env, string(j.Action), j.Ref, j.Release, j.FromRelease, string(j.State), j.Reason,
		j.RequestedBy.User, j.RequestedBy.Identity, j.RequestedBy.Chat, j.ApprovalID, j.ApprovedBy,
		j.IntentSeq, steps, output, j.BackupID, j.Redeploy, string(j.Switch), j.LockReleasedBy, j.TakesOver, roles,
		j.RollbackTo, j.Backup, j.RequestedBy.Via}, nil
}

const insertJob = `INSERT INTO jobs (app, env, action, ref, release, from_release, state, reason, req_user, req_identity,
	req_chat, approval_id, approved_by, intent_seq, steps, output, backup_id, redeploy, switch_state, lock_released_by,
	takes_over, approver_roles, rollback_to, backup, req_via, created, started, ended, reported)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)`

// The store sets created; an update never changes it.
const updateJob = `UPDATE jobs SET app = ?, env = ?, action = ?, ref = ?, release = ?, from_release = ?, state = ?,
	reason = ?, req_user = ?, req_identity = ?, req_chat = ?, approval_id = ?, approved_by = ?,
	intent_seq = ?, steps = ?, output = ?, backup_id = ?, redeploy = ?, switch_state = ?, lock_released_by = ?, takes_over = ?,
	approver_roles = ?, rollback_to = ?, backup = ?, req_via = ?, started = ?, ended = ? WHERE id = ?`

// CreateJob implements deploy.Store.
func (db *DB) CreateJob(ctx context.Context, j *deploy.Job, a *deploy.Approval, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		vals, err := jobValues(j)
		if err != nil {
			return err
		}
		created := time.Now().UTC()
		res, err := w.exec(insertJob, append(vals, formatTime(created), formatTime(j.Started), formatTime(j.Ended))...)
		if err != nil {
			return fmt.Errorf("inserting job: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if j.State == deploy.Queued {
			if err := w.takeJobLock(id, j); err != nil {
				return err
			}
		}
		if a != nil {
			if err := w.insertApproval(a, id); err != nil {
				return err
			}
		}
		if err := w.append(id, events); err != nil {
			return err
		}
		// Reported with the update that completes it (see updateJob).
		w.after = append(w.after, func() {
			j.ID, j.Created = id, created
			if a != nil {
				a.JobID = id
			}
		})
		return nil
	})
}

// job reads job id inside the writer's transaction.
func (w *writer) job(id int64) (*deploy.Job, error) {
	s, err := w.stmt(`SELECT ` + jobCols + ` FROM jobs WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	j, err := scanJob(s.QueryRowContext(context.Background(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("job #%d: %w", id, deploy.ErrNotFound)
	}
	return j, err
}

// updateJob stores j if the stored job is in one of the states from, and
// moves the lock with it: entering Queued takes it, a terminal state other
// than Interrupted gives it up.
func (w *writer) updateJob(j *deploy.Job, from []deploy.State) error {
	var cur, app, env string
	var reported bool
	err := w.scan(`SELECT state, app, env, reported FROM jobs WHERE id = ?`, []any{j.ID}, &cur, &app, &env, &reported)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("job #%d: %w", j.ID, deploy.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if !slices.Contains(from, deploy.State(cur)) {
		return fmt.Errorf("job #%d is %s: %w", j.ID, cur, deploy.ErrConflict)
	}
	if j.State == deploy.Queued && deploy.State(cur) != deploy.Queued {
		if err := w.takeJobLock(j.ID, j); err != nil {
			return err
		}
	}
	vals, err := jobValues(j)
	if err != nil {
		return err
	}
	if _, err := w.exec(updateJob, append(vals, formatTime(j.Started), formatTime(j.Ended), j.ID)...); err != nil {
		return fmt.Errorf("updating job #%d: %w", j.ID, err)
	}
	if j.State.Terminal() && j.State != deploy.Interrupted {
		// Only this job's own lock: a manual lock taken since stays.
		if _, err := w.exec(`DELETE FROM locks WHERE app = ? AND env = ? AND job_id = ?`, app, env, j.ID); err != nil {
			return err
		}
	}
	prev := deploy.State(cur)
	if !reported {
		// The engine creates a job, then stores what needs its id (the
		// release it makes, the intent's seq): the chat first hears of
		// the job complete, as new.
		if _, err := w.exec(`UPDATE jobs SET reported = 1 WHERE id = ?`, j.ID); err != nil {
			return err
		}
		prev = ""
	}
	return w.reportJob(prev, *j)
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

// DecideApproval implements deploy.Store. The approval is single use: only a
// pending one can be decided, so a second press finds ErrConflict.
func (db *DB) DecideApproval(ctx context.Context, a *deploy.Approval, j *deploy.Job, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		var state string
		var jobID int64
		err := w.scan(`SELECT state, job_id FROM approvals WHERE id = ?`, []any{a.ID}, &state, &jobID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("approval %s: %w", a.ID, deploy.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if deploy.ApprovalState(state) != deploy.ApprovalPending {
			return fmt.Errorf("approval %s is already %s: %w", a.ID, state, deploy.ErrConflict)
		}
		if jobID != j.ID {
			return fmt.Errorf("approval %s belongs to job #%d, not #%d: %w", a.ID, jobID, j.ID, deploy.ErrConflict)
		}
		if _, err := w.exec(`UPDATE approvals SET state = ?, decided_by = ?, decided = ? WHERE id = ? AND state = ?`,
			string(a.State), a.DecidedBy, formatTime(a.Decided), a.ID, string(deploy.ApprovalPending)); err != nil {
			return err
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

// Jobs implements deploy.Store: newest first.
func (db *DB) Jobs(ctx context.Context, f deploy.JobFilter) ([]*deploy.Job, error) {
	var where []string
	var args []any
	if f.App != "" {
		where, args = append(where, `app = ?`), append(args, f.App)
	}
	if f.Env != "" {
		where, args = append(where, `env = ?`), append(args, f.Env)
	}
	if len(f.States) > 0 {
		where = append(where, `state IN (?`+strings.Repeat(`, ?`, len(f.States)-1)+`)`)
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
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

// ---- approvals

const approvalCols = `id, job_id, app, env, action, version, requested_by, roles, state, decided_by, created, expires, decided`

func scanApproval(s rowScanner) (*deploy.Approval, error) {
	var a deploy.Approval
	var action, roles, state, created, expires, decided string
	if err := s.Scan(&a.ID, &a.JobID, &a.App, &a.Env, &action, &a.Version, &a.RequestedBy, &roles, &state,
		&a.DecidedBy, &created, &expires, &decided); err != nil {
		return nil, err
	}
	a.Action, a.State = deploy.Action(action), deploy.ApprovalState(state)
	if err := json.Unmarshal([]byte(roles), &a.Roles); err != nil {
		return nil, fmt.Errorf("approval %s: roles: %w", a.ID, err)
	}
	var err error
	for _, t := range []struct {
		dst *time.Time
		s   string
	}{{&a.Created, created}, {&a.Expires, expires}, {&a.Decided, decided}} {
		if *t.dst, err = parseTime(t.s); err != nil {
			return nil, fmt.Errorf("approval %s: %w", a.ID, err)
		}
	}
	return &a, nil
}

func (w *writer) insertApproval(a *deploy.Approval, jobID int64) error {
	roles, err := jsonArray(a.Roles)
	if err != nil {
		return err
	}
	if _, err := w.exec(`INSERT INTO approvals (`+approvalCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		a.ID, jobID, a.App, a.Env, string(a.Action), a.Version, a.RequestedBy, roles, string(a.State), a.DecidedBy,
		formatTime(a.Created), formatTime(a.Expires), formatTime(a.Decided)); err != nil {
		return fmt.Errorf("inserting approval: %w", err)
	}
	return nil
}

// Approval implements deploy.Store.
func (db *DB) Approval(ctx context.Context, id string) (*deploy.Approval, error) {
	a, err := scanApproval(db.r.QueryRowContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("approval %s: %w", id, deploy.ErrNotFound)
	}
	return a, err
}

// PendingApprovals implements deploy.Store, oldest first.
func (db *DB) PendingApprovals(ctx context.Context) ([]*deploy.Approval, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+approvalCols+` FROM approvals WHERE state = ? ORDER BY created, job_id`,
		string(deploy.ApprovalPending))
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

// ---- locks

const lockCols = `app, env, owner, reason, job_id, since, expires, chat, reminded`

func scanLock(s rowScanner) (deploy.Lock, error) {
	var l deploy.Lock
	var since, expires string
	if err := s.Scan(&l.App, &l.Env, &l.Owner, &l.Reason, &l.JobID, &since, &expires, &l.Chat, &l.Reminded); err != nil {
		return l, err
	}
	var err error
	if l.Since, err = parseTime(since); err != nil {
		return l, err
	}
	l.Expires, err = parseTime(expires)
	return l, err
}

// heldLock is the lock of (app, env), ErrNotFound if there is none, or
// check's error: the common start of every change to a lock, run in the
// writer so nothing changes the lock between the check and the change.
func (w *writer) heldLock(app, env string, check func(deploy.Lock) error) (deploy.Lock, error) {
	held, ok, err := w.lock(app, env)
	if err != nil {
		return held, err
	}
	if !ok {
		return held, fmt.Errorf("lock on %s/%s: %w", app, env, deploy.ErrNotFound)
	}
	if check != nil {
		if err := check(held); err != nil {
			return held, err
		}
	}
	return held, nil
}

// lock returns the lock on (app, env) inside the write transaction.
func (w *writer) lock(app, env string) (deploy.Lock, bool, error) {
	s, err := w.stmt(`SELECT ` + lockCols + ` FROM locks WHERE app = ? AND env = ?`)
	if err != nil {
		return deploy.Lock{}, false, err
	}
	l, err := scanLock(s.QueryRowContext(context.Background(), app, env))
	if errors.Is(err, sql.ErrNoRows) {
		return l, false, nil
	}
	return l, err == nil, err
}

func (w *writer) insertLock(l deploy.Lock) error {
	_, err := w.exec(`INSERT INTO locks (`+lockCols+`) VALUES (?,?,?,?,?,?,?,?,?)`,
		l.App, l.Env, l.Owner, l.Reason, l.JobID, formatTime(l.Since), formatTime(l.Expires), l.Chat, l.Reminded)
	return err
}

// takeJobLock gives job id the lock of its (app, env): *deploy.LockedError
// naming the holder if anyone else has it, nothing to do if it already has.
func (w *writer) takeJobLock(id int64, j *deploy.Job) error {
	held, ok, err := w.lock(j.App, j.Env)
	switch {
	case err != nil:
		return err
	case ok && held.JobID == id:
		return nil
	case ok && j.TakesOver != 0 && held.JobID == j.TakesOver:
		// A rollback from an interrupted job's card: the interrupted job's
		// lock passes to it in this transaction, so nothing slips between.
		if err := w.releaseInterrupted(held, j.RequestedBy.User+" (job #"+strconv.FormatInt(id, 10)+")"); err != nil {
			return err
		}
	case ok:
		return &deploy.LockedError{Lock: held}
	}
	return w.insertLock(deploy.Lock{App: j.App, Env: j.Env, Owner: j.RequestedBy.User,
		Reason: string(j.Action) + " job", JobID: id, Since: time.Now()})
}

// Lock implements deploy.Store.
func (db *DB) Lock(ctx context.Context, app, env string) (*deploy.Lock, error) {
	l, err := scanLock(db.r.QueryRowContext(ctx, `SELECT `+lockCols+` FROM locks WHERE app = ? AND env = ?`, app, env))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("lock on %s/%s: %w", app, env, deploy.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// Locks implements deploy.Store, ordered by app and env.
func (db *DB) Locks(ctx context.Context) ([]deploy.Lock, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+lockCols+` FROM locks ORDER BY app, env`)
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
		out = append(out, l)
	}
	return out, rows.Err()
}

// AcquireLock implements deploy.Store. A zero Since is set to now.
func (db *DB) AcquireLock(ctx context.Context, l deploy.Lock, events ...*audit.Event) error {
	if l.Since.IsZero() {
		l.Since = time.Now()
	}
	return db.write(ctx, func(w *writer) error {
		held, ok, err := w.lock(l.App, l.Env)
		if err != nil {
			return err
		}
		if ok {
			return &deploy.LockedError{Lock: held}
		}
		if err := w.insertLock(l); err != nil {
			return err
		}
		return w.append(0, events)
	})
}

// ReleaseLock implements deploy.Store. check runs in the writer, inside the
// transaction, so nothing changes the lock between check and delete. check
// may read through the DB's read methods (they see the last committed state)
// but must not call its write methods: the writer would wait for itself.
func (db *DB) ReleaseLock(ctx context.Context, app, env string, check func(deploy.Lock) error, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		if _, err := w.heldLock(app, env, check); err != nil {
			return err
		}
		if _, err := w.exec(`DELETE FROM locks WHERE app = ? AND env = ?`, app, env); err != nil {
			return err
		}
		return w.append(0, events)
	})
}

// UpdateLock implements deploy.Store: update runs in the writer, inside the
// transaction; the lock's expiry and reminded flag are stored.
func (db *DB) UpdateLock(ctx context.Context, app, env string, update func(*deploy.Lock) error, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error {
		held, err := w.heldLock(app, env, nil)
		if err != nil {
			return err
		}
		if err := update(&held); err != nil {
			return err
		}
		if _, err := w.exec(`UPDATE locks SET expires = ?, reminded = ? WHERE app = ? AND env = ?`,
			formatTime(held.Expires), held.Reminded, app, env); err != nil {
			return err
		}
		return w.append(0, events)
	})
}

// ---- releases

// PutRelease implements deploy.Store: insert, or replace the record with the
// same (app, env, id).
func (db *DB) PutRelease(ctx context.Context, r deploy.Release) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`INSERT INTO releases (app, env, id, ref, job_id, by_user, created, state, backup_id)
			VALUES (?,?,?,?,?,?,?,?,?)
			ON CONFLICT (app, env, id) DO UPDATE SET ref = excluded.ref, job_id = excluded.job_id,
				by_user = excluded.by_user, created = excluded.created, state = excluded.state,
				backup_id = excluded.backup_id`,
			r.App, r.Env, r.ID, r.Ref, r.JobID, r.By, formatTime(r.Created), string(r.State), r.BackupID)
		return err
	})
}

// Releases implements deploy.Store: newest first. Release ids start with
// their UTC build time, so id order breaks ties of equal (or unset) created.
func (db *DB) Releases(ctx context.Context, app, env string) ([]deploy.Release, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT app, env, id, ref, job_id, by_user, created, state, backup_id FROM releases
		WHERE app = ? AND env = ? ORDER BY created DESC, id DESC`, app, env)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.Release
	for rows.Next() {
		var r deploy.Release
		var created, state string
		if err := rows.Scan(&r.App, &r.Env, &r.ID, &r.Ref, &r.JobID, &r.By, &created, &state, &r.BackupID); err != nil {
			return nil, err
		}
		r.State = deploy.ReleaseState(state)
		if r.Created, err = parseTime(created); err != nil {
			return nil, fmt.Errorf("release %s: %w", r.ID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
