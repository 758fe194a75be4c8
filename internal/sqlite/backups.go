package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shipbot/shipbot/internal/deploy"
)

var _ deploy.BackupStore = (*DB)(nil)

const backupCols = `app, env, id, job_id, by_user, reason, created, state, location, files, error, verified, drill`

// PutBackup implements deploy.BackupStore: insert, or replace the record
// with the same (app, env, id).
func (db *DB) PutBackup(ctx context.Context, b deploy.Backup) error {
	files, err := jsonArray(b.Files)
	if err != nil {
		return err
	}
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`INSERT INTO backups (`+backupCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (app, env, id) DO UPDATE SET job_id = excluded.job_id, by_user = excluded.by_user,
				reason = excluded.reason, created = excluded.created, state = excluded.state,
				location = excluded.location, files = excluded.files, error = excluded.error,
				verified = excluded.verified, drill = excluded.drill`,
			b.App, b.Env, b.ID, b.JobID, b.By, b.Reason, formatTime(b.Created), string(b.State), b.Location,
			files, b.Error, formatTime(b.Verified), b.Drill)
		return err
	})
}

func scanBackup(s rowScanner) (*deploy.Backup, error) {
	var b deploy.Backup
	var created, state, files, verified string
	if err := s.Scan(&b.App, &b.Env, &b.ID, &b.JobID, &b.By, &b.Reason, &created, &state, &b.Location,
		&files, &b.Error, &verified, &b.Drill); err != nil {
		return nil, err
	}
	b.State = deploy.BackupState(state)
	if err := json.Unmarshal([]byte(files), &b.Files); err != nil {
		return nil, fmt.Errorf("backup %s: files: %w", b.ID, err)
	}
	var err error
	if b.Created, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("backup %s: %w", b.ID, err)
	}
	if b.Verified, err = parseTime(verified); err != nil {
		return nil, fmt.Errorf("backup %s: %w", b.ID, err)
	}
	return &b, nil
}

// Backups implements deploy.BackupStore: newest first.
func (db *DB) Backups(ctx context.Context, app, env string) ([]deploy.Backup, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+backupCols+` FROM backups WHERE app = ? AND env = ?
		ORDER BY created DESC, id DESC`, app, env)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.Backup
	for rows.Next() {
		b, err := scanBackup(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	return out, rows.Err()
}

// Backup implements deploy.BackupStore.
func (db *DB) Backup(ctx context.Context, app, env, id string) (*deploy.Backup, error) {
	b, err := scanBackup(db.r.QueryRowContext(ctx, `SELECT `+backupCols+` FROM backups WHERE app = ? AND env = ? AND id = ?`, app, env, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("backup %s: %w", id, deploy.ErrNotFound)
	}
	return b, err
}

// BackupStats sums up the backup records of every env, for /metrics.
func (db *DB) BackupStats(ctx context.Context) ([]deploy.BackupStat, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT app, env, state, count(*), max(CASE WHEN state = 'ok' THEN created ELSE '' END)
		FROM backups GROUP BY app, env, state ORDER BY app, env`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.BackupStat
	for rows.Next() {
		var app, env, state, last string
		var n int
		if err := rows.Scan(&app, &env, &state, &n, &last); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].App != app || out[len(out)-1].Env != env {
			out = append(out, deploy.BackupStat{App: app, Env: env, States: map[deploy.BackupState]int{}})
		}
		st := &out[len(out)-1]
		st.States[deploy.BackupState(state)] = n
		if last != "" {
			t, err := parseTime(last)
			if err != nil {
				return nil, err
			}
			st.LastOK = t
		}
	}
	return out, rows.Err()
}
