package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/shipbot/shipbot/internal/pipeline"
)

// This file stores what the doors other than chat need: the HTTP API's
// idempotency keys and the auto-deploys of green pipelines.

// staleKey is how long a key whose first request never recorded its job
// (the process died answering it) blocks a retry.
const staleKey = 2 * time.Minute

// ClaimKey records key for token. It returns the job of an earlier request
// with the same key (0 while that request is still being answered) and
// first=false, or first=true when this request is the first and must call
// SetKeyJob or DropKey.
func (db *DB) ClaimKey(ctx context.Context, token, key string, now time.Time) (jobID int64, first bool, err error) {
	err = db.write(ctx, func(w *writer) error {
		var created string
		e := w.scan(`SELECT job_id, created FROM api_keys WHERE token = ? AND key = ?`, []any{token, key}, &jobID, &created)
		switch {
		case errors.Is(e, sql.ErrNoRows):
			first = true
			_, e = w.exec(`INSERT INTO api_keys (token, key, created) VALUES (?, ?, ?)`, token, key, now.UTC().Format(time.RFC3339Nano))
			return e
		case e != nil:
			return e
		}
		if t, perr := time.Parse(time.RFC3339Nano, created); jobID == 0 && perr == nil && now.Sub(t) > staleKey {
			first = true
			_, e = w.exec(`UPDATE api_keys SET created = ? WHERE token = ? AND key = ?`, now.UTC().Format(time.RFC3339Nano), token, key)
			return e
		}
		return nil
	})
	return jobID, first, err
}

// SetKeyJob records the job the first request with key made.
func (db *DB) SetKeyJob(ctx context.Context, token, key string, jobID int64) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`UPDATE api_keys SET job_id = ? WHERE token = ? AND key = ?`, jobID, token, key)
		return err
	})
}

// DropKey forgets key: its request was refused, so a retry is asked anew.
func (db *DB) DropKey(ctx context.Context, token, key string) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`DELETE FROM api_keys WHERE token = ? AND key = ? AND job_id = 0`, token, key)
		return err
	})
}

var _ pipeline.AutoStore = (*DB)(nil)

const autoCols = `id, rule, pipeline, source, run_id, run_order, sha, state, job_id, note, created`

// AddAutoDeploy implements pipeline.AutoStore.
func (db *DB) AddAutoDeploy(ctx context.Context, a *pipeline.AutoDeploy) (bool, error) {
	var id int64
	err := db.write(ctx, func(w *writer) error {
		res, err := w.exec(`INSERT OR IGNORE INTO auto_deploys (rule, pipeline, source, run_id, run_order, sha, state, job_id, note, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.Rule, a.Pipeline, a.Source, a.RunID, a.Order, a.SHA, a.State, a.JobID, a.Note,
			a.Created.UTC().Format(time.RFC3339Nano))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			id, _ = res.LastInsertId()
		}
		return nil
	})
	if err != nil || id == 0 {
		return false, err
	}
	a.ID = id
	return true, nil
}

// UpdateAutoDeploy implements pipeline.AutoStore.
func (db *DB) UpdateAutoDeploy(ctx context.Context, a pipeline.AutoDeploy) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`UPDATE auto_deploys SET state = ?, job_id = ?, note = ? WHERE id = ?`, a.State, a.JobID, a.Note, a.ID)
		return err
	})
}

// AutoDeploys implements pipeline.AutoStore: the rule's auto-deploys, newest pipeline first.
func (db *DB) AutoDeploys(ctx context.Context, rule string) ([]pipeline.AutoDeploy, error) {
	return db.autoDeploys(ctx, `SELECT `+autoCols+` FROM auto_deploys WHERE rule = ? ORDER BY run_order DESC LIMIT 50`, rule)
}

// OpenAutoDeploys implements pipeline.AutoStore.
func (db *DB) OpenAutoDeploys(ctx context.Context) ([]pipeline.AutoDeploy, error) {
	return db.autoDeploys(ctx, `SELECT `+autoCols+` FROM auto_deploys WHERE state = ? ORDER BY run_order`, pipeline.AutoPending)
}

func (db *DB) autoDeploys(ctx context.Context, q string, args ...any) ([]pipeline.AutoDeploy, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pipeline.AutoDeploy
	for rows.Next() {
		var a pipeline.AutoDeploy
		var created string
		if err := rows.Scan(&a.ID, &a.Rule, &a.Pipeline, &a.Source, &a.RunID, &a.Order, &a.SHA, &a.State, &a.JobID, &a.Note, &created); err != nil {
			return nil, err
		}
		a.Created, _ = time.Parse(time.RFC3339Nano, created)
		out = append(out, a)
	}
	return out, rows.Err()
}
