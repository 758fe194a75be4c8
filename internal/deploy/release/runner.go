package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// HealthChecker makes one attempt at an HTTP health check from the bot
// (Health.URL, ExpectStatus, ExpectBody, Timeout). The Runner does retries.
type HealthChecker interface {
	Check(ctx context.Context, h deploy.Health) error
}

// Runner runs Recipe on Hosts. It holds no state between calls; the engine
// guarantees one job at a time per (app, env).
var _ deploy.Driver = (*Runner)(nil)

type Runner struct {
	Recipe deploy.Recipe
	Hosts  []Opener
	// Parallel is how many hosts are opened and run a phase (prepare, go
	// live) at once; 0 means all. No host goes live before every host
	// prepared.
	Parallel int
	// Health checks Recipe.Health.URL. A recipe with a URL and no checker is
	// refused rather than deployed unchecked.
	Health HealthChecker
	// Now is the clock for step durations; nil means time.Now.
	Now func() time.Time
}

func (r *Runner) now() func() time.Time {
	if r.Now != nil {
		return r.Now
	}
	return time.Now
}

// Plan lists the steps Deploy would report and the hosts it would touch.
// It opens no host and runs nothing.
// Plan says what Deploy would run; it opens no host. It never fails: the
// error is there to satisfy deploy.Driver.
func (r *Runner) Plan(_ context.Context, req deploy.DeployRequest) (deploy.Plan, error) {
	return r.plan(req), nil
}

func (r *Runner) plan(req deploy.DeployRequest) deploy.Plan {
	hosts := make([]string, len(r.Hosts))
	for i, o := range r.Hosts {
		hosts[i] = openerName(o, i)
	}
	return deploy.Plan{Steps: r.deploySteps(), Hosts: hosts, From: req.Previous, To: req.Release}
}

// deploySteps are the steps that do something for this recipe, in order.
func (r *Runner) deploySteps() []string {
	rc := r.Recipe
	steps := []string{StepPrepare}
	if rc.Fetch.GitRepo != "" || rc.Fetch.CopyFrom != "" || rc.Fetch.Artifact != "" {
		steps = append(steps, StepFetch)
	}
	if len(rc.Shared) > 0 {
		steps = append(steps, StepLinkShared)
	}
	if len(rc.Build) > 0 {
		steps = append(steps, StepBuild)
	}
	if len(rc.Migrate) > 0 {
		steps = append(steps, StepMigrate)
	}
	steps = append(steps, StepSwitch)
	if len(rc.Restart) > 0 {
		steps = append(steps, StepRestart)
	}
	if r.hasHealth() {
		steps = append(steps, StepHealth)
	}
	if rc.KeepReleases > 0 {
		steps = append(steps, StepPrune)
	}
	return steps
}

func (r *Runner) hasHealth() bool {
	return len(r.Recipe.Health.Command) > 0 || r.Recipe.Health.URL != ""
}

// checkDeploy refuses a request before anything runs and returns the ref to use.
func (r *Runner) checkDeploy(req deploy.DeployRequest) (string, error) {
	if len(r.Hosts) == 0 {
		return "", errors.New("no hosts configured")
	}
	if !deploy.ValidName(req.Release) {
		return "", fmt.Errorf("release id %q is not a valid name", req.Release)
	}
	if req.Previous != "" && !deploy.ValidName(req.Previous) {
		return "", fmt.Errorf("previous release %q is not a valid name", req.Previous)
	}
	if req.Previous == req.Release {
		return "", fmt.Errorf("release %s is already the previous release", req.Release)
	}
	ref := req.Ref
	if ref == "" {
		ref = r.Recipe.Fetch.DefaultRef
	}
	if r.Recipe.Fetch.GitRepo != "" {
		if ref == "" {
			return "", errors.New("no ref given and the recipe has no default ref")
		}
		if err := deploy.ValidateRef(ref); err != nil {
			return "", err
		}
	} else if ref != "" {
		// A copy fetch passes the ref only to commands; it must still be safe there.
		if err := deploy.ValidateRef(ref); err != nil {
			return "", err
		}
	}
	for _, s := range r.Recipe.Shared {
		if _, _, err := sharedEntry(s); err != nil {
			return "", err
		}
	}
	if r.Recipe.Health.URL != "" && r.Health == nil {
		return "", errors.New("the recipe has a health URL but no HTTP checker is configured")
	}
	return ref, nil
}

