package main

import (
	"context"
	"errors"
	"time"

	"github.com/shipbot/shipbot/internal/config"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/dokploy"
	"github.com/shipbot/shipbot/internal/deploy/httpcheck"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// dokployDriver builds the driver of a dokploy env. It reads shipbot's own
// records for what Dokploy does not tell: the deploymentId and commit of
// each release (Dokploy rewrites a deployment's title when the build ends),
// the git ref a release was built from (compose rollback) and the release
// shipbot last made live (an application rollback makes no new Dokploy
// deployment).
func dokployDriver(app, env string, e config.Env, r deploy.Recipe, health *httpcheck.Checker, db *sqlite.DB) (deploy.Driver, error) {
	dk := e.Dokploy
	client, err := dokploy.NewClient(dokploy.ClientConfig{BaseURL: dk.BaseURL, APIKey: dk.APIKey})
	if err != nil {
		return nil, err
	}
	d, err := dokploy.New(client, dokploy.Target{ComposeID: dk.ComposeID, ApplicationID: dk.ApplicationID,
		SetBranch: dk.SetBranch, BackupID: dk.BackupID})
	if err != nil {
		return nil, err
	}
	d.Health, d.Checker = r.Health, health
	d.PollInterval, d.PollDeadline, d.BackupTimeout = dk.PollInterval.Duration, dk.PollDeadline.Duration, dk.BackupTimeout.Duration
	d.Grace, d.LogSince, d.LogMaxBytes = dk.QueueGrace.Duration, dk.LogsSince.Duration, r.Logs.MaxBytes
	d.Pins = dokployPins{db: db, app: app, env: env}
	d.RecordedRef = func(ctx context.Context, release string) (string, error) {
		recs, err := db.Releases(ctx, app, env)
		if err != nil {
			return "", err
		}
		for _, rec := range recs {
			if rec.ID == release {
				return rec.Ref, nil
			}
		}
		return "", errors.New("no record of release " + release)
	}
	d.LastLive = func(ctx context.Context) (string, time.Time, error) {
		js, err := db.Jobs(ctx, deploy.JobFilter{App: app, Env: env, States: []deploy.State{deploy.Succeeded, deploy.RolledBack}, Limit: 20})
		if err != nil {
			return "", time.Time{}, err
		}
		for _, j := range js {
			if j.Action.Switches() {
				return j.LeftLive(), j.Ended, nil
			}
		}
		return "", time.Time{}, nil
	}
	return d, nil
}

// dokployPins keeps the driver's pins in shipbot's database.
type dokployPins struct {
	db       *sqlite.DB
	app, env string
}

var _ dokploy.Pins = dokployPins{}

func (p dokployPins) PutPin(ctx context.Context, pin dokploy.Pin) error {
	return p.db.PutDokployDeployment(ctx, sqlite.DokployDeployment{App: p.app, Env: p.env, Release: pin.Release,
		Posted: pin.Posted, Before: pin.Before, DeploymentID: pin.DeploymentID, Ref: pin.Ref, SHA: pin.SHA})
}

func (p dokployPins) Pins(ctx context.Context) ([]dokploy.Pin, error) {
	ds, err := p.db.DokployDeployments(ctx, p.app, p.env)
	if err != nil {
		return nil, err
	}
	out := make([]dokploy.Pin, 0, len(ds))
	for _, d := range ds {
		out = append(out, dokploy.Pin{Release: d.Release, Posted: d.Posted, Before: d.Before, DeploymentID: d.DeploymentID,
			Ref: d.Ref, SHA: d.SHA})
	}
	return out, nil
}
