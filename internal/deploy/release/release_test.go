package release_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/local"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

func TestDeploySwitchesAllHostsAndPrunes(t *testing.T) {
	f := newFixture(t, 3)
	f.runner.Recipe.KeepReleases = 1
	f.mustDeploy("r1", "")
	f.mustDeploy("r2", "r1")
	res, rec, err := f.deploy("r3", "r2", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Release != "r3" || res.RolledBack {
		t.Fatalf("result = %+v", res)
	}
	f.wantCurrent("r3")
	for _, b := range f.bases {
		// keep 1, but the previous release is never pruned
		if got := releasesOn(t, b); !slices.Equal(got, []string{"r2", "r3"}) {
			t.Errorf("%s releases = %v, want [r2 r3]", b, got)
		}
		if got := readFile(t, filepath.Join(b, "current", "VERSION")); got != "r3\n" {
			t.Errorf("VERSION = %q", got)
		}
		// shared entries are links into shared/, replacing what the fetch brought
		link, err := os.Readlink(filepath.Join(b, "releases", "r3", "log"))
		if err != nil || link != filepath.Join(b, "shared", "log") {
			t.Errorf("log link = %q, %v", link, err)
		}
		if fi, err := os.Stat(filepath.Join(b, "shared", "log")); err != nil || !fi.IsDir() {
			t.Errorf("shared/log is not a directory: %v", err)
		}
		if link, _ := os.Readlink(filepath.Join(b, "releases", "r3", "config.env")); link != filepath.Join(b, "shared", "config.env") {
			t.Errorf("config.env link = %q", link)
		}
	}
	// every planned step was reported done
	for _, s := range mustPlan(t, f.runner, deploy.DeployRequest{Release: "r3"}).Steps {
		if ev, ok := rec.last(s); !ok || ev.state != deploy.StepDone {
			t.Errorf("step %q last event = %+v, %v", s, ev, ok)
		}
	}
	// output lines of several hosts say which host they come from
	for _, h := range []string{"[h1] built r3", "[h2] built r3", "[h3] built r3"} {
		if !strings.Contains(rec.output(), h) {
			t.Errorf("output lacks %q:\n%s", h, rec.output())
		}
	}
}

func TestPlanListsStepsAndHostsWithoutRunning(t *testing.T) {
	f := newFixture(t, 2)
	p := mustPlan(t, f.runner, deploy.DeployRequest{Release: "r2", Previous: "r1"})
	want := []string{"prepare", "fetch", "link shared", "build", "switch", "restart", "health", "prune"}
	if !slices.Equal(p.Steps, want) || !slices.Equal(p.Hosts, []string{"h1", "h2"}) || p.From != "r1" || p.To != "r2" {
		t.Fatalf("plan = %+v", p)
	}
	for _, b := range f.bases {
		if exists(filepath.Join(b, "releases")) {
			t.Fatal("Plan created releases/")
		}
	}
}

func TestBuildFailureOnOneHostSwitchesNoneAndRemovesRelease(t *testing.T) {
	f := newFixture(t, 3)
	f.mustDeploy("r1", "")
	write(t, filepath.Join(f.bases[1], "fail-build"), "")

	res, rec, err := f.deploy("r2", "r1", "")
	if err == nil {
		t.Fatalf("deploy succeeded: %+v", res)
	}
	if !strings.Contains(err.Error(), "h2") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error does not say which host failed how: %v", err)
	}
	f.wantCurrent("r1")
	for _, b := range f.bases {
		if exists(filepath.Join(b, "releases", "r2")) {
			t.Errorf("%s: unfinished release r2 left behind", b)
		}
		if !exists(filepath.Join(b, "releases", "r1")) {
			t.Errorf("%s: live release r1 removed", b)
		}
	}
	// The other hosts are cancelled once h2 fails, so h2's report need not
	// be the last one for the step; it must be among them.
	if !rec.has("build", deploy.StepFailed, "[h2]", "build refused") {
		t.Errorf("no failed build step naming h2 and its output: %+v", rec.steps)
	}
	if _, ok := rec.last("switch"); ok {
		t.Error("switch was reported although a build failed")
	}
}

