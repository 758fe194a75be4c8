package dokploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Target is the Dokploy service an env deploys: exactly one of ComposeID
// and ApplicationID.
type Target struct {
	ComposeID     string
	ApplicationID string
	// SetBranch lets a compose rollback point the compose at the git ref
	// recorded for the release and redeploy it (Dokploy has no compose rollback).
	SetBranch bool
	// BackupID is the Dokploy backup /backup triggers; "" = none.
	BackupID string
}

// Checker checks an HTTP health URL once (httpcheck.Checker).
type Checker interface {
	Check(ctx context.Context, h deploy.Health) error
}

// Driver deploys one env on Dokploy. Dokploy deployments cannot be
// cancelled through its API: cancelling a job stops shipbot following it;
// the build goes on in Dokploy.
type Driver struct {
	c *Client
	t Target

	Health  deploy.Health // checked after a deploy when URL is set
	Checker Checker
	// PollInterval is how often the deployment list is read; default 2s.
	PollInterval time.Duration
	// PollDeadline bounds one deploy's wait; default 30m.
	PollDeadline time.Duration
	// Grace is how long a just-queued deploy may stay invisible in the
	// list; default 1m.
	Grace time.Duration
	// BackupTimeout bounds a manual backup, which Dokploy runs before it
	// answers; default 30m.
	BackupTimeout time.Duration
	// RecordedRef gives the git ref shipbot recorded for a release (compose rollback).
	RecordedRef func(ctx context.Context, release string) (string, error)
	// LastLive gives the release shipbot last made live and when, so a
	// rollback (which Dokploy does not list as a deployment) shows as current.
	LastLive func(ctx context.Context) (release string, at time.Time, err error)
}

var (
	_ deploy.Driver       = (*Driver)(nil)
	_ deploy.Resumer      = (*Driver)(nil)
	_ deploy.StartStopper = (*Driver)(nil)
	_ deploy.Backuper     = (*Driver)(nil)
)

// New returns a driver for t.
func New(c *Client, t Target) (*Driver, error) {
	if (t.ComposeID == "") == (t.ApplicationID == "") {
		return nil, errors.New("dokploy: set exactly one of compose_id and application_id")
	}
	return &Driver{c: c, t: t, PollInterval: 2 * time.Second, PollDeadline: 30 * time.Minute, Grace: time.Minute,
		BackupTimeout: 30 * time.Minute}, nil
}

func (d *Driver) kind() string {
	if d.t.ComposeID != "" {
		return "compose"
	}
	return "application"
}

func (d *Driver) idField() (string, string) {
	if d.t.ComposeID != "" {
		return "composeId", d.t.ComposeID
	}
	return "applicationId", d.t.ApplicationID
}

// Deployment is one entry of Dokploy's deployment list.
type Deployment struct {
	DeploymentID string  `json:"deploymentId"`
	Title        string  `json:"title"`
	Description  string  `json:"description"`
	Status       string  `json:"status"` // running, done, error, cancelled
	CreatedAt    string  `json:"createdAt"`
	FinishedAt   string  `json:"finishedAt"`
	ErrorMessage string  `json:"errorMessage"`
	RollbackID   *string `json:"rollbackId"`
}

func (dp Deployment) created() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, dp.CreatedAt)
	return t
}

// titlePrefix marks shipbot's deploys: "shipbot <release>".
const titlePrefix = "shipbot "

var nonName = regexp.MustCompile(`[^a-z0-9._-]+`)

// ReleaseID is the release a deployment stands for: the one shipbot named
// in its title, else one made from its time and id (a deploy started in
// Dokploy's UI).
func ReleaseID(dp Deployment) string {
	if id, ok := strings.CutPrefix(dp.Title, titlePrefix); ok && deploy.ValidName(id) {
		return id
	}
	suffix := nonName.ReplaceAllString(strings.ToLower(dp.DeploymentID), "")
	id := dp.created().UTC().Format("20060102-150405") + "-" + suffix
	if len(id) > 63 {
		id = id[:63]
	}
	return id
}

