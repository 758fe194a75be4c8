package release

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
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
	// Parallel is how many hosts are opened, prepared and restarted at once;
	// 0 means all. The switch always happens on all hosts at once.
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

// job is one Deploy or Rollback in progress.
type job struct {
	r       *Runner
	ctx     context.Context // the caller's: when it ends the job is cancelled
	p       deploy.Progress
	steps   *tracker
	targets []*target
	release string
	ref     string
	// artifact is the expanded artifact path on the bot's machine; "" when
	// the recipe fetches by git or copy.
	artifact string
}

func (j *job) output(t *target) func(string) {
	return func(line string) { j.p.Output(t.prefix + line) }
}

// step runs fn as step name on t under a StepTimeout-bounded context and
// reports it; total is how many hosts run the step.
func (j *job) step(ctx context.Context, t *target, name string, total int, fn func(ctx context.Context) error) error {
	j.steps.begin(name, "")
	sctx, cancel := j.r.stepContext(ctx)
	defer cancel()
	err := fn(sctx)
	if err == nil {
		j.steps.end(name, total)
		return nil
	}
	err = explain(ctx, sctx, j.r.Recipe.StepTimeout, err)
	detail := errDetail(err)
	switch {
	case j.ctx.Err() != nil:
		detail = "cancelled"
	case ctx.Err() != nil:
		detail = "stopped: another host failed"
	}
	j.steps.fail(name, t.prefix+detail)
	return fmt.Errorf("%s on %s: %w", name, t.name, err)
}