func TestHealthFailureSwitchesAllHostsBack(t *testing.T) {
	f := newFixture(t, 2)
	f.mustDeploy("r1", "")
	res, rec, err := f.deploy("r2", "r1", "bad-health")
	if err != nil {
		t.Fatal(err)
	}
	if !res.RolledBack || res.Release != "r1" || !strings.Contains(res.Message, "health") {
		t.Fatalf("result = %+v", res)
	}
	f.wantCurrent("r1")
	for _, b := range f.bases {
		// restarted on r1, then r2, then r1 again after switching back
		got := strings.Fields(readFile(t, filepath.Join(b, "restarts")))
		if !slices.Equal(got, []string{"releases/r1", "releases/r2", "releases/r1"}) {
			t.Errorf("%s restarts = %v", b, got)
		}
	}
	if ev, _ := rec.last("health"); ev.state != deploy.StepFailed {
		t.Errorf("health step = %+v", ev)
	}
	if ev, _ := rec.last(release.StepSwitchBack); ev.state != deploy.StepDone {
		t.Errorf("switch back step = %+v", ev)
	}
}

func TestHealthFailureOnFirstDeployKeepsCurrentAndFails(t *testing.T) {
	f := newFixture(t, 1)
	res, _, err := f.deploy("r1", "", "bad-health")
	if err == nil || !strings.Contains(err.Error(), "no previous release") || res.Release != "r1" {
		t.Fatalf("got %+v, %v", res, err)
	}
	f.wantCurrent("r1")
}

// processGone reports whether pid has exited (a zombie counts: it runs nothing).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestCancelDuringLongStepKillsAndCleansUp(t *testing.T) {
	f := newFixture(t, 2)
	f.mustDeploy("r1", "")
	// The shell starts sleep as a child: only killing the process group stops it.
	f.runner.Recipe.Build = []deploy.Command{{"sh", "-c", "sleep 30 & echo $! > {{path}}/sleep.pid; wait"}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		_, err := f.runner.Deploy(ctx, deploy.DeployRequest{Release: "r2", Previous: "r1"}, &recorder{})
		done <- err
	}()
	pids := make([]int, len(f.bases))
	for i, b := range f.bases {
		waitFor(t, "the build to start", 10*time.Second, func() bool {
			s, err := os.ReadFile(filepath.Join(b, "sleep.pid"))
			if err != nil || !strings.HasSuffix(string(s), "\n") {
				return false
			}
			pids[i], err = strconv.Atoi(strings.TrimSpace(string(s)))
			return err == nil
		})
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Deploy did not return after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(started); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
	for _, pid := range pids {
		waitFor(t, "sleep to die", 5*time.Second, func() bool { return processGone(pid) })
	}
	f.wantCurrent("r1")
	for _, b := range f.bases {
		if exists(filepath.Join(b, "releases", "r2")) {
			t.Errorf("%s: cancelled release left behind", b)
		}
	}
}

func TestCurrentIsAlwaysAValidLinkDuringDeploys(t *testing.T) {
	f := newFixture(t, 2)
	f.runner.Recipe.KeepReleases = 1
	f.mustDeploy("r1", "")

	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	failures := make(chan string, 100)
	for _, b := range f.bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur := filepath.Join(b, "current")
			for !stop.Load() {
				if _, err := os.Readlink(cur); err != nil {
					failures <- err.Error()
					return
				}
				// the link resolves to an existing release with its files
				if _, err := os.Stat(filepath.Join(cur, "VERSION")); err != nil {
					failures <- err.Error()
					return
				}
				reads.Add(1)
			}
		}()
	}

	f.mustDeploy("r2", "r1")
	if res, _, err := f.deploy("r3", "r2", "bad-health"); err != nil || !res.RolledBack {
		t.Fatalf("bad-health deploy: %+v, %v", res, err)
	}
	write(t, filepath.Join(f.bases[0], "fail-build"), "")
	if _, _, err := f.deploy("r4", "r2", ""); err == nil {
		t.Fatal("failing build deployed")
	}
	os.Remove(filepath.Join(f.bases[0], "fail-build"))
	f.mustDeploy("r5", "r2")
	if _, err := f.runner.Rollback(context.Background(), deploy.RollbackRequest{To: "r2", From: "r5"}, nil); err != nil {
		t.Fatal(err)
	}
	f.mustDeploy("r6", "r2")

	stop.Store(true)
	wg.Wait()
	close(failures)
	for msg := range failures {
		t.Errorf("reader saw a broken current: %s", msg)
	}
	if reads.Load() == 0 {
		t.Fatal("the readers never ran")
	}
	f.wantCurrent("r6")
}