func (d *Driver) deployments(ctx context.Context) ([]Deployment, error) {
	proc := "deployment.all"
	if d.t.ComposeID != "" {
		proc = "deployment.allByCompose"
	}
	k, v := d.idField()
	var out []Deployment
	if err := d.c.Get(ctx, proc, url.Values{k: {v}}, &out); err != nil {
		return nil, err
	}
	// Newest first, whatever order the server used.
	sort.SliceStable(out, func(i, j int) bool { return out[i].created().After(out[j].created()) })
	return out, nil
}

// Plan implements deploy.Driver.
func (d *Driver) Plan(_ context.Context, req deploy.DeployRequest) (deploy.Plan, error) {
	steps := []string{"queue", "build"}
	if d.Health.URL != "" {
		steps = append(steps, "health")
	}
	return deploy.Plan{Steps: steps, Hosts: []string{"dokploy " + d.kind()}, From: req.Previous, To: req.Release}, nil
}

// Deploy implements deploy.Driver: compose.deploy / application.deploy, or
// *.redeploy (rebuild without pulling new code) when req.Redeploy.
func (d *Driver) Deploy(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	if req.Redeploy {
		return d.start(ctx, req, p, "redeploy")
	}
	return d.start(ctx, req, p, "deploy")
}

func (d *Driver) start(ctx context.Context, req deploy.DeployRequest, p deploy.Progress, verb string) (deploy.Result, error) {
	if !deploy.ValidName(req.Release) {
		return deploy.Result{}, fmt.Errorf("release id %q is not valid", req.Release)
	}
	k, v := d.idField()
	p.Step("queue", deploy.StepRunning, "")
	body := map[string]string{k: v, "title": titlePrefix + req.Release,
		"description": fmt.Sprintf("shipbot job=%d ref=%s by=%s", req.JobID, req.Ref, req.By)}
	if err := d.c.Post(ctx, d.kind()+"."+verb, body, nil); err != nil {
		p.Step("queue", deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	p.Output(fmt.Sprintf("dokploy: %s.%s queued as %q", d.kind(), verb, titlePrefix+req.Release))
	return d.follow(ctx, req, p)
}

// Resume implements deploy.Resumer: find the deployment of req (by its
// title) and follow it; never queue another.
func (d *Driver) Resume(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	return d.follow(ctx, req, p)
}

// follow polls until the deployment titled for req.Release ends.
func (d *Driver) follow(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	dp, err := d.await(ctx, func(dp Deployment) bool { return dp.Title == titlePrefix+req.Release }, p,
		fmt.Sprintf("deploy of %s", req.Release))
	if err != nil {
		return deploy.Result{}, err
	}
	if dp.Status != "done" {
		p.Step("build", deploy.StepFailed, dp.Status)
		msg := fmt.Sprintf("Dokploy deployment %s ended %s", dp.DeploymentID, dp.Status)
		if dp.ErrorMessage != "" {
			msg += ": " + dp.ErrorMessage
		}
		return deploy.Result{}, errors.New(msg)
	}
	p.Step("build", deploy.StepDone, "")
	if err := d.checkHealth(ctx, p); err != nil {
		return d.healthFailed(ctx, req, p, err)
	}
	return deploy.Result{Release: req.Release, Message: fmt.Sprintf("%s is live on Dokploy (deployment %s)", req.Release, dp.DeploymentID)}, nil
}

// await polls the deployment list until match finds a deployment that
// ended, reporting status changes. It gives up when the deployment never
// shows up within Grace, or does not end within PollDeadline.
func (d *Driver) await(ctx context.Context, match func(Deployment) bool, p deploy.Progress, what string) (Deployment, error) {
	start := time.Now()
	deadline := time.NewTimer(d.PollDeadline)
	defer deadline.Stop()
	tick := time.NewTicker(d.PollInterval)
	defer tick.Stop()
	last := ""
	for {
		list, err := d.deployments(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Deployment{}, fmt.Errorf("stopped following the %s (Dokploy cannot cancel it; it may still run there): %w", what, ctx.Err())
			}
			var api *APIError
			if errors.As(err, &api) {
				return Deployment{}, err
			}
			// A network blip while a long build runs is not a failed deploy.
			p.Output("dokploy: reading deployments failed, retrying: " + err.Error())
		}
		found := false
		for _, dp := range list {
			if !match(dp) {
				continue
			}
			found = true
			if dp.Status != last {
				last = dp.Status
				p.Output("dokploy: deployment " + dp.DeploymentID + " " + dp.Status)
				if dp.Status == "running" {
					p.Step("queue", deploy.StepDone, "")
					p.Step("build", deploy.StepRunning, "")
				}
			}
			switch dp.Status {
			case "done", "error", "cancelled":
				p.Step("queue", deploy.StepDone, "")
				return dp, nil
			}
			break
		}
		if !found && time.Since(start) > d.Grace {
			return Deployment{}, fmt.Errorf("dokploy shows no deployment for the %s after %s: it was never queued, or was removed", what, d.Grace.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return Deployment{}, fmt.Errorf("stopped following the %s (Dokploy cannot cancel it; it may still run there): %w", what, ctx.Err())
		case <-deadline.C:
			return Deployment{}, fmt.Errorf("dokploy deployment for the %s not finished after %s; it may still be running in Dokploy", what, d.PollDeadline)
		case <-tick.C:
		}
	}
}

func (d *Driver) checkHealth(ctx context.Context, p deploy.Progress) error {
	h := d.Health
	if h.URL == "" {
		return nil
	}
	if d.Checker == nil {
		return errors.New("a health URL is configured but no checker")
	}
	p.Step("health", deploy.StepRunning, "")
	tries := h.Retries
	if tries < 1 {
		tries = 1
	}
	interval := h.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var err error
	for i := 0; i < tries; i++ {
		if err = d.Checker.Check(ctx, h); err == nil {
			p.Step("health", deploy.StepDone, "")
			return nil
		}
		p.Output("health: " + err.Error())
		if i < tries-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
		}
	}
	p.Step("health", deploy.StepFailed, err.Error())
	return err
}

// healthFailed rolls an application back to the previous deployment's
// image when Dokploy kept one; compose services have no such rollback.
func (d *Driver) healthFailed(ctx context.Context, req deploy.DeployRequest, p deploy.Progress, cause error) (deploy.Result, error) {
	if d.t.ApplicationID == "" || req.Previous == "" {
		return deploy.Result{}, fmt.Errorf("health check failed after the deploy: %v (Dokploy has no automatic rollback for this service; use /rollback)", cause)
	}
	res, err := d.Rollback(ctx, deploy.RollbackRequest{JobID: req.JobID, App: req.App, Env: req.Env, To: req.Previous, From: req.Release, By: req.By}, p)
	if err != nil {
		return deploy.Result{}, fmt.Errorf("health check failed (%v) and rolling back to %s failed: %w", cause, req.Previous, err)
	}
	res.RolledBack = true
	res.Message = fmt.Sprintf("health check failed (%v); rolled back to %s", cause, req.Previous)
	return res, nil
}

func (d *Driver) find(ctx context.Context, release string) (Deployment, error) {
	list, err := d.deployments(ctx)
	if err != nil {
		return Deployment{}, err
	}
	for _, dp := range list {
		if ReleaseID(dp) == release {
			return dp, nil
		}
	}
	return Deployment{}, fmt.Errorf("dokploy lists no deployment for release %s", release)
}

// Rollback implements deploy.Driver. Applications use rollback.rollback with
// the rollbackId Dokploy kept for the chosen deployment; compose services,
// which Dokploy cannot roll back, are pointed at the release's recorded
// git ref and redeployed when the env allows it.
func (d *Driver) Rollback(ctx context.Context, req deploy.RollbackRequest, p deploy.Progress) (deploy.Result, error) {
	target, err := d.find(ctx, req.To)
	if err != nil {
		return deploy.Result{}, err
	}
	if d.t.ComposeID != "" {
		return d.composeRollback(ctx, req, p)
	}
	if target.RollbackID == nil || *target.RollbackID == "" {
		return deploy.Result{}, fmt.Errorf("dokploy kept no rollback image for release %s (deployment %s): enable Rollbacks on the application in Dokploy, or /deploy the older ref", req.To, target.DeploymentID)
	}
	p.Step("rollback", deploy.StepRunning, "")
	before := time.Now().Add(-time.Second)
	if err := d.c.Post(ctx, "rollback.rollback", map[string]string{"rollbackId": *target.RollbackID}, nil); err != nil {
		p.Step("rollback", deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	p.Output("dokploy: rollback.rollback to deployment " + target.DeploymentID)
	if err := d.waitIdle(ctx, before, p); err != nil {
		p.Step("rollback", deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	p.Step("rollback", deploy.StepDone, "")
	if err := d.checkHealth(ctx, p); err != nil {
		return deploy.Result{}, fmt.Errorf("rolled back to %s but its health check failed: %w", req.To, err)
	}
	return deploy.Result{Release: req.To, Message: fmt.Sprintf("rolled back to %s (Dokploy rollback image of deployment %s)", req.To, target.DeploymentID)}, nil
}

// waitIdle waits for the application to leave "running" after a rollback.
func (d *Driver) waitIdle(ctx context.Context, since time.Time, p deploy.Progress) error {
	deadline := time.Now().Add(d.PollDeadline)
	for {
		svc, err := d.service(ctx)
		if err != nil {
			return err
		}
		switch svc.status() {
		case "done", "idle":
			return nil
		case "error":
			return errors.New("dokploy reports the application in error after the rollback")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the application is still %s after %s", svc.status(), d.PollDeadline)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.PollInterval):
		}
	}
}

var gitSources = map[string]bool{"git": true, "github": true, "gitlab": true, "gitea": true, "bitbucket": true}

func (d *Driver) composeRollback(ctx context.Context, req deploy.RollbackRequest, p deploy.Progress) (deploy.Result, error) {
	svc, err := d.service(ctx)
	if err != nil {
		return deploy.Result{}, err
	}
	if !gitSources[svc.SourceType] {
		return deploy.Result{}, fmt.Errorf("dokploy has no rollback for compose services, and this compose's source is %q, not git, so shipbot cannot redeploy an older commit; /deploy an older image tag instead", svc.SourceType)
	}
	if !d.t.SetBranch {
		return deploy.Result{}, errors.New("dokploy has no rollback for compose services; set dokploy.set_branch on the env to let shipbot point the compose at the release's recorded ref and redeploy it")
	}
	if d.RecordedRef == nil {
		return deploy.Result{}, errors.New("no record of the release's ref")
	}
	ref, err := d.RecordedRef(ctx, req.To)
	if err != nil || ref == "" {
		return deploy.Result{}, fmt.Errorf("shipbot has no recorded git ref for release %s, so it cannot redeploy it (%v)", req.To, err)
	}
	if err := deploy.ValidateRef(ref); err != nil {
		return deploy.Result{}, err
	}
	field := "branch"
	if svc.SourceType != "git" {
		field = "customGitBranch"
	}
	p.Step("set ref", deploy.StepRunning, ref)
	if err := d.c.Post(ctx, "compose.update", map[string]string{"composeId": d.t.ComposeID, field: ref}, nil); err != nil {
		p.Step("set ref", deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	p.Step("set ref", deploy.StepDone, ref)
	rel := deploy.NewReleaseID(time.Now(), req.JobID)
	res, err := d.start(ctx, deploy.DeployRequest{JobID: req.JobID, App: req.App, Env: req.Env, Ref: ref, Release: rel, By: req.By}, p, "redeploy")
	if err != nil {
		return res, fmt.Errorf("redeploying %s at %s: %w", req.To, ref, err)
	}
	res.Message = fmt.Sprintf("compose redeployed at %s (the ref of %s) as %s", ref, req.To, rel)
	return res, nil
}

// service is compose.one / application.one.
type service struct {
	Name              string `json:"name"`
	AppName           string `json:"appName"`
	ComposeStatus     string `json:"composeStatus"`
	ApplicationStatus string `json:"applicationStatus"`
	SourceType        string `json:"sourceType"`
	Branch            string `json:"branch"`
	CustomGitBranch   string `json:"customGitBranch"`
}

func (s service) status() string { return s.ComposeStatus + s.ApplicationStatus }

func (d *Driver) service(ctx context.Context) (service, error) {
	k, v := d.idField()
	var s service
	err := d.c.Get(ctx, d.kind()+".one", url.Values{k: {v}}, &s)
	return s, err
}

// Releases implements deploy.Driver: Dokploy's finished deployments, newest
// first. Current is the newest done one, unless shipbot since rolled back.
func (d *Driver) Releases(ctx context.Context) ([]deploy.ReleaseInfo, error) {
	list, err := d.deployments(ctx)
	if err != nil {
		return nil, err
	}
	var out []deploy.ReleaseInfo
	var newestDone time.Time
	for _, dp := range list {
		if dp.Status != "done" {
			continue
		}
		if newestDone.IsZero() {
			newestDone = dp.created()
		}
		out = append(out, deploy.ReleaseInfo{ID: ReleaseID(dp)})
	}
	if len(out) == 0 {
		return nil, nil
	}
	current := out[0].ID
	if d.LastLive != nil {
		// A Dokploy rollback makes no new deployment: trust shipbot's
		// record of what it made live when nothing newer was deployed.
		if rel, at, err := d.LastLive(ctx); err == nil && rel != "" && !at.Before(newestDone) {
			for _, r := range out {
				if r.ID == rel {
					current = rel
				}
			}
		}
	}
	for i := range out {
		out[i].Current = out[i].ID == current
	}
	return out, nil
}

// Status implements deploy.Driver from compose.one / application.one.
func (d *Driver) Status(ctx context.Context) (deploy.Status, error) {
	svc, err := d.service(ctx)
	if err != nil {
		return deploy.Status{}, err
	}
	rels, err := d.Releases(ctx)
	if err != nil {
		return deploy.Status{}, err
	}
	st := deploy.Status{Healthy: svc.status() == "done"}
	for _, r := range rels {
		if r.Current {
			st.Current = r.ID
		}
	}
	line := fmt.Sprintf("%s %s: %s", d.kind(), orDash(svc.Name), orDash(svc.status()))
	if b := svc.Branch + svc.CustomGitBranch; b != "" {
		line += ", branch " + b
	}
	st.Detail = append(st.Detail, line)
	if d.Health.URL != "" && d.Checker != nil {
		if err := d.Checker.Check(ctx, d.Health); err != nil {
			st.Healthy = false
			st.Detail = append(st.Detail, "health: "+err.Error())
		} else {
			st.Detail = append(st.Detail, "health: ok")
		}
	}
	return st, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Logs implements deploy.Driver with what Dokploy's API exposes: the
// recent deployments' status and error. Container and build logs stream
// over Dokploy's websocket, which is not part of its HTTP API.
func (d *Driver) Logs(ctx context.Context, lines int) (deploy.Logs, error) {
	list, err := d.deployments(ctx)
	if err != nil {
		return deploy.Logs{}, err
	}
	var out []string
	for _, dp := range list {
		l := fmt.Sprintf("%s  %s  %s  %s", dp.CreatedAt, dp.DeploymentID, dp.Status, dp.Title)
		if dp.ErrorMessage != "" {
			l += "  error: " + dp.ErrorMessage
		}
		out = append(out, l)
	}
	out = append(out, "container and build logs are not exposed by Dokploy's HTTP API (they stream over its websocket); open the Dokploy UI for them")
	logs := deploy.Logs{Lines: out}
	if len(out) > lines {
		logs.Lines, logs.Truncated = out[len(out)-lines:], true
	}
	return logs, nil
}

// Stop implements deploy.StartStopper.
func (d *Driver) Stop(ctx context.Context, p deploy.Progress) (deploy.Result, error) {
	return d.simple(ctx, "stop", p)
}

// Start implements deploy.StartStopper.
func (d *Driver) Start(ctx context.Context, p deploy.Progress) (deploy.Result, error) {
	return d.simple(ctx, "start", p)
}

func (d *Driver) simple(ctx context.Context, verb string, p deploy.Progress) (deploy.Result, error) {
	k, v := d.idField()
	p.Step(verb, deploy.StepRunning, "")
	if err := d.c.Post(ctx, d.kind()+"."+verb, map[string]string{k: v}, nil); err != nil {
		p.Step(verb, deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	p.Step(verb, deploy.StepDone, "")
	return deploy.Result{Message: fmt.Sprintf("Dokploy %s %s: %s done", d.kind(), v, verb)}, nil
}

// backupInfo is backup.one.
type backupInfo struct {
	BackupID     string `json:"backupId"`
	DatabaseType string `json:"databaseType"`
	Database     string `json:"database"`
	Prefix       string `json:"prefix"`
}

var manualBackup = map[string]string{"postgres": "backup.manualBackupPostgres", "mysql": "backup.manualBackupMySql",
	"mariadb": "backup.manualBackupMariadb", "mongo": "backup.manualBackupMongo", "compose": "backup.manualBackupCompose"}

// Backup implements deploy.Backuper: it runs the env's configured Dokploy
// backup, which Dokploy uploads to its own destination before answering.
func (d *Driver) Backup(ctx context.Context, req deploy.BackupRequest, p deploy.Progress) (deploy.BackupResult, error) {
	if d.t.BackupID == "" {
		return deploy.BackupResult{}, errors.New("no dokploy.backup_id is configured for this env")
	}
	var b backupInfo
	if err := d.c.Get(ctx, "backup.one", url.Values{"backupId": {d.t.BackupID}}, &b); err != nil {
		return deploy.BackupResult{}, err
	}
	proc, ok := manualBackup[b.DatabaseType]
	if !ok {
		return deploy.BackupResult{}, fmt.Errorf("dokploy backup %s is of type %q, which shipbot cannot trigger", d.t.BackupID, b.DatabaseType)
	}
	p.Step("dokploy backup", deploy.StepRunning, b.DatabaseType+" "+b.Database)
	started := time.Now()
	if err := d.c.PostLong(ctx, proc, map[string]string{"backupId": d.t.BackupID}, nil, d.BackupTimeout); err != nil {
		p.Step("dokploy backup", deploy.StepFailed, err.Error())
		return deploy.BackupResult{}, err
	}
	took := time.Since(started).Round(time.Second)
	p.Step("dokploy backup", deploy.StepDone, took.String())
	return deploy.BackupResult{Location: "dokploy backup " + d.t.BackupID + " (its S3 destination)",
		Files: []deploy.BackupFile{{Name: b.Prefix + b.Database, Kind: "dokploy", Source: b.DatabaseType + " " + b.Database}}}, nil
}

// VerifyBackup implements deploy.Backuper: Dokploy keeps the files in its
// own destination, out of shipbot's reach.
func (d *Driver) VerifyBackup(context.Context, deploy.Backup, deploy.Progress) (deploy.VerifyResult, error) {
	return deploy.VerifyResult{}, errors.New("dokploy keeps this backup in its own S3 destination, which shipbot cannot read; run the restore drill from Dokploy's UI")
}

// Restore implements deploy.Backuper.
func (d *Driver) Restore(context.Context, deploy.Backup, bool, deploy.Progress) (deploy.Result, error) {
	return deploy.Result{}, errors.New("dokploy restores its backups from its own UI; shipbot cannot restore them through the API")
}

// DeleteBackups implements deploy.Backuper: Dokploy's own retention
// (keepLatestCount) prunes its backups.
func (d *Driver) DeleteBackups(context.Context, []string) error { return nil }
