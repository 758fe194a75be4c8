package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// DokployDeployment is shipbot's pin of one of its Dokploy deploys: the
// deploymentId it identified, and what it needs to identify it after a
// restart (the ids listed before the POST).
type DokployDeployment struct {
	App, Env     string
	Release      string
	Posted       time.Time
	Before       []string
	DeploymentID string
	Ref          string
	SHA          string
}

// PutDokployDeployment inserts or replaces the pin of (app, env, release).
func (db *DB) PutDokployDeployment(ctx context.Context, d DokployDeployment) error {
	before := d.Before
	if before == nil {
		before = []string{}
	}
	ids, err := json.Marshal(before)
	if err != nil {
		return err
	}
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`INSERT INTO dokploy_deployments (app, env, release, posted, before_ids, deployment_id, ref, sha)
			VALUES (?,?,?,?,?,?,?,?)
			ON CONFLICT (app, env, release) DO UPDATE SET posted = excluded.posted, before_ids = excluded.before_ids,
				deployment_id = excluded.deployment_id, ref = excluded.ref, sha = excluded.sha`,
			d.App, d.Env, d.Release, formatTime(d.Posted), string(ids), d.DeploymentID, d.Ref, d.SHA)
		return err
	})
}

// DokployDeployments lists the pins of (app, env), newest first.
func (db *DB) DokployDeployments(ctx context.Context, app, env string) ([]DokployDeployment, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT app, env, release, posted, before_ids, deployment_id, ref, sha
		FROM dokploy_deployments WHERE app = ? AND env = ? ORDER BY posted DESC, release DESC`, app, env)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DokployDeployment
	for rows.Next() {
		var d DokployDeployment
		var posted, ids string
		if err := rows.Scan(&d.App, &d.Env, &d.Release, &posted, &ids, &d.DeploymentID, &d.Ref, &d.SHA); err != nil {
			return nil, err
		}
		if d.Posted, err = parseTime(posted); err != nil {
			return nil, fmt.Errorf("dokploy deployment of %s: %w", d.Release, err)
		}
		if err := json.Unmarshal([]byte(ids), &d.Before); err != nil {
			return nil, fmt.Errorf("dokploy deployment of %s: before_ids: %w", d.Release, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