func TestLogsAreCapped(t *testing.T) {
	f := newFixture(t, 1)
	var b strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	write(t, filepath.Join(f.bases[0], "shared", "app.log"), b.String())
	f.runner.Recipe.Logs = deploy.LogSource{File: "{{shared_path}}/app.log", MaxLines: 10, MaxBytes: 1000}
	ctx := context.Background()

	logs, err := f.runner.Logs(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Lines) != 10 || logs.Lines[9] != "line 1000" || logs.Lines[0] != "line 991" || !logs.Truncated {
		t.Errorf("over max_lines: %+v", logs)
	}

	logs, err = f.runner.Logs(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Lines) != 5 || logs.Lines[4] != "line 1000" || logs.Truncated {
		t.Errorf("within limits: %+v", logs)
	}

	f.runner.Recipe.Logs.MaxBytes = 30 // "line 99x\n" is 9 bytes: three fit
	logs, err = f.runner.Logs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logs.Lines, []string{"line 998", "line 999", "line 1000"}) || !logs.Truncated {
		t.Errorf("over max_bytes: %+v", logs)
	}

	// a command may print more than asked for; the newest lines are kept
	f.runner.Recipe.Logs = deploy.LogSource{Command: deploy.Command{"seq", "1", "100"}, MaxLines: 50, MaxBytes: 1000}
	logs, err = f.runner.Logs(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logs.Lines, []string{"98", "99", "100"}) || !logs.Truncated {
		t.Errorf("chatty command: %+v", logs)
	}

	// {{lines}} reaches the command
	f.runner.Recipe.Logs.Command = deploy.Command{"seq", "1", "{{lines}}"}
	logs, err = f.runner.Logs(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logs.Lines, []string{"1", "2", "3", "4"}) || logs.Truncated {
		t.Errorf("{{lines}}: %+v", logs)
	}
}

