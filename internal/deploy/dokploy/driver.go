package dokploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Target is the Dokploy service an env deploys: exactly one of ComposeID
// and ApplicationID.
type Target struct {
	ComposeID     string
	ApplicationID string
	// SetBranch lets /deploy APP ENV REF and a compose rollback point the
	// service's git branch field at REF before deploying. Without it a REF
	// other than the configured branch is refused.
	SetBranch bool
	// BackupID is the Dokploy backup /backup triggers; "" = none.
	BackupID string
}

// Checker checks an HTTP health URL once (httpcheck.Checker).
type Checker interface {
	Check(ctx context.Context, h deploy.Health) error
}

// Pin is what shipbot knows of one of its own Dokploy deploys. Dokploy
// answers a deploy with no id and rewrites the row's title when the build
// ends, so the row is identified once, by the ids listed before the POST,
// and followed by its deploymentId from then on.
type Pin struct {
	Release      string
	Posted       time.Time // when shipbot POSTed the deploy
	Before       []string  // deploymentIds listed just before the POST
	DeploymentID string    // "" until identified
	Ref          string    // the branch or tag Dokploy was set to build
	SHA          string    // from the row's "Commit: <sha>"
}

// Pins keeps one env's pins across restarts.
type Pins interface {
	PutPin(ctx context.Context, p Pin) error
	Pins(ctx context.Context) ([]Pin, error)
}

// MemPins is Pins in memory (tests, and a driver built without a store).
type MemPins struct {
	mu sync.Mutex
	m  map[string]Pin
}

var _ Pins = (*MemPins)(nil)

// PutPin implements Pins.
func (m *MemPins) PutPin(_ context.Context, p Pin) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]Pin{}
	}
	m.m[p.Release] = p
	return nil
}

// Pins implements Pins.
func (m *MemPins) Pins(context.Context) ([]Pin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Pin
	for _, p := range m.m {
		out = append(out, p)
	}
	return out, nil
}

// Driver deploys one env on Dokploy. A running Dokploy build cannot be
// cancelled cleanly through its API (killBuild stops every build on that
// server): cancelling a job drops a deploy still waiting in Dokploy's queue,
// and otherwise stops shipbot following it while the build goes on.
type Driver struct {
	c *Client
	t Target

	Health  deploy.Health // checked after a deploy when URL is set
	Checker Checker
	// PollInterval is how often the deployment list is read; default 2s.
	PollInterval time.Duration
	// PollDeadline bounds one build, from when its row appears; default 30m.
	PollDeadline time.Duration
	// Grace (dokploy.queue_grace) is how long a deploy may stay invisible
	// while Dokploy's queueList does not show it waiting; default 30m.
	Grace time.Duration
	// BackupTimeout bounds a manual backup, which Dokploy runs before it
	// answers; default 30m.
	BackupTimeout time.Duration
	// LogSince bounds /logs to lines newer than this; 0 = no bound but the count.
	LogSince time.Duration
	// LogMaxBytes caps what /logs returns; default 64 KiB.
	LogMaxBytes int
	// Pins keeps pinned deploymentIds across restarts; default in memory.
	Pins Pins
	// RecordedRef gives the git ref shipbot recorded for a release (compose rollback).
	RecordedRef func(ctx context.Context, release string) (string, error)
	// LastLive gives the release shipbot last made live and when, so a
	// rollback (which Dokploy does not list as a deployment) shows as current.
	LastLive func(ctx context.Context) (release string, at time.Time, err error)

	noQueueList atomic.Bool // this Dokploy has no deployment.queueList
}

var (
	_ deploy.Driver           = (*Driver)(nil)
	_ deploy.Resumer          = (*Driver)(nil)
	_ deploy.StartStopper     = (*Driver)(nil)
	_ deploy.Backuper         = (*Driver)(nil)
	_ deploy.BackupsElsewhere = (*Driver)(nil)
	_ deploy.BuildLogger      = (*Driver)(nil)
)