// job is one Deploy, Rollback or restart in progress.
type job struct {
	r       *Runner
	ctx     context.Context // the caller's: when it ends the job is cancelled
	p       deploy.Progress
	steps   *tracker
	targets []*target
	release string
	ref     string
	// nonce marks the job's marker lines (see script).
	nonce string
	// artifact is the expanded artifact path on the bot's machine; "" when
	// the recipe fetches by git or copy. Its size and SHA-256 go into the
	// script, which checks them on the host.
	artifact     string
	artifactSize int64
	artifactSum  string
	// healthParts is how many checks make up the health step: one per host
	// with a health command, plus the HTTP check.
	healthParts int
}

func (r *Runner) newJob(ctx context.Context, p deploy.Progress, targets []*target, release string) *job {
	j := &job{r: r, ctx: ctx, p: p, steps: newTracker(p, r.now()), targets: targets, release: release, nonce: newNonce()}
	if len(r.Recipe.Health.Command) > 0 {
		j.healthParts += len(targets)
	}
	if r.Recipe.Health.URL != "" {
		j.healthParts++
	}
	return j
}

// total is how many reports complete step name.
func (j *job) total(name string) int {
	switch name {
	case StepMigrate:
		return 1
	case StepHealth:
		return j.healthParts
	}
	return len(j.targets)
}

// Deploy builds req.Release on every host, switches them all to it once all
// are built, restarts and health-checks, switching back on failure. Each
// host sees one SSH session for the preparation and one to go live.
func (r *Runner) Deploy(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	if p == nil {
		p = discard{}
	}
	ref, err := r.checkDeploy(req)
	if err != nil {
		return deploy.Result{}, err
	}
	var artifact string
	if r.Recipe.Fetch.Artifact != "" {
		if artifact, err = artifactPath(r.Recipe.Fetch.Artifact, ref); err != nil {
			return deploy.Result{}, err
		}
	}
	targets, err := r.open(ctx, r.Hosts)
	if err != nil {
		p.Step(StepPrepare, deploy.StepFailed, err.Error())
		if ctx.Err() != nil {
			return deploy.Result{}, fmt.Errorf("deploy of %s cancelled: %w", req.Release, ctx.Err())
		}
		return deploy.Result{}, err
	}
	defer closeAll(targets)
	if err := checkScriptHosts(targets); err != nil {
		return deploy.Result{}, err
	}
	j := r.newJob(ctx, p, targets, req.Release)
	j.ref = ref
	if artifact != "" {
		j.artifact = artifact
		if j.artifactSize, j.artifactSum, err = fileSum(artifact); err != nil {
			return deploy.Result{}, fmt.Errorf("artifact: %w", err)
		}
	}
	return j.deploy(req)
}