func TestRollbackToNamedRelease(t *testing.T) {
	f := newFixture(t, 2)
	f.mustDeploy("r1", "")
	f.mustDeploy("r2", "r1")
	f.mustDeploy("r3", "r2")

	rec := &recorder{}
	res, err := f.runner.Rollback(context.Background(), deploy.RollbackRequest{To: "r1", From: "r3"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Release != "r1" || res.RolledBack {
		t.Errorf("result = %+v", res)
	}
	f.wantCurrent("r1")
	for _, b := range f.bases {
		got := strings.Fields(readFile(t, filepath.Join(b, "restarts")))
		if got[len(got)-1] != "releases/r1" {
			t.Errorf("%s was not restarted on r1: %v", b, got)
		}
	}
	if ev, _ := rec.last("health"); ev.state != deploy.StepDone {
		t.Errorf("health = %+v", ev)
	}

	// a release missing on one host: nobody switches
	if err := os.RemoveAll(filepath.Join(f.bases[1], "releases", "r2")); err != nil {
		t.Fatal(err)
	}
	_, err = f.runner.Rollback(context.Background(), deploy.RollbackRequest{To: "r2", From: "r1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "does not exist on h2") {
		t.Fatalf("err = %v", err)
	}
	f.wantCurrent("r1")

	if _, err := f.runner.Rollback(context.Background(), deploy.RollbackRequest{To: "../r1"}, nil); err == nil {
		t.Fatal("rollback to a path accepted")
	}
}

func TestRollbackReportsFailedHealth(t *testing.T) {
	f := newFixture(t, 1)
	f.mustDeploy("r1", "")
	if res, _, err := f.deploy("r2", "r1", "bad-health"); err != nil || !res.RolledBack {
		t.Fatalf("%+v, %v", res, err)
	}
	res, err := f.runner.Rollback(context.Background(), deploy.RollbackRequest{To: "r2", From: "r1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "health") || res.Release != "r2" {
		t.Fatalf("%+v, %v", res, err)
	}
	// no automatic switch back on a rollback: the person asked for r2
	f.wantCurrent("r2")
}

func TestReleasesAndStatus(t *testing.T) {
	f := newFixture(t, 2)
	for i, id := range []string{"r8", "r9", "r10"} {
		prev := ""
		if i > 0 {
			prev = []string{"r8", "r9", "r10"}[i-1]
		}
		f.mustDeploy(id, prev)
	}
	rels, err := f.runner.Releases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []deploy.ReleaseInfo{{ID: "r10", Current: true}, {ID: "r9"}, {ID: "r8"}}
	if !slices.Equal(rels, want) {
		t.Errorf("releases = %+v, want %+v", rels, want)
	}

	st, err := f.runner.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != "r10" || !st.Healthy || len(st.Detail) != 2 || !strings.HasPrefix(st.Detail[1], "h2: current r10, healthy") {
		t.Errorf("status = %+v", st)
	}

	os.Remove(filepath.Join(f.bases[1], "releases", "r10", "healthy"))
	st, err = f.runner.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Healthy || !strings.Contains(st.Detail[1], "unhealthy") || !strings.Contains(st.Detail[0], "healthy") {
		t.Errorf("status with a sick host = %+v", st)
	}
}

func TestReleasesOnEmptyTarget(t *testing.T) {
	f := newFixture(t, 1)
	rels, err := f.runner.Releases(context.Background())
	if err != nil || len(rels) != 0 {
		t.Fatalf("%v, %v", rels, err)
	}
	st, err := f.runner.Status(context.Background())
	if err != nil || st.Healthy || st.Current != "" {
		t.Fatalf("%+v, %v", st, err)
	}
}

func TestSwitchFailureOnOneHostPutsTheOthersBack(t *testing.T) {
	f := newFixture(t, 2)
	f.mustDeploy("r1", "")
	// On h2 a directory sits where the new link is made, so the rename
	// over current fails there: h1 may already have switched and must go back.
	write(t, filepath.Join(f.bases[1], "current.tmp", "in-the-way"), "")
	_, rec, err := f.deploy("r2", "r1", "")
	if err == nil || !strings.Contains(err.Error(), "switch") {
		t.Fatalf("err = %v", err)
	}
	for _, b := range f.bases {
		if current(t, b) != "releases/r1" {
			t.Fatalf("%s current = %s, want releases/r1", b, current(t, b))
		}
		if exists(filepath.Join(b, "releases", "r2")) {
			t.Errorf("%s: release r2 left behind", b)
		}
	}
	if ev, _ := rec.last("switch"); ev.state != deploy.StepFailed || !strings.Contains(ev.detail, "cannot overwrite") || !strings.Contains(ev.detail, "mv: exit status 1") {
		t.Errorf("switch = %+v", ev)
	}
	// Switch and restart are one script per host, so h1 may have restarted
	// on r2 before h2 failed; then it is restarted on r1 again.
	if got := strings.Fields(readFile(t, filepath.Join(f.bases[0], "restarts"))); got[len(got)-1] != "releases/r1" {
		t.Errorf("h1 restarts = %v, want the last on r1", got)
	}
}

func TestStepTimeoutFailsTheDeploy(t *testing.T) {
	f := newFixture(t, 1)
	f.runner.Recipe.StepTimeout = 200 * time.Millisecond
	f.runner.Recipe.Build = []deploy.Command{{"sleep", "30"}}
	started := time.Now()
	_, rec, err := f.deploy("r1", "", "")
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") || errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(started) > 10*time.Second {
		t.Error("the step was not cut off")
	}
	if ev, _ := rec.last("build"); ev.state != deploy.StepFailed || !strings.Contains(ev.detail, "timed out") {
		t.Errorf("build = %+v", ev)
	}
	if exists(filepath.Join(f.bases[0], "releases", "r1")) {
		t.Error("timed-out release left behind")
	}
}

func TestRestartFailureSwitchesBack(t *testing.T) {
	f := newFixture(t, 1)
	f.mustDeploy("r1", "")
	f.runner.Recipe.Restart = []deploy.Command{{"sh", "-c", "readlink {{current_path}} >> {{path}}/restarts; test {{release}} != r2"}}
	res, _, err := f.deploy("r2", "r1", "")
	if err != nil || !res.RolledBack || res.Release != "r1" || !strings.Contains(res.Message, "restart") {
		t.Fatalf("%+v, %v", res, err)
	}
	f.wantCurrent("r1")
}

// checker is a release.HealthChecker that fails its first failures calls.
type checker struct {
	mu       sync.Mutex
	calls    int
	failures int
}

func (c *checker) Check(ctx context.Context, h deploy.Health) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls <= c.failures {
		return errors.New("503")
	}
	return nil
}

func TestHTTPHealthIsRetried(t *testing.T) {
	f := newFixture(t, 1)
	f.runner.Recipe.Health = deploy.Health{URL: "http://app.invalid/health", Retries: 3, Interval: time.Millisecond}

	// without a checker the deploy is refused before anything runs
	if _, _, err := f.deploy("r1", "", ""); err == nil || !strings.Contains(err.Error(), "checker") {
		t.Fatalf("err = %v", err)
	}
	if exists(filepath.Join(f.bases[0], "releases")) {
		t.Fatal("a refused deploy touched the target")
	}

	c := &checker{failures: 2}
	f.runner.Health = c
	f.mustDeploy("r1", "")
	if c.calls != 3 {
		t.Errorf("checker called %d times, want 3", c.calls)
	}

	c2 := &checker{failures: 5}
	f.runner.Health = c2
	res, _, err := f.deploy("r2", "r1", "")
	if err != nil || !res.RolledBack || c2.calls != 3 {
		t.Fatalf("%+v, %v, calls %d", res, err, c2.calls)
	}
}

func TestRefusesBadRequests(t *testing.T) {
	f := newFixture(t, 1)
	for _, req := range []deploy.DeployRequest{
		{Release: "../x"},
		{Release: ""},
		{Release: "r1", Previous: "r1"},
		{Release: "r1", Ref: "-x"},
		{Release: "r1", Ref: "a b"},
	} {
		if _, err := f.runner.Deploy(context.Background(), req, nil); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
	f.runner.Recipe.Shared = []string{"../etc/passwd"}
	if _, err := f.runner.Deploy(context.Background(), deploy.DeployRequest{Release: "r1"}, nil); err == nil {
		t.Error("shared entry outside the release accepted")
	}
	if exists(filepath.Join(f.bases[0], "releases")) {
		t.Fatal("a refused deploy touched the target")
	}
}

func TestReleaseThatExistsIsNeverOverwrittenOrRemoved(t *testing.T) {
	f := newFixture(t, 1)
	f.mustDeploy("r1", "")
	// the engine asks for r1 again (say after a crash): mkdir fails, r1 stays live
	_, _, err := f.deploy("r1", "", "")
	if err == nil {
		t.Fatal("deploy over an existing release succeeded")
	}
	f.wantCurrent("r1")
	if readFile(t, filepath.Join(f.bases[0], "releases", "r1", "VERSION")) != "r1\n" {
		t.Fatal("existing release damaged")
	}
}

// gitRun runs git for test setup.
func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	h := local.NewHost()
	var out []string
	argv := append([]string{"git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main", "-C", dir}, args...)
	if err := h.Run(context.Background(), "", argv, func(l string) { out = append(out, l) }); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, strings.Join(out, "\n"))
	}
}

