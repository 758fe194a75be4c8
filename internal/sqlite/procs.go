package sqlite

import (
	"context"

	"github.com/shipbot/shipbot/internal/deploy"
)

var _ deploy.ProcessStore = (*DB)(nil)

// AddStepProcess implements deploy.ProcessStore.
func (db *DB) AddStepProcess(ctx context.Context, p deploy.StepProcess) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`INSERT INTO step_processes (token, job_id, pgid, started) VALUES (?,?,?,?)
			ON CONFLICT (token) DO UPDATE SET pgid = excluded.pgid`,
			p.Token, p.JobID, p.PGID, formatTime(p.Started))
		return err
	})
}

// RemoveStepProcess implements deploy.ProcessStore; removing nothing is no error.
func (db *DB) RemoveStepProcess(ctx context.Context, token string) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`DELETE FROM step_processes WHERE token = ?`, token)
		return err
	})
}

// StepProcesses implements deploy.ProcessStore, oldest first.
func (db *DB) StepProcesses(ctx context.Context) ([]deploy.StepProcess, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT token, job_id, pgid, started FROM step_processes ORDER BY started, token`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.StepProcess
	for rows.Next() {
		var p deploy.StepProcess
		var started string
		if err := rows.Scan(&p.Token, &p.JobID, &p.PGID, &started); err != nil {
			return nil, err
		}
		if p.Started, err = parseTime(started); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