func (j *job) deploy(req deploy.DeployRequest) (deploy.Result, error) {
	ctx := j.ctx
	if err := j.prepareAll(); err != nil {
		j.removeRelease()
		if ctx.Err() != nil {
			return deploy.Result{}, fmt.Errorf("deploy of %s cancelled before the switch, current unchanged: %w", j.release, ctx.Err())
		}
		return deploy.Result{}, fmt.Errorf("deploy of %s failed before the switch, current unchanged: %w", j.release, err)
	}

	err, pruneErr := j.goLiveAll(req)
	if err != nil {
		if j.switchFailed(err) {
			undoErr := j.undoSwitch()
			j.removeRelease()
			if undoErr != nil {
				err = fmt.Errorf("%w; putting current back also failed: %v", err, undoErr)
			}
			if ctx.Err() != nil {
				return deploy.Result{}, fmt.Errorf("deploy of %s cancelled during the switch: %w", j.release, ctx.Err())
			}
			return deploy.Result{}, fmt.Errorf("deploy of %s failed during the switch: %w", j.release, err)
		}
		what := "health check failed"
		if failedIn(err, StepRestart) {
			what = "restart failed"
		}
		return j.switchBack(req, what, err)
	}
	if err := j.httpHealth(ctx, StepHealth); err != nil {
		return j.switchBack(req, "health check failed", err)
	}

	msg := fmt.Sprintf("%s is live on %s", j.release, j.hostCount())
	if pruneErr != nil {
		msg += "; pruning old releases failed: " + pruneErr.Error()
	}
	return deploy.Result{Release: j.release, Message: msg}, nil
}

// failedIn reports whether err (possibly several hosts' errors) includes a
// failure of step.
func failedIn(err error, step string) bool {
	if m, ok := err.(multiError); ok {
		for _, e := range m {
			if failedStep(e) == step {
				return true
			}
		}
		return false
	}
	return failedStep(err) == step
}

// switchFailed reports whether a failed go-live must be undone as a failed
// switch: some host's switch failed, or no host got as far as switching.
func (j *job) switchFailed(err error) bool {
	if failedIn(err, StepSwitch) {
		return true
	}
	for _, t := range j.targets {
		if t.switched {
			return false
		}
	}
	return true
}

func (j *job) hostCount() string {
	if len(j.targets) == 1 {
		return j.targets[0].name
	}
	return fmt.Sprintf("%d hosts", len(j.targets))
}

// phase runs fn for every host, at most Parallel at once. The first failure
// stops the other hosts and is the error returned.
func (j *job) phase(fn func(ctx context.Context, t *target) error) error {
	ctx, stop := context.WithCancel(j.ctx)
	defer stop()
	var once sync.Once
	var first error
	forEach(len(j.targets), j.r.Parallel, func(i int) {
		if ctx.Err() != nil {
			return
		}
		if err := fn(ctx, j.targets[i]); err != nil {
			once.Do(func() { first = err; stop() })
		}
	})
	if first == nil && j.ctx.Err() != nil {
		first = j.ctx.Err()
	}
	return first
}

// prepareAll runs the prepare script (prepare, fetch, link shared, build)
// on every host, then migrate once; it returns nil only if all of it
// succeeded everywhere.
func (j *job) prepareAll() error {
	err := j.phase(func(ctx context.Context, t *target) error {
		return j.runScript(ctx, t, j.prepareScript(t), true)
	})
	if err != nil || len(j.r.Recipe.Migrate) == 0 {
		return err
	}
	// Migrations change a database the hosts share: run them once, on the
	// first host, and only after every host built successfully.
	t := j.targets[0]
	return j.runScript(j.ctx, t, j.migrateScript(t), true)
}