// Deploy builds req.Release on every host, switches them all to it once all
// are built, restarts and health-checks, switching back on failure.
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
	if artifact != "" {
		if err := checkUploaders(targets); err != nil {
			return deploy.Result{}, err
		}
	}
	j := &job{r: r, ctx: ctx, p: p, steps: newTracker(p, r.now()), targets: targets, release: req.Release, ref: ref, artifact: artifact}
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

	if err := j.switchAll(ctx, StepSwitch, j.release); err != nil {
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

	if err := j.restartAll(ctx); err != nil {
		return j.switchBack(req, "restart failed", err)
	}
	if err := j.healthAll(ctx, StepHealth); err != nil {
		return j.switchBack(req, "health check failed", err)
	}

	msg := fmt.Sprintf("%s is live on %s", j.release, j.hostCount())
	if err := j.prune(req); err != nil {
		msg += "; pruning old releases failed: " + err.Error()
	}
	return deploy.Result{Release: j.release, Message: msg}, nil
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

// prepareAll runs prepare..build on every host, then migrate once; it
// returns nil only if all of it succeeded everywhere.
func (j *job) prepareAll() error {
	n := len(j.targets)
	rc := j.r.Recipe
	err := j.phase(func(ctx context.Context, t *target) error {
		dir := t.releaseDir(j.release)
		vars := j.r.vars(t, j.release, j.ref)
		if err := j.step(ctx, t, StepPrepare, n, func(ctx context.Context) error { return j.prepare(ctx, t) }); err != nil {
			return err
		}
		if rc.Fetch.GitRepo != "" || rc.Fetch.CopyFrom != "" || rc.Fetch.Artifact != "" {
			if err := j.step(ctx, t, StepFetch, n, func(ctx context.Context) error { return j.fetch(ctx, t) }); err != nil {
				return err
			}
		}
		if len(rc.Shared) > 0 {
			if err := j.step(ctx, t, StepLinkShared, n, func(ctx context.Context) error { return j.linkShared(ctx, t) }); err != nil {
				return err
			}
		}
		if len(rc.Build) > 0 {
			cmds := expandAll(rc.Build, vars)
			if err := j.step(ctx, t, StepBuild, n, func(ctx context.Context) error {
				return runAll(ctx, t, dir, cmds, j.output(t))
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(rc.Migrate) == 0 {
		return err
	}
	// Migrations change a database the hosts share: run them once, on the
	// first host, and only after every host built successfully.
	t := j.targets[0]
	cmds := expandAll(rc.Migrate, j.r.vars(t, j.release, j.ref))
	return j.step(j.ctx, t, StepMigrate, 1, func(ctx context.Context) error {
		return runAll(ctx, t, t.releaseDir(j.release), cmds, j.output(t))
	})
}

func (j *job) prepare(ctx context.Context, t *target) error {
	before, err := readCurrent(ctx, t)
	if err != nil {
		return err
	}
	t.before = before
	if err := t.host.Run(ctx, "", []string{"mkdir", "-p", "--", t.releasesDir(), t.sharedDir()}, j.output(t)); err != nil {
		return err
	}
	// Plain mkdir fails if the release dir exists: a build never lands in a
	// directory some other job left, and cleanup never removes it. It runs
	// to its end even when the job is being cancelled (another host
	// failed): a mkdir stopped halfway would leave a directory this job
	// made but does not know it made, which cleanup would then leave behind.
	mctx, cancel := recoveryContext(ctx)
	err = t.host.Run(mctx, "", []string{"mkdir", "--", t.releaseDir(j.release)}, j.output(t))
	cancel()
	if err != nil {
		return fmt.Errorf("cannot create release %s (does it exist already?): %w", j.release, err)
	}
	t.created = true
	return ctx.Err()
}

func (j *job) fetch(ctx context.Context, t *target) error {
	dir := t.releaseDir(j.release)
	f := j.r.Recipe.Fetch
	if j.artifact != "" {
		return j.fetchArtifact(ctx, t, dir)
	}
	if f.GitRepo == "" {
		return t.host.Run(ctx, "", []string{"cp", "-a", "--", strings.TrimRight(f.CopyFrom, "/") + "/.", dir}, j.output(t))
	}
	// The repo URL may carry a token; git's own messages go to output, ours never name it.
	if err := t.host.Run(ctx, "", []string{"git", "clone", "--quiet", "--no-checkout", "--", f.GitRepo, dir}, j.output(t)); err != nil {
		return fmt.Errorf("git clone: %w", err)
	}
	sha, err := resolveRef(ctx, t, dir, j.ref)
	if err != nil {
		return err
	}
	j.output(t)("checking out " + j.ref + " at " + sha)
	return t.host.Run(ctx, "", gitCheckout(dir, sha), j.output(t))
}

var shaPattern = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// gitResolve is the argv that turns ref into a commit id. git checkout has no
// way to mark its argument as a revision that still works with --detach, so
// the ref goes through rev-parse after --end-of-options, where a leading "-"
// can only be part of a revision name; checkout then gets a hex id.
func gitResolve(dir, rev string) []string {
	return []string{"git", "-C", dir, "rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"}
}

func gitCheckout(dir, sha string) []string {
	return []string{"git", "-C", dir, "checkout", "--quiet", "--detach", sha}
}

// resolveRef finds ref as a branch, tag or commit of the clone, then as a
// remote branch (a fresh clone has only the default branch locally).
func resolveRef(ctx context.Context, t *target, dir, ref string) (string, error) {
	for _, rev := range []string{ref, "refs/remotes/origin/" + ref} {
		lines, err := capture(ctx, t, gitResolve(dir, rev)...)
		var ee *ExitError
		if errors.As(err, &ee) {
			continue
		}
		if err != nil {
			return "", err
		}
		if len(lines) > 0 && shaPattern.MatchString(strings.TrimSpace(lines[len(lines)-1])) {
			return strings.TrimSpace(lines[len(lines)-1]), nil
		}
	}
	return "", fmt.Errorf("ref %q not found in the repository", ref)
}

func (j *job) linkShared(ctx context.Context, t *target) error {
	dir := t.releaseDir(j.release)
	for _, s := range j.r.Recipe.Shared {
		rel, isDir, err := sharedEntry(s)
		if err != nil {
			return err
		}
		src, dst := path.Join(t.sharedDir(), rel), path.Join(dir, rel)
		srcParent := path.Dir(src)
		if isDir {
			srcParent = src
		}
		cmds := [][]string{
			{"mkdir", "-p", "--", srcParent, path.Dir(dst)},
			// What the fetch put there is replaced by the shared copy.
			{"rm", "-rf", "--", dst},
			{"ln", "-sfn", "--", src, dst},
		}
		if err := runAll(ctx, t, "", cmds, j.output(t)); err != nil {
			return err
		}
	}
	return nil
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
		if err := t.host.Run(ctx, "", []string{"rm", "-rf", "--", t.releaseDir(j.release)}, j.output(t)); err != nil {
			j.output(t)("removing unfinished release " + j.release + " failed: " + err.Error())
			return
		}
		t.created = false
	})
}

// switchTo points current at release id on t atomically: the new link is
// made beside it and renamed over it, so a reader never finds current
// missing or half-written.
func switchTo(ctx context.Context, t *target, id string, out func(string)) error {
	tmp := path.Join(t.base, "current.tmp")
	cmds := [][]string{
		// Never point current at nothing.
		{"test", "-d", t.releaseDir(id)},
		{"ln", "-sfn", "--", path.Join("releases", id), tmp},
		{"mv", "-T", "--", tmp, t.currentLink()},
	}
	err := runAll(ctx, t, "", cmds, out)
	var ee *ExitError
	if errors.As(err, &ee) && len(ee.Argv) > 0 && ee.Argv[0] == "test" {
		return fmt.Errorf("release %s does not exist on %s", id, t.name)
	}
	return err
}

// switchAll switches every host at once and returns the first failure.
func (j *job) switchAll(ctx context.Context, name, id string) error {
	n := len(j.targets)
	errs := make([]error, n)
	forEach(n, 0, func(i int) {
		t := j.targets[i]
		errs[i] = j.step(ctx, t, name, n, func(ctx context.Context) error {
			t.switchTried = true
			return switchTo(ctx, t, id, j.output(t))
		})
	})
	return joinErrs(errs...)
}

// undoSwitch puts back what current pointed at on hosts whose switch was
// tried; a host that had no current loses the new one.
func (j *job) undoSwitch() error {
	ctx, cancel := recoveryContext(j.ctx)
	defer cancel()
	errs := make([]error, len(j.targets))
	forEach(len(j.targets), 0, func(i int) {
		t := j.targets[i]
		if !t.switchTried {
			return
		}
		if t.before == "" {
			errs[i] = t.host.Run(ctx, "", []string{"rm", "-f", "--", t.currentLink()}, j.output(t))
		} else {
			errs[i] = switchTo(ctx, t, t.before, j.output(t))
		}
		if errs[i] != nil {
			errs[i] = fmt.Errorf("%s: %w", t.name, errs[i])
		}
	})
	return joinErrs(errs...)
}

func (j *job) restartAll(ctx context.Context) error {
	rc := j.r.Recipe
	if len(rc.Restart) == 0 {
		return nil
	}
	n := len(j.targets)
	errs := make([]error, n)
	forEach(n, j.r.Parallel, func(i int) {
		t := j.targets[i]
		cmds := expandAll(rc.Restart, j.r.vars(t, j.release, j.ref))
		errs[i] = j.step(ctx, t, StepRestart, n, func(ctx context.Context) error {
			return runAll(ctx, t, t.currentLink(), cmds, j.output(t))
		})
	})
	return joinErrs(errs...)
}

// healthAll runs the health command on every host and then the HTTP check
// once, each with its retries; all must pass.
func (j *job) healthAll(ctx context.Context, name string) error {
	if !j.r.hasHealth() {
		return nil
	}
	h := j.r.Recipe.Health
	n := len(j.targets)
	parts := 0 // how many checks make up the step, for the tracker
	if len(h.Command) > 0 {
		parts += n
	}
	if h.URL != "" {
		parts++
	}
	if len(h.Command) > 0 {
		errs := make([]error, n)
		forEach(n, 0, func(i int) {
			t := j.targets[i]
			argv := expand(h.Command, j.r.vars(t, j.release, j.ref))
			errs[i] = j.step(ctx, t, name, parts, func(ctx context.Context) error {
				return retry(ctx, h, func(ctx context.Context) error {
					return t.host.Run(ctx, t.currentLink(), argv, j.output(t))
				})
			})
		})
		if err := joinErrs(errs...); err != nil {
			return err
		}
	}
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
	j.steps.end(name, parts)
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

// previousFor is where host t goes back to after a failed switch-over: what
// the engine says was live, else what the host itself had.
func previousFor(req deploy.DeployRequest, t *target) string {
	if req.Previous != "" {
		return req.Previous
	}
	return t.before
}

// switchBack handles a failure after the switch: every host goes back to
// the previous release and is restarted. The failed release stays on disk
// for inspection until pruned.
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
		to := previousFor(req, t)
		if to == "" {
			mu.Lock()
			stranded = true
			mu.Unlock()
			return
		}
		err := switchTo(ctx, t, to, j.output(t))
		if err == nil && len(j.r.Recipe.Restart) > 0 {
			cmds := expandAll(j.r.Recipe.Restart, j.r.vars(t, to, j.ref))
			err = runAll(ctx, t, t.currentLink(), cmds, j.output(t))
		}
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", t.name, err)
		}
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

// prune removes releases beyond KeepReleases on every host, newest kept,
// never the live one nor the one before it.
func (j *job) prune(req deploy.DeployRequest) error {
	keep := j.r.Recipe.KeepReleases
	if keep <= 0 {
		return nil
	}
	n := len(j.targets)
	errs := make([]error, n)
	forEach(n, j.r.Parallel, func(i int) {
		t := j.targets[i]
		errs[i] = j.step(j.ctx, t, StepPrune, n, func(ctx context.Context) error {
			ids, err := listReleases(ctx, t)
			if err != nil {
				return err
			}
			protected := map[string]bool{j.release: true, req.Previous: true, t.before: true}
			argv := []string{"rm", "-rf", "--"}
			for k, id := range ids {
				if k >= keep && !protected[id] {
					argv = append(argv, t.releaseDir(id))
				}
			}
			if len(argv) == 3 {
				return nil
			}
			return t.host.Run(ctx, "", argv, j.output(t))
		})
	})
	return joinErrs(errs...)
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
	j := &job{r: r, ctx: ctx, p: p, steps: newTracker(p, r.now()), targets: targets, release: req.To}
	return j.rollback()
}

func (j *job) rollback() (deploy.Result, error) {
	ctx := j.ctx
	n := len(j.targets)
	err := j.phase(func(ctx context.Context, t *target) error {
		return j.step(ctx, t, StepCheck, n, func(ctx context.Context) error {
			before, err := readCurrent(ctx, t)
			if err != nil {
				return err
			}
			t.before = before
			err = t.host.Run(ctx, "", []string{"test", "-d", t.releaseDir(j.release)}, j.output(t))
			var ee *ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("release %s does not exist on %s", j.release, t.name)
			}
			return err
		})
	})
	if err != nil {
		if ctx.Err() != nil {
			return deploy.Result{}, fmt.Errorf("rollback to %s cancelled, current unchanged: %w", j.release, ctx.Err())
		}
		return deploy.Result{}, fmt.Errorf("rollback to %s refused, current unchanged: %w", j.release, err)
	}
	if err := j.switchAll(ctx, StepSwitch, j.release); err != nil {
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
	if err := j.restartAll(ctx); err != nil {
		return live, fmt.Errorf("current now points at %s on every host but the restart failed: %w", j.release, err)
	}
	if err := j.healthAll(ctx, StepHealth); err != nil {
		return live, fmt.Errorf("current now points at %s on every host but the health check failed: %w", j.release, err)
	}
	return deploy.Result{Release: j.release, Message: fmt.Sprintf("rolled back to %s on %s", j.release, j.hostCount())}, nil
}