func TestGitFetchChecksOutRemoteBranch(t *testing.T) {
	repo := t.TempDir()
	gitRun(t, repo, "init", "-q")
	write(t, filepath.Join(repo, "build.sh"), buildScript)
	write(t, filepath.Join(repo, "health.sh"), healthScript)
	write(t, filepath.Join(repo, "which"), "main\n")
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-q", "-m", "main")
	gitRun(t, repo, "checkout", "-q", "-b", "feature")
	write(t, filepath.Join(repo, "which"), "feature\n")
	gitRun(t, repo, "commit", "-q", "-am", "feature")
	gitRun(t, repo, "checkout", "-q", "main")

	f := newFixture(t, 1)
	f.runner.Recipe.Fetch = deploy.Fetch{GitRepo: repo, DefaultRef: "main"}
	f.runner.Recipe.Shared = nil
	f.mustDeploy("r1", "")
	if got := readFile(t, filepath.Join(f.bases[0], "current", "which")); got != "main\n" {
		t.Errorf("default ref checked out %q", got)
	}
	if res, rec, err := f.deploy("r2", "r1", "feature"); err != nil || res.Release != "r2" {
		t.Fatalf("%+v, %v\n%s", res, err, rec.output())
	}
	if got := readFile(t, filepath.Join(f.bases[0], "current", "which")); got != "feature\n" {
		t.Errorf("ref feature checked out %q", got)
	}
	if _, _, err := f.deploy("r3", "r2", "nosuchref"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown ref: %v", err)
	}
	f.wantCurrent("r2")
}