// goLiveAll runs the go-live script (switch, restart, health command,
// prune) on every host. A host that started it counts as switched until
// its switch is known to have failed. A failed prune is returned apart: it
// does not fail the deploy.
func (j *job) goLiveAll(req deploy.DeployRequest) (err, pruneErr error) {
	n := len(j.targets)
	errs := make([]error, n)
	prune := j.r.Recipe.KeepReleases > 0
	forEach(n, j.r.Parallel, func(i int) {
		t := j.targets[i]
		if j.ctx.Err() != nil {
			return
		}
		t.switchTried = true
		o := liveOpts{switchTo: j.release, restart: true, health: true, prune: prune}
		if prune {
			o.remove = j.pruneList(req, t)
		}
		errs[i] = j.runScript(j.ctx, t, j.liveScript(t, o), true)
	})
	var failed, pruneFailed []error
	for _, err := range errs {
		switch {
		case err == nil:
		case failedStep(err) == StepPrune:
			pruneFailed = append(pruneFailed, err)
		default:
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 && j.ctx.Err() != nil {
		failed = append(failed, j.ctx.Err())
	}
	return joinErrs(failed...), joinErrs(pruneFailed...)
}

// pruneList is what prune removes on t: releases beyond KeepReleases,
// newest kept, never the new one, the one live before nor the previous.
func (j *job) pruneList(req deploy.DeployRequest, t *target) []string {
	ids := append([]string{j.release}, t.releases...)
	newerFirst(ids)
	protected := map[string]bool{j.release: true, req.Previous: true, t.before: true}
	var dirs []string
	for k, id := range ids {
		if k >= j.r.Recipe.KeepReleases && !protected[id] {
			dirs = append(dirs, t.releaseDir(id))
		}
	}
	return dirs
}

// removeRelease deletes the release dir this job created on every host. It
// runs after the job's context may have ended, so it uses its own.
func (j *job) removeRelease() {
	ctx, cancel := recoveryContext(j.ctx)
	defer cancel()
	forEach(len(j.targets), 0, func(i int) {
		t := j.targets[i]
		if !t.created || t.before == j.release {
			return
		}
		if err := j.runScript(ctx, t, j.removeScript(t), false); err != nil {
			j.output(t)("removing unfinished release " + j.release + " failed: " + err.Error())
			return
		}
		t.created = false
	})
}

func (j *job) output(t *target) func(string) {
	return func(line string) { j.p.Output(t.prefix + line) }
}

// undoSwitch puts back what current pointed at on hosts whose switch was
// tried (a host that had no current loses the new one), restarting those
// that got as far as a restart.
func (j *job) undoSwitch() error {
	ctx, cancel := recoveryContext(j.ctx)
	defer cancel()
	errs := make([]error, len(j.targets))
	forEach(len(j.targets), 0, func(i int) {
		t := j.targets[i]
		if !t.switchTried {
			return
		}
		errs[i] = j.runScript(ctx, t, j.undoScript(t, t.before, t.restartBegun), false)
	})
	return joinErrs(errs...)
}

// httpHealth runs the HTTP check once for all hosts, with its retries.
func (j *job) httpHealth(ctx context.Context, name string) error {
	h := j.r.Recipe.Health
	if h.URL == "" {
		return nil
	}
	j.steps.begin(name, "")
	sctx, cancel := j.r.stepContext(ctx)
	defer cancel()
	err := retry(sctx, h, func(ctx context.Context) error { return j.r.Health.Check(ctx, h) })
	if err != nil {
		err = explain(ctx, sctx, j.r.Recipe.StepTimeout, err)
		if ctx.Err() != nil {
			j.steps.fail(name, "cancelled")
		} else {
			j.steps.fail(name, "http: "+err.Error())
		}
		return fmt.Errorf("http check: %w", err)
	}
	j.steps.end(name, j.healthParts)
	return nil
}

// retry makes up to h.Retries attempts of check (at least one, as config
// validation requires retries >= 1), each bounded by h.Timeout, h.Interval
// apart (1s when unset).
func retry(ctx context.Context, h deploy.Health, check func(ctx context.Context) error) error {
	attempts := max(h.Retries, 1)
	interval := h.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var err error
	for i := range attempts {
		if i > 0 {
			timer := time.NewTimer(interval)
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if h.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, h.Timeout)
		}
		err = check(actx)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if timedOut {
			err = fmt.Errorf("attempt timed out after %s", h.Timeout)
		}
	}
	if attempts > 1 {
		return fmt.Errorf("%w (after %d attempts)", err, attempts)
	}
	return err
}

// canBarrier reports whether every host can wait at a barrier inside one
// session: remote hosts (their stdin carries the "go"), all running at once.
func (j *job) canBarrier() bool {
	if j.r.Parallel > 0 && j.r.Parallel < len(j.targets) {
		return false
	}
	for _, t := range j.targets {
		if !t.remote {
			return false
		}
	}
	return true
}

// rollbackInOne runs the rollback as one session a host (rollbackScript):
// released says whether the hosts were let through the barrier, i.e.
// every host had the release; before that, the first failure stops all.
func (j *job) rollbackInOne() (released bool, err error) {
	n := len(j.targets)
	ctx, stop := context.WithCancel(j.ctx)
	defer stop()
	readers := make([]*io.PipeReader, n)
	writers := make([]*io.PipeWriter, n)
	for i := range n {
		readers[i], writers[i] = io.Pipe()
	}
	var mu sync.Mutex
	waiting := n
	arrive := func() {
		mu.Lock()
		defer mu.Unlock()
		waiting--
		if waiting > 0 || ctx.Err() != nil {
			return
		}
		released = true
		for i, w := range writers {
			j.targets[i].switchTried = true
			// Each host's feeder takes its own line; a host already gone
			// closed its reader, which ends the write.
			go func() { _, _ = io.WriteString(w, "go\n"); _ = w.Close() }()
		}
	}
	errs := make([]error, n)
	var first error
	forEach(n, 0, func(i int) {
		t := j.targets[i]
		s := j.rollbackScript(t)
		s.input, s.onReady = readers[i], arrive
		errs[i] = j.runScript(ctx, t, s, true)
		_ = readers[i].Close()
		mu.Lock()
		defer mu.Unlock()
		if errs[i] != nil && !released {
			if first == nil {
				first = errs[i]
			}
			stop()
		}
	})
	if !released {
		if first == nil {
			first = j.ctx.Err()
		}
		return false, first
	}
	return true, joinErrs(errs...)
}

// previousFor is where host t goes back to after a failed switch-over: what
// the engine says was live, else what the host itself had.
func previousFor(req deploy.DeployRequest, t *target) string {
	if req.Previous != "" {
		return req.Previous
	}
	return t.before
}

// switchBack handles a failure after the switch: every host that switched
// goes back to the previous release and is restarted. The failed release
// stays on disk for inspection until pruned.
func (j *job) switchBack(req deploy.DeployRequest, what string, cause error) (deploy.Result, error) {
	cancelled := j.ctx.Err() != nil
	if cancelled {
		what = "cancelled"
	}
	ctx, cancel := recoveryContext(j.ctx)
	defer cancel()
	prev := previousFor(req, j.targets[0])
	j.steps.begin(StepSwitchBack, what+": switching back to "+orNone(prev))
	n := len(j.targets)
	errs := make([]error, n)
	stranded := false
	var mu sync.Mutex
	forEach(n, 0, func(i int) {
		t := j.targets[i]
		if !t.switchTried {
			return
		}
		to := previousFor(req, t)
		if to == "" {
			mu.Lock()
			stranded = true
			mu.Unlock()
			return
		}
		errs[i] = j.runScript(ctx, t, j.undoScript(t, to, true), false)
	})
	backErr := joinErrs(errs...)
	switch {
	case backErr != nil:
		j.steps.fail(StepSwitchBack, backErr.Error())
	case stranded:
		j.steps.fail(StepSwitchBack, "no previous release to switch back to")
	default:
		j.steps.end(StepSwitchBack, 1)
	}

	switch {
	case cancelled && backErr != nil:
		return deploy.Result{}, fmt.Errorf("deploy of %s cancelled after the switch; switching back to %s failed (%v): %w", j.release, orNone(prev), backErr, j.ctx.Err())
	case cancelled:
		return deploy.Result{}, fmt.Errorf("deploy of %s cancelled after the switch, switched back to %s: %w", j.release, orNone(prev), j.ctx.Err())
	case backErr != nil:
		return deploy.Result{}, fmt.Errorf("%s (%v) and switching back to %s failed: %w", what, cause, orNone(prev), backErr)
	case stranded:
		// current stays on the new release: say so in Result as well.
		return deploy.Result{Release: j.release}, fmt.Errorf("%s: %w; there is no previous release to switch back to, so current stays at %s", what, cause, j.release)
	}
	return deploy.Result{
		Release:    prev,
		RolledBack: true,
		Message:    fmt.Sprintf("%s for %s: %v; switched back to %s", what, j.release, cause, prev),
	}, nil
}

func orNone(id string) string {
	if id == "" {
		return "(none)"
	}
	return id
}

// Rollback switches every host to req.To, restarts and health-checks. A
// failed health check is reported, not undone: there is nothing safer to go to.
func (r *Runner) Rollback(ctx context.Context, req deploy.RollbackRequest, p deploy.Progress) (deploy.Result, error) {
	if p == nil {
		p = discard{}
	}
	if !deploy.ValidName(req.To) {
		return deploy.Result{}, fmt.Errorf("release %q is not a valid name", req.To)
	}
	targets, err := r.open(ctx, r.Hosts)
	if err != nil {
		p.Step(StepCheck, deploy.StepFailed, err.Error())
		if ctx.Err() != nil {
			return deploy.Result{}, fmt.Errorf("rollback to %s cancelled: %w", req.To, ctx.Err())
		}
		return deploy.Result{}, err
	}
	defer closeAll(targets)
	if err := checkScriptHosts(targets); err != nil {
		return deploy.Result{}, err
	}
	return r.newJob(ctx, p, targets, req.To).rollback()
}

func (j *job) rollback() (deploy.Result, error) {
	ctx := j.ctx
	var err error
	if j.canBarrier() {
		var released bool
		if released, err = j.rollbackInOne(); !released {
			if ctx.Err() != nil {
				return deploy.Result{}, fmt.Errorf("rollback to %s cancelled, current unchanged: %w", j.release, ctx.Err())
			}
			return deploy.Result{}, fmt.Errorf("rollback to %s refused, current unchanged: %w", j.release, err)
		}
	} else {
		// Every host must have the release before any switches to it.
		err = j.phase(func(ctx context.Context, t *target) error {
			return j.runScript(ctx, t, j.checkScript(t, j.release), true)
		})
		if err != nil {
			if ctx.Err() != nil {
				return deploy.Result{}, fmt.Errorf("rollback to %s cancelled, current unchanged: %w", j.release, ctx.Err())
			}
			return deploy.Result{}, fmt.Errorf("rollback to %s refused, current unchanged: %w", j.release, err)
		}
		n := len(j.targets)
		errs := make([]error, n)
		forEach(n, j.r.Parallel, func(i int) {
			t := j.targets[i]
			if ctx.Err() != nil {
				return
			}
			t.switchTried = true
			errs[i] = j.runScript(ctx, t, j.liveScript(t, liveOpts{switchTo: j.release, restart: true, health: true}), true)
		})
		err = joinErrs(errs...)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil && j.switchFailed(err) {
		if undoErr := j.undoSwitch(); undoErr != nil {
			err = fmt.Errorf("%w; putting current back also failed: %v", err, undoErr)
		}
		if ctx.Err() != nil {
			return deploy.Result{}, fmt.Errorf("rollback to %s cancelled during the switch: %w", j.release, ctx.Err())
		}
		return deploy.Result{}, fmt.Errorf("rollback to %s failed during the switch: %w", j.release, err)
	}
	// From here on current has moved: an error comes with Result.Release set
	// so the caller can record where current points.
	live := deploy.Result{Release: j.release}
	if err != nil && failedIn(err, StepRestart) {
		return live, fmt.Errorf("current now points at %s on every host but the restart failed: %w", j.release, err)
	}
	if err == nil {
		err = j.httpHealth(ctx, StepHealth)
	}
	if err != nil {
		return live, fmt.Errorf("current now points at %s on every host but the health check failed: %w", j.release, err)
	}
	return deploy.Result{Release: j.release, Message: fmt.Sprintf("rolled back to %s on %s", j.release, j.hostCount())}, nil
}
