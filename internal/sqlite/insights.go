package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/insights"
)

var _ insights.Store = (*DB)(nil)

// DeliveryJobs implements insights.Store. Times are stored as fixed-width
// UTC text, so text order is time order.
func (db *DB) DeliveryJobs(ctx context.Context, since time.Time) ([]deploy.Job, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+jobCols+` FROM jobs
		WHERE action IN (?, ?) AND ended != '' AND ended >= ? ORDER BY ended, id`,
		string(deploy.ActionDeploy), string(deploy.ActionRollback), formatTime(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *j)
	}
	return out, rows.Err()
}

// DecidedApprovals implements insights.Store.
func (db *DB) DecidedApprovals(ctx context.Context, since time.Time) ([]deploy.Approval, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+approvalCols+` FROM approvals
		WHERE decided != '' AND decided >= ? ORDER BY decided, id`, formatTime(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deploy.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

// CommitTime implements insights.Store: the earliest commit time any
// pipeline record of project at sha carries (every workflow of one commit
// reports the same). A short sha matches as a prefix. The prefix is a
// range [sha, sha+"g") on the (project, sha) index: commit ids are
// lowercase hex, all below "g"; a substr() comparison would read every
// pipeline record for every deploy.
func (db *DB) CommitTime(ctx context.Context, project, sha string) (time.Time, error) {
	if len(sha) < 7 {
		return time.Time{}, nil
	}
	var raw sql.NullString
	err := db.r.QueryRowContext(ctx, `SELECT min(json_extract(event, '$.commit_time')) FROM pipelines
		WHERE project = ? AND sha >= ? AND sha < ? AND coalesce(json_extract(event, '$.commit_time'), '') != ''`,
		project, sha, sha+"g").Scan(&raw)
	if err != nil || !raw.Valid {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, raw.String)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// DeployedCommit implements insights.Store: the commit the Dokploy driver
// pinned for the release.
func (db *DB) DeployedCommit(ctx context.Context, app, env, release string) (string, error) {
	var sha string
	err := db.r.QueryRowContext(ctx, `SELECT sha FROM dokploy_deployments WHERE app = ? AND env = ? AND release = ?`,
		app, env, release).Scan(&sha)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return sha, err
}