// New returns a driver for t.
func New(c *Client, t Target) (*Driver, error) {
	if (t.ComposeID == "") == (t.ApplicationID == "") {
		return nil, errors.New("dokploy: set exactly one of compose_id and application_id")
	}
	return &Driver{c: c, t: t, PollInterval: 2 * time.Second, PollDeadline: 30 * time.Minute, Grace: 30 * time.Minute,
		BackupTimeout: 30 * time.Minute, Pins: &MemPins{}}, nil
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

// Deployment is one entry of Dokploy's deployment list
// (packages/server/src/db/schema/deployment.ts:20-76).
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

func (dp Deployment) ended() bool {
	return dp.Status == "done" || dp.Status == "error" || dp.Status == "cancelled"
}

// commit is the SHA Dokploy records as "Commit: <sha>" when a git build ends
// (services/compose.ts:328-340, services/application.ts:277-292).
func (dp Deployment) commit() string {
	sha, ok := strings.CutPrefix(strings.TrimSpace(dp.Description), "Commit: ")
	if !ok || !shaPattern.MatchString(sha) {
		return ""
	}
	return sha
}

// titlePrefix marks shipbot's deploys: "shipbot <release>".
const titlePrefix = "shipbot "

var nonName = regexp.MustCompile(`[^a-z0-9._-]+`)

// ReleaseID is the release a deployment stands for when shipbot has no pin
// for it: the one shipbot named in its title, else one made from its time
// and id (a deploy started in Dokploy's UI).
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

var shaPattern = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// LooksLikeSHA reports whether ref is a commit id rather than a branch or
// tag name: Dokploy clones with `git clone --branch REF --depth 1`, which
// cannot check out a commit (packages/server/src/utils/providers/git.ts:82).
func LooksLikeSHA(ref string) bool {
	return len(ref) >= 7 && shaPattern.MatchString(strings.ToLower(ref)) && strings.IndexFunc(ref, func(r rune) bool { return r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' }) >= 0
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

// pins maps deploymentId and release to pins.
func (d *Driver) pins(ctx context.Context) (byID, byRelease map[string]Pin) {
	byID, byRelease = map[string]Pin{}, map[string]Pin{}
	ps, err := d.Pins.Pins(ctx)
	if err != nil {
		return byID, byRelease
	}
	for _, p := range ps {
		byRelease[p.Release] = p
		if p.DeploymentID != "" {
			byID[p.DeploymentID] = p
		}
	}
	return byID, byRelease
}

// releaseOf names a listed deployment: by its pin, else by its title or time.
func releaseOf(dp Deployment, byID map[string]Pin) string {
	if p, ok := byID[dp.DeploymentID]; ok {
		return p.Release
	}
	return ReleaseID(dp)
}

// Plan implements deploy.Driver.
func (d *Driver) Plan(_ context.Context, req deploy.DeployRequest) (deploy.Plan, error) {
	if req.Ref != "" && LooksLikeSHA(req.Ref) {
		return deploy.Plan{}, shaRefused(req.Ref)
	}
	steps := []string{"queue", "build"}
	if req.Ref != "" && d.t.SetBranch {
		steps = append([]string{"set ref"}, steps...)
	}
	if d.Health.URL != "" {
		steps = append(steps, "health")
	}
	return deploy.Plan{Steps: steps, Hosts: []string{"dokploy " + d.kind()}, From: req.Previous, To: req.Release}, nil
}

func shaRefused(ref string) error {
	return &deploy.Refusal{Msg: fmt.Sprintf("%s looks like a commit id: Dokploy clones with `git clone --branch REF --depth 1`, which takes a branch or tag name only; deploy the branch or tag (tag the commit first if needed)", ref)}
}

// Deploy implements deploy.Driver: compose.deploy / application.deploy, or
// *.redeploy (rebuild without pulling new code) when req.Redeploy.
func (d *Driver) Deploy(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	verb := "deploy"
	if req.Redeploy {
		verb = "redeploy"
	}
	return d.start(ctx, req, p, verb)
}

func (d *Driver) start(ctx context.Context, req deploy.DeployRequest, p deploy.Progress, verb string) (deploy.Result, error) {
	if !deploy.ValidName(req.Release) {
		return deploy.Result{}, fmt.Errorf("release id %q is not valid", req.Release)
	}
	svc, err := d.service(ctx)
	if err != nil {
		return deploy.Result{}, err
	}
	ref, err := d.applyRef(ctx, svc, req.Ref, verb, p)
	if err != nil {
		return deploy.Result{}, err
	}
	list, err := d.deployments(ctx)
	if err != nil {
		return deploy.Result{}, err
	}
	pin := Pin{Release: req.Release, Posted: time.Now(), Ref: ref}
	for _, dp := range list {
		pin.Before = append(pin.Before, dp.DeploymentID)
	}
	// Stored before the POST: after a crash Resume finds the row from it.
	if err := d.Pins.PutPin(ctx, pin); err != nil {
		return deploy.Result{}, fmt.Errorf("recording the Dokploy deploy before starting it: %w", err)
	}
	k, v := d.idField()
	body := map[string]string{k: v, "title": titlePrefix + req.Release,
		"description": fmt.Sprintf("shipbot job=%d ref=%s by=%s", req.JobID, ref, req.By)}
	if err := d.c.Post(ctx, d.kind()+"."+verb, body, nil); err != nil {
		p.Step("queue", deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	p.Step("queue", deploy.StepRunning, "")
	p.Output(fmt.Sprintf("dokploy: %s.%s queued as %q", d.kind(), verb, titlePrefix+req.Release))
	return d.follow(ctx, req, pin, svc.branchField() != "" && verb == "deploy", p)
}

// applyRef decides what Dokploy builds. Dokploy clones the branch field of
// the service's source type; a REF other than that is applied with
// set_branch, refused otherwise, never silently ignored.
func (d *Driver) applyRef(ctx context.Context, svc service, ref, verb string, p deploy.Progress) (string, error) {
	tracked := svc.trackedRef()
	if ref == "" || ref == tracked {
		return tracked, nil
	}
	if LooksLikeSHA(ref) {
		return "", shaRefused(ref)
	}
	if verb == "redeploy" {
		return "", &deploy.Refusal{Msg: fmt.Sprintf("--redeploy rebuilds the code Dokploy already has (%s); it cannot switch to %s: /deploy without --redeploy", orDash(tracked), ref)}
	}
	if svc.branchField() == "" {
		return "", &deploy.Refusal{Msg: fmt.Sprintf("this %s's source is %q, not git: Dokploy builds no ref, so /deploy takes none", d.kind(), svc.SourceType)}
	}
	if !d.t.SetBranch {
		return "", &deploy.Refusal{Msg: fmt.Sprintf("Dokploy builds the %s's configured branch %s, not %s; set dokploy.set_branch on the env to let /deploy switch it, or change it in Dokploy", d.kind(), orDash(tracked), ref)}
	}
	return ref, d.setRef(ctx, svc, ref, p)
}

// setRef points the service's branch field at ref and checks it took:
// *.update strips keys it does not know and still answers 200.
func (d *Driver) setRef(ctx context.Context, svc service, ref string, p deploy.Progress) error {
	field := svc.branchField()
	k, v := d.idField()
	p.Step("set ref", deploy.StepRunning, ref)
	if err := d.c.Post(ctx, d.kind()+".update", map[string]string{k: v, field: ref}, nil); err != nil {
		p.Step("set ref", deploy.StepFailed, err.Error())
		return err
	}
	after, err := d.service(ctx)
	if err == nil && after.trackedRef() != ref {
		err = fmt.Errorf("dokploy answered %s.update but its %s is still %q", d.kind(), field, after.trackedRef())
	}
	if err != nil {
		p.Step("set ref", deploy.StepFailed, err.Error())
		return err
	}
	p.Step("set ref", deploy.StepDone, fmt.Sprintf("%s %s → %s", field, orDash(svc.trackedRef()), ref))
	return nil
}

// Resume implements deploy.Resumer: find the deployment shipbot started for
// req (by its pin) and follow it; never queue another.
func (d *Driver) Resume(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	_, byRelease := d.pins(ctx)
	pin, ok := byRelease[req.Release]
	if !ok {
		// No pin (a deploy started by an older shipbot): only the title can tell.
		pin = Pin{Release: req.Release, Ref: req.Ref}
	}
	git := true
	if svc, err := d.service(ctx); err == nil {
		git = svc.branchField() != ""
	}
	return d.follow(ctx, req, pin, git && !req.Redeploy, p)
}

// follow waits for the deploy of pin to end and reports it. cloned says
// Dokploy clones git for it, so it records the commit when the build ends.
func (d *Driver) follow(ctx context.Context, req deploy.DeployRequest, pin Pin, cloned bool, p deploy.Progress) (deploy.Result, error) {
	dp, err := d.await(ctx, &pin, cloned, p)
	if err != nil {
		return deploy.Result{}, err
	}
	if dp.Status != "done" {
		p.Step("build", deploy.StepFailed, dp.Status)
		msg := fmt.Sprintf("Dokploy deployment %s ended %s", dp.DeploymentID, dp.Status)
		if why := d.failureReason(ctx, dp); why != "" {
			msg += ": " + why
		}
		return deploy.Result{}, errors.New(msg)
	}
	p.Step("build", deploy.StepDone, commitDetail(pin))
	if err := d.checkHealth(ctx, p); err != nil {
		return d.healthFailed(ctx, req, p, err)
	}
	return deploy.Result{Release: req.Release, Message: fmt.Sprintf("%s is live on Dokploy (deployment %s%s)", req.Release, dp.DeploymentID, withCommit(pin))}, nil
}

func commitDetail(pin Pin) string {
	return strings.TrimPrefix(withCommit(pin), ", ")
}

func withCommit(pin Pin) string {
	s := ""
	if pin.SHA != "" {
		s += ", commit " + short(pin.SHA)
	}
	if pin.Ref != "" {
		s += ", from " + pin.Ref
	}
	return s
}

func short(sha string) string {
	if len(sha) > 10 {
		return sha[:10]
	}
	return sha
}

// defaultTitles are the titles Dokploy gives deploys with none, and every
// deploy before v0.25.0 (routers/compose.ts:423,472; application.ts).
var defaultTitles = map[string]bool{"Manual deployment": true, "Rebuild deployment": true, "Deployment": true}

// await polls until the deploy of pin ends. The row is identified by its
// title while it runs (Dokploy keeps the title shipbot sent until the build
// ends, then rewrites it to the commit message), else as the newest row
// not listed before the POST that no other deploy claimed; once found it is
// pinned and followed by id. While no row exists, Dokploy's queue may hold
// the job: it waits as long as queueList shows it, otherwise up to Grace.
func (d *Driver) await(ctx context.Context, pin *Pin, cloned bool, p deploy.Progress) (Deployment, error) {
	title := titlePrefix + pin.Release
	before := map[string]bool{}
	for _, id := range pin.Before {
		before[id] = true
	}
	foreign := map[string]bool{}
	lastVisible := time.Now() // the last time the job was listed in the queue
	var buildStart time.Time
	tick := time.NewTicker(d.PollInterval)
	defer tick.Stop()
	last, lastAhead := "", -1
	var seen *Deployment
	for {
		list, err := d.deployments(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Deployment{}, d.stopped(ctx, pin, seen, p)
			}
			var api *APIError
			if errors.As(err, &api) {
				return Deployment{}, err
			}
			// A network blip while a long build runs is not a failed deploy.
			p.Output("dokploy: reading deployments failed, retrying: " + err.Error())
		}
		if err == nil {
			dp, found, gone := identify(list, pin, title)
			if gone {
				return Deployment{}, fmt.Errorf("dokploy no longer lists deployment %s of release %s (it keeps about 10 per service)", pin.DeploymentID, pin.Release)
			}
			waiting, ahead := false, 0
			if !found {
				markForeign(list, title, foreign)
				waiting, ahead = d.queued(ctx, title)
				if !waiting {
					dp, found = bySnapshot(list, pin, before, foreign)
				}
			}
			if found {
				seen = &dp
				if pin.DeploymentID == "" {
					pin.DeploymentID = dp.DeploymentID
					if err := d.Pins.PutPin(ctx, *pin); err != nil {
						p.Output("dokploy: could not record deployment id " + dp.DeploymentID + ": " + err.Error())
					}
				}
				if buildStart.IsZero() {
					buildStart = time.Now()
				}
				if dp.Status != last {
					last = dp.Status
					p.Output("dokploy: deployment " + dp.DeploymentID + " " + dp.Status)
					if dp.Status == "running" {
						p.Step("queue", deploy.StepDone, "")
						p.Step("build", deploy.StepRunning, "")
					}
				}
				if dp.ended() {
					p.Step("queue", deploy.StepDone, "")
					if cloned {
						d.recordCommit(ctx, pin, dp, title, p)
					}
					return dp, nil
				}
				if time.Since(buildStart) > d.PollDeadline {
					return Deployment{}, fmt.Errorf("dokploy deployment %s of release %s not finished after %s; it may still be running in Dokploy", dp.DeploymentID, pin.Release, d.PollDeadline)
				}
			} else {
				switch {
				case waiting:
					lastVisible = time.Now()
					if ahead != lastAhead {
						lastAhead = ahead
						detail := "starting in Dokploy"
						if ahead > 0 {
							detail = fmt.Sprintf("queued behind %d build%s", ahead, plural(ahead))
						}
						p.Step("queue", deploy.StepRunning, detail)
						p.Output("dokploy: " + detail)
					}
				case time.Since(lastVisible) > d.Grace:
					return Deployment{}, fmt.Errorf("dokploy shows no deployment for release %s after %s, and its queue does not list it: it was never queued, was removed, or Dokploy restarted (its queue lives in memory)", pin.Release, d.Grace.Round(time.Millisecond))
				}
			}
		}
		select {
		case <-ctx.Done():
			return Deployment{}, d.stopped(ctx, pin, seen, p)
		case <-tick.C:
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// identify finds pin's row by its pinned id, else by shipbot's title, which
// Dokploy keeps while the build runs. gone is true when a pinned row is no
// longer listed.
func identify(list []Deployment, pin *Pin, title string) (dp Deployment, found, gone bool) {
	if pin.DeploymentID != "" {
		for _, dp := range list {
			if dp.DeploymentID == pin.DeploymentID {
				return dp, true, false
			}
		}
		return Deployment{}, false, true
	}
	for _, dp := range list {
		if dp.Title == title {
			return dp, true, false
		}
	}
	return Deployment{}, false, false
}

// markForeign notes rows seen running under another non-default title:
// someone else's deploy (a push, the UI, another shipbot release).
func markForeign(list []Deployment, title string, foreign map[string]bool) {
	for _, dp := range list {
		if dp.Status == "running" && dp.Title != title && !defaultTitles[dp.Title] {
			foreign[dp.DeploymentID] = true
		}
	}
}

// bySnapshot takes the newest row not listed before the POST that no other
// deploy claimed: shipbot's row once Dokploy rewrote its title (a build
// that ended between two polls, or while shipbot was down), or any row on a
// Dokploy that drops titles (before v0.25.0). Only called while Dokploy's
// queue does not hold shipbot's job, so the row is not one queued ahead.
func bySnapshot(list []Deployment, pin *Pin, before, foreign map[string]bool) (Deployment, bool) {
	if len(pin.Before) == 0 && pin.Posted.IsZero() {
		return Deployment{}, false // no snapshot: the title is all there is
	}
	for _, dp := range list {
		if !before[dp.DeploymentID] && !foreign[dp.DeploymentID] {
			return dp, true
		}
	}
	return Deployment{}, false
}

// queueJob is one row of deployment.queueList
// (apps/dokploy/server/api/routers/deployment.ts:81-125; data is a
// DeploymentJob, apps/dokploy/server/queues/queue-types.ts:1-29).
type queueJob struct {
	ID        string         `json:"id"`
	Data      map[string]any `json:"data"`
	Timestamp int64          `json:"timestamp"`
	State     string         `json:"state"`
}

// queued reports whether Dokploy's queue holds shipbot's job titled title,
// waiting or building, and how many builds on the same server run or wait
// ahead of it. Without queueList (before v0.28.3) it reports false.
func (d *Driver) queued(ctx context.Context, title string) (bool, int) {
	if d.noQueueList.Load() {
		return false, 0
	}
	var jobs []queueJob
	if err := d.c.Get(ctx, "deployment.queueList", nil, &jobs); err != nil {
		var api *APIError
		if errors.As(err, &api) && api.NoProcedure() {
			d.noQueueList.Store(true)
		}
		return false, 0
	}
	k, v := d.idField()
	var mine *queueJob
	for i, j := range jobs {
		if j.Data[k] == v && j.Data["titleLog"] == title && (j.State == "waiting" || j.State == "active") {
			mine = &jobs[i]
		}
	}
	if mine == nil {
		return false, 0
	}
	if mine.State == "active" {
		return true, 0
	}
	ahead := 0
	for _, j := range jobs {
		if j.ID == mine.ID || fmt.Sprint(j.Data["serverId"]) != fmt.Sprint(mine.Data["serverId"]) {
			continue
		}
		if j.State == "active" || (j.State == "waiting" && j.Timestamp < mine.Timestamp) {
			ahead++
		}
	}
	return true, ahead
}

// recordCommit reads "Commit: <sha>" from the ended row. Dokploy sets the
// status before it rewrites the row in its finally block, so a git build's
// commit may appear one poll later.
func (d *Driver) recordCommit(ctx context.Context, pin *Pin, dp Deployment, title string, p deploy.Progress) {
	sha := dp.commit()
	for i := 0; sha == "" && dp.Title == title && i < 3 && ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(d.PollInterval):
		}
		list, err := d.deployments(ctx)
		if err != nil {
			break
		}
		for _, r := range list {
			if r.DeploymentID == dp.DeploymentID {
				dp = r
			}
		}
		sha = dp.commit()
	}
	if sha == "" {
		return
	}
	pin.SHA = sha
	p.Output("dokploy: built commit " + sha)
	if err := d.Pins.PutPin(ctx, *pin); err != nil {
		p.Output("dokploy: could not record the commit: " + err.Error())
	}
}

// failureReason is the tail of a failed build's log: Dokploy leaves
// errorMessage empty for failed builds (services/deployment.ts:190,347).
func (d *Driver) failureReason(ctx context.Context, dp Deployment) string {
	var parts []string
	if dp.ErrorMessage != "" {
		parts = append(parts, dp.ErrorMessage)
	}
	var log string
	err := d.c.Get(ctx, "deployment.readLogs", url.Values{"deploymentId": {dp.DeploymentID}, "tail": {"40"}}, &log)
	if err == nil {
		var keep []string
		for _, l := range strings.Split(log, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "Error occurred ❌") {
				continue
			}
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			keep = append(keep, l)
		}
		if len(keep) > 6 {
			keep = keep[len(keep)-6:]
		}
		if len(keep) > 0 {
			parts = append(parts, "build log ends: "+strings.Join(keep, " | "))
		}
	} else if len(parts) == 0 {
		parts = append(parts, "the build log is not readable here ("+err.Error()+"); open the deployment in Dokploy")
	}
	return strings.Join(parts, "; ")
}

// stopped ends following after ctx ended (/cancel, timeout, shutdown). A
// deploy Dokploy has not started yet is dropped from its queue with
// cleanQueues; a running build cannot be cancelled cleanly (Dokploy's
// killBuild stops every build on that server), so it goes on there.
func (d *Driver) stopped(ctx context.Context, pin *Pin, seen *Deployment, p deploy.Progress) error {
	if seen != nil && seen.Status == "running" {
		p.Output("dokploy: deployment " + seen.DeploymentID + " is building; Dokploy cannot cancel a running build cleanly, so it goes on there")
		return fmt.Errorf("stopped following Dokploy deployment %s (Dokploy cannot cancel a running build cleanly; it may still run there): %w", seen.DeploymentID, ctx.Err())
	}
	if seen != nil {
		return fmt.Errorf("stopped following the deploy of %s (it may still run there): %w", pin.Release, ctx.Err())
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	k, v := d.idField()
	if err := d.c.Post(cctx, d.kind()+".cleanQueues", map[string]string{k: v}, nil); err != nil {
		p.Output("dokploy: could not drop the queued deploy: " + err.Error())
		return fmt.Errorf("stopped following the deploy of %s (it may still run in Dokploy; dropping it from the queue failed: %v): %w", pin.Release, err, ctx.Err())
	}
	p.Step("queue", deploy.StepFailed, "dropped from Dokploy's queue")
	p.Output(fmt.Sprintf("dokploy: dropped the queued deploy from Dokploy's queue (%s.cleanQueues drops every deploy of this %s still waiting)", d.kind(), d.kind()))
	// It may have started between the last poll and cleanQueues.
	if list, err := d.deployments(cctx); err == nil {
		for _, dp := range list {
			if dp.Title == titlePrefix+pin.Release && dp.Status == "running" {
				p.Output("dokploy: it had just started as deployment " + dp.DeploymentID + ", which cannot be cancelled cleanly and goes on building")
				return fmt.Errorf("dokploy deployment %s had just started and goes on building (it cannot be cancelled cleanly): %w", dp.DeploymentID, ctx.Err())
			}
		}
	}
	return fmt.Errorf("dropped the deploy of %s from Dokploy's queue before it started: %w", pin.Release, ctx.Err())
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
	byID, byRelease := d.pins(ctx)
	if p, ok := byRelease[release]; ok && p.DeploymentID != "" {
		for _, dp := range list {
			if dp.DeploymentID == p.DeploymentID {
				return dp, nil
			}
		}
		return Deployment{}, fmt.Errorf("dokploy no longer lists deployment %s of release %s (it keeps about 10 per service, and deletes older rollback images)", p.DeploymentID, release)
	}
	for _, dp := range list {
		if releaseOf(dp, byID) == release {
			return dp, nil
		}
	}
	return Deployment{}, fmt.Errorf("dokploy lists no deployment for release %s", release)
}

// Rollback implements deploy.Driver. Applications use rollback.rollback with
// the rollbackId Dokploy kept for the chosen deployment; compose services,
// which Dokploy cannot roll back, are pointed at the release's recorded
// branch or tag and deployed again when the env allows it.
func (d *Driver) Rollback(ctx context.Context, req deploy.RollbackRequest, p deploy.Progress) (deploy.Result, error) {
	target, err := d.find(ctx, req.To)
	if err != nil {
		return deploy.Result{}, err
	}
	if d.t.ComposeID != "" {
		return d.composeRollback(ctx, req, p)
	}
	if target.RollbackID == nil || *target.RollbackID == "" {
		return deploy.Result{}, fmt.Errorf("dokploy kept no rollback image for release %s (deployment %s): enable Rollbacks on the application in Dokploy, or /deploy a tag of the older code (with dokploy.set_branch)", req.To, target.DeploymentID)
	}
	p.Step("rollback", deploy.StepRunning, "")
	if err := d.c.Post(ctx, "rollback.rollback", map[string]string{"rollbackId": *target.RollbackID}, nil); err != nil {
		p.Step("rollback", deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	// rollback.rollback creates no deployment and leaves applicationStatus
	// as it was (services/rollbacks.ts:163-183); Swarm converges after it
	// answers, so the health check is what tells.
	p.Output("dokploy: rollback.rollback to deployment " + target.DeploymentID)
	if err := d.waitIdle(ctx); err != nil {
		p.Step("rollback", deploy.StepFailed, err.Error())
		return deploy.Result{}, err
	}
	p.Step("rollback", deploy.StepDone, "")
	if err := d.checkHealth(ctx, p); err != nil {
		return deploy.Result{}, fmt.Errorf("rolled back to %s but its health check failed: %w", req.To, err)
	}
	return deploy.Result{Release: req.To, Message: fmt.Sprintf("rolled back to %s (Dokploy rollback image of deployment %s)", req.To, target.DeploymentID)}, nil
}

// waitIdle waits for the application to leave "running" (a deploy of its
// own may be building).
func (d *Driver) waitIdle(ctx context.Context) error {
	deadline := time.Now().Add(d.PollDeadline)
	for {
		svc, err := d.service(ctx)
		if err != nil {
			return err
		}
		switch svc.status() {
		case "running":
		case "error":
			return errors.New("dokploy reports the application in error after the rollback")
		default:
			return nil
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

func (d *Driver) recordedRef(ctx context.Context, release string) (string, error) {
	if _, byRelease := d.pins(ctx); byRelease[release].Ref != "" {
		return byRelease[release].Ref, nil
	}
	if d.RecordedRef == nil {
		return "", errors.New("no record of the release's ref")
	}
	return d.RecordedRef(ctx, release)
}

func (d *Driver) composeRollback(ctx context.Context, req deploy.RollbackRequest, p deploy.Progress) (deploy.Result, error) {
	svc, err := d.service(ctx)
	if err != nil {
		return deploy.Result{}, err
	}
	if svc.branchField() == "" {
		return deploy.Result{}, fmt.Errorf("dokploy has no rollback for compose services, and this compose's source is %q, not git, so shipbot cannot deploy an older ref; /deploy an older image tag instead", svc.SourceType)
	}
	if !d.t.SetBranch {
		return deploy.Result{}, errors.New("dokploy has no rollback for compose services; set dokploy.set_branch on the env to let shipbot point the compose at the release's recorded branch or tag and deploy it")
	}
	ref, err := d.recordedRef(ctx, req.To)
	if err != nil || ref == "" {
		return deploy.Result{}, fmt.Errorf("shipbot has no recorded git ref for release %s, so it cannot deploy it again (%v)", req.To, err)
	}
	if err := deploy.ValidateRef(ref); err != nil {
		return deploy.Result{}, err
	}
	if LooksLikeSHA(ref) {
		return deploy.Result{}, fmt.Errorf("release %s was recorded at commit %s, which Dokploy cannot clone (it takes a branch or tag); tag that commit and /deploy the tag", req.To, ref)
	}
	was := svc.trackedRef()
	if ref == was {
		return deploy.Result{}, fmt.Errorf("release %s was built from %s, which the compose still tracks: deploying it again would build %s's current head, not the old code; tag the old commit and /deploy the tag", req.To, ref, ref)
	}
	if err := d.setRef(ctx, svc, ref, p); err != nil {
		return deploy.Result{}, err
	}
	// compose.redeploy never clones (services/compose.ts:344-426): only a
	// deploy fetches the ref just set.
	rel := deploy.NewReleaseID(time.Now(), req.JobID)
	res, err := d.start(ctx, deploy.DeployRequest{JobID: req.JobID, App: req.App, Env: req.Env, Ref: ref, Release: rel, By: req.By}, p, "deploy")
	if err != nil {
		return res, fmt.Errorf("deploying %s again at %s: %w", req.To, ref, err)
	}
	res.Message = fmt.Sprintf("compose deployed at %s (the ref of %s) as %s. The compose now tracks %s, not %s: the next plain /deploy builds %s again, and a git push to %s no longer deploys it; /deploy %s %s %s returns it to %s",
		ref, req.To, rel, ref, orDash(was), ref, orDash(was), req.App, req.Env, orDash(was), orDash(was))
	return res, nil
}

// service is compose.one / application.one (the env text it also returns
// is never read).
type service struct {
	Name              string  `json:"name"`
	AppName           string  `json:"appName"`
	ComposeStatus     string  `json:"composeStatus"`
	ApplicationStatus string  `json:"applicationStatus"`
	ComposeType       string  `json:"composeType"`
	ServerID          *string `json:"serverId"`
	SourceType        string  `json:"sourceType"`
	Branch            string  `json:"branch"`
	GitlabBranch      string  `json:"gitlabBranch"`
	BitbucketBranch   string  `json:"bitbucketBranch"`
	GiteaBranch       string  `json:"giteaBranch"`
	CustomGitBranch   string  `json:"customGitBranch"`
}

func (s service) status() string { return s.ComposeStatus + s.ApplicationStatus }

// branchField is the field Dokploy clones from for the source type
// (schema/compose.ts:59-81; providers/github.ts:235, gitlab.ts:158,
// bitbucket.ts:129, gitea.ts:181, git.ts:82); "" for raw, docker, drop.
func (s service) branchField() string {
	return map[string]string{"github": "branch", "gitlab": "gitlabBranch", "bitbucket": "bitbucketBranch",
		"gitea": "giteaBranch", "git": "customGitBranch"}[s.SourceType]
}

func (s service) trackedRef() string {
	switch s.branchField() {
	case "branch":
		return s.Branch
	case "gitlabBranch":
		return s.GitlabBranch
	case "bitbucketBranch":
		return s.BitbucketBranch
	case "giteaBranch":
		return s.GiteaBranch
	case "customGitBranch":
		return s.CustomGitBranch
	}
	return ""
}

func (d *Driver) service(ctx context.Context) (service, error) {
	k, v := d.idField()
	var s service
	err := d.c.Get(ctx, d.kind()+".one", url.Values{k: {v}}, &s)
	return s, err
}

// Releases implements deploy.Driver: Dokploy's finished deployments, newest
// first, named by shipbot's pins. Current is the newest done one, unless
// shipbot since rolled back.
func (d *Driver) Releases(ctx context.Context) ([]deploy.ReleaseInfo, error) {
	list, err := d.deployments(ctx)
	if err != nil {
		return nil, err
	}
	byID, _ := d.pins(ctx)
	var out []deploy.ReleaseInfo
	var newestDone time.Time
	for _, dp := range list {
		if dp.Status != "done" {
			continue
		}
		if newestDone.IsZero() {
			newestDone = dp.created()
		}
		out = append(out, deploy.ReleaseInfo{ID: releaseOf(dp, byID)})
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
	if b := svc.trackedRef(); b != "" {
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