// recordingHost records every argv and runs nothing.
type recordingHost struct {
	mu    sync.Mutex
	argvs [][]string
}

func (h *recordingHost) Name() string                               { return "rec" }
func (h *recordingHost) Close() error                               { return nil }
func (h *recordingHost) Open(context.Context) (release.Host, error) { return h, nil }
func (h *recordingHost) Run(_ context.Context, _ string, argv []string, _ func(string)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.argvs = append(h.argvs, argv)
	return nil
}

func TestDashRefNeverReachesGit(t *testing.T) {
	for _, tc := range []struct{ ref, defaultRef string }{
		{ref: "--upload-pack=touch /tmp/pwned"},
		{ref: "-b"},
		{ref: "", defaultRef: "--orphan=x"},
	} {
		h := &recordingHost{}
		r := &release.Runner{
			Recipe: deploy.Recipe{Path: "/srv/app", Fetch: deploy.Fetch{GitRepo: "https://git.example.com/app.git", DefaultRef: tc.defaultRef}},
			Hosts:  []release.Opener{h},
		}
		_, err := r.Deploy(context.Background(), deploy.DeployRequest{Release: "r1", Ref: tc.ref}, nil)
		if err == nil {
			t.Errorf("ref %q / default %q accepted", tc.ref, tc.defaultRef)
		}
		for _, argv := range h.argvs {
			if argv[0] == "git" {
				t.Errorf("git ran: %q", argv)
			}
		}
	}
}

func TestOpenFailureRunsNothing(t *testing.T) {
	h := &recordingHost{}
	r := &release.Runner{
		Recipe: deploy.Recipe{Path: "/srv/app", Fetch: deploy.Fetch{CopyFrom: "/src"}},
		Hosts:  []release.Opener{h, failingOpener{}},
	}
	rec := &recorder{}
	_, err := r.Deploy(context.Background(), deploy.DeployRequest{Release: "r1"}, rec)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v", err)
	}
	if len(h.argvs) != 0 {
		t.Errorf("commands ran: %q", h.argvs)
	}
	if ev, _ := rec.last("prepare"); ev.state != deploy.StepFailed {
		t.Errorf("prepare = %+v", ev)
	}
}

type failingOpener struct{}

func (failingOpener) Open(context.Context) (release.Host, error) {
	return nil, errors.New("unreachable")
}

func TestRelativePathRefused(t *testing.T) {
	h := &recordingHost{}
	r := &release.Runner{Recipe: deploy.Recipe{Path: "var/app"}, Hosts: []release.Opener{h}}
	if _, err := r.Deploy(context.Background(), deploy.DeployRequest{Release: "r1"}, nil); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("err = %v", err)
	}
	if len(h.argvs) != 0 {
		t.Errorf("commands ran: %q", h.argvs)
	}
}

func TestCancelAfterSwitchGoesBackToPrevious(t *testing.T) {
	f := newFixture(t, 2)
	f.mustDeploy("r1", "")
	f.runner.Recipe.Restart = []deploy.Command{{"sh", "-c",
		"readlink {{current_path}} >> {{path}}/restarts; if [ {{release}} = r2 ]; then touch {{path}}/restarting; sleep 30; fi"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.runner.Deploy(ctx, deploy.DeployRequest{Release: "r2", Previous: "r1"}, nil)
		done <- err
	}()
	for _, b := range f.bases {
		waitFor(t, "the restart to start", 10*time.Second, func() bool { return exists(filepath.Join(b, "restarting")) })
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "switched back to r1") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deploy did not return after cancel")
	}
	f.wantCurrent("r1")
	for _, b := range f.bases {
		got := strings.Fields(readFile(t, filepath.Join(b, "restarts")))
		if got[len(got)-1] != "releases/r1" {
			t.Errorf("%s not restarted on r1 after the cancel: %v", b, got)
		}
	}
}

func mustPlan(t *testing.T, r *release.Runner, req deploy.DeployRequest) deploy.Plan {
	t.Helper()
	p, err := r.Plan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
