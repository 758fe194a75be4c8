package local_test

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
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/local"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// demoRecipe mirrors apps.demo.envs.staging in configs/example.yaml.
func demoRecipe(path string) deploy.Recipe {
	return deploy.Recipe{
		App: "demo", Env: "staging",
		Path:         path,
		KeepReleases: 5,
		Fetch:        deploy.Fetch{CopyFrom: "../../../examples/demo", DefaultRef: "main"},
		Shared:       []string{"app.log"},
		Build:        []deploy.Command{{"sh", "build.sh", "{{release}}", "{{ref}}"}},
		Migrate:      []deploy.Command{{"sh", "migrate.sh", "{{shared_path}}"}},
		Restart:      []deploy.Command{{"sh", "restart.sh", "{{shared_path}}"}},
		StepTimeout:  time.Minute,
		Health: deploy.Health{
			Command:  deploy.Command{"sh", "{{current_path}}/healthcheck.sh", "{{shared_path}}"},
			Retries:  3,
			Interval: 10 * time.Millisecond,
			Timeout:  5 * time.Second,
		},
		Logs: deploy.LogSource{File: "{{shared_path}}/app.log", MaxLines: 200, MaxBytes: 65536},
	}
}

type progress struct {
	mu    sync.Mutex
	steps map[string]deploy.StepState
	lines []string
}

func (p *progress) Step(name string, s deploy.StepState, _ string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.steps == nil {
		p.steps = map[string]deploy.StepState{}
	}
	p.steps[name] = s
}

func (p *progress) Output(l string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, l)
}

func TestDemoDeploysAndPassesHealth(t *testing.T) {
	base := filepath.Join(t.TempDir(), "demo", "staging")
	d := local.New(demoRecipe(base), local.Options{})
	ctx := context.Background()

	p := &progress{}
	res, err := d.Deploy(ctx, deploy.DeployRequest{App: "demo", Env: "staging", Release: "r1"}, p)
	if err != nil || res.Release != "r1" || res.RolledBack {
		t.Fatalf("%+v, %v\n%s", res, err, strings.Join(p.lines, "\n"))
	}
	if p.steps["health"] != deploy.StepDone || p.steps["migrate"] != deploy.StepDone {
		t.Errorf("steps = %v", p.steps)
	}
	if !slices.Contains(p.lines, "healthy: release r1") {
		t.Errorf("health output missing: %q", p.lines)
	}
	if got, _ := os.ReadFile(filepath.Join(base, "shared", "schema_release")); string(got) != "r1\n" {
		t.Errorf("migrate did not run: %q", got)
	}

	st, err := d.Status(ctx)
	if err != nil || !st.Healthy || st.Current != "r1" {
		t.Fatalf("status %+v, %v", st, err)
	}
	logs, err := d.Logs(ctx, 10)
	if err != nil || len(logs.Lines) != 1 || !strings.Contains(logs.Lines[0], "demo started release r1 (ref main)") {
		t.Fatalf("logs %+v, %v", logs, err)
	}

	// the demo's failure modes behave as documented in its README
	res, err = d.Deploy(ctx, deploy.DeployRequest{Release: "r2", Previous: "r1", Ref: "bad-health"}, nil)
	if err != nil || !res.RolledBack || res.Release != "r1" {
		t.Fatalf("bad-health: %+v, %v", res, err)
	}
	if _, err := d.Deploy(ctx, deploy.DeployRequest{Release: "r3", Previous: "r1", Ref: "bad-build"}, nil); err == nil {
		t.Fatal("bad-build deployed")
	}
	st, _ = d.Status(ctx)
	if st.Current != "r1" || !st.Healthy {
		t.Fatalf("after failures: %+v", st)
	}
	rels, err := d.Releases(ctx)
	if err != nil || !slices.Equal(rels, []deploy.ReleaseInfo{{ID: "r2"}, {ID: "r1", Current: true}}) {
		t.Fatalf("releases %+v, %v", rels, err)
	}

	// the shared log survives releases: both starts of r1 and the one of r2 are there
	logs, _ = d.Logs(ctx, 10)
	if len(logs.Lines) != 3 {
		t.Errorf("log lines = %q", logs.Lines)
	}
}

func TestPlanRunsNothing(t *testing.T) {
	base := filepath.Join(t.TempDir(), "app")
	d := local.New(demoRecipe(base), local.Options{})
	p, err := d.Plan(context.Background(), deploy.DeployRequest{Release: "r2", Previous: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"prepare", "fetch", "link shared", "build", "migrate", "switch", "restart", "health", "prune"}
	if !slices.Equal(p.Steps, want) || !slices.Equal(p.Hosts, []string{"local"}) || p.From != "r1" || p.To != "r2" {
		t.Fatalf("plan = %+v", p)
	}
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Fatalf("Plan touched %s: %v", base, err)
	}
}

func TestNewMakesRelativePathsAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	r := demoRecipe("var/demo")
	r.Fetch.GitRepo = "git@git.example.com:team/app.git"
	d := local.New(r, local.Options{})
	got := d.Recipe()
	if got.Path != filepath.Join(wd, "var/demo") {
		t.Errorf("path = %q", got.Path)
	}
	if got.Fetch.CopyFrom != filepath.Join(wd, "../../../examples/demo") {
		t.Errorf("copy = %q", got.Fetch.CopyFrom)
	}
	if got.Fetch.GitRepo != r.Fetch.GitRepo || got.Logs.File != r.Logs.File {
		t.Errorf("remote repo or templated file changed: %q %q", got.Fetch.GitRepo, got.Logs.File)
	}
}

func run(t *testing.T, h *local.Host, ctx context.Context, argv ...string) ([]string, error) {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	err := h.Run(ctx, "", argv, func(l string) {
		mu.Lock()
		lines = append(lines, l)
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	return lines, err
}

func TestRunPassesWordsWithoutAShell(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	lines, err := run(t, local.NewHost(), context.Background(), "printf", `%s\n`, "a b", "$(touch "+marker+")", "; touch "+marker)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a b", "$(touch " + marker + ")", "; touch " + marker}
	if !slices.Equal(lines, want) {
		t.Errorf("lines = %q", lines)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a word was run by a shell")
	}
}

func TestRunStreamsStdoutAndStderrAndRunsInDir(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	err := local.NewHost().Run(context.Background(), dir, []string{"sh", "-c", "echo out; echo err >&2; pwd; printf 'no newline'"},
		func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if !slices.Equal(lines, []string{"out", "err", real, "no newline"}) {
		t.Errorf("lines = %q", lines)
	}
}

func TestRunCapsLongLines(t *testing.T) {
	h := &local.Host{MaxLine: 10}
	lines, err := run(t, h, context.Background(), "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' a; echo; echo short")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0] != "aaaaaaaaaa …" || lines[1] != "short" {
		t.Errorf("lines = %q", lines)
	}
}

func TestRunReportsExitStatus(t *testing.T) {
	_, err := run(t, local.NewHost(), context.Background(), "sh", "-c", "echo first; echo oops; exit 7")
	var ee *release.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 || !strings.HasSuffix(ee.Output, "oops") || ee.Argv[0] != "sh" {
		t.Fatalf("err = %#v", err)
	}
	_, err = run(t, local.NewHost(), context.Background(), "no-such-program-shipbot")
	if err == nil || errors.As(err, &ee) {
		t.Fatalf("missing program: %v", err)
	}
}

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

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunCancelKillsTheProcessGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pidc := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		done <- local.NewHost().Run(ctx, "", []string{"sh", "-c", "sleep 30 & echo $!; wait"}, func(l string) {
			if pid, err := strconv.Atoi(l); err == nil {
				pidc <- pid
			}
		})
	}()
	var pid int
	select {
	case pid = <-pidc:
	case <-time.After(10 * time.Second):
		t.Fatal("command did not start")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitFor(t, "the child sleep to die", 5*time.Second, func() bool { return processGone(pid) })
}

func TestRunDoesNotWaitForABackgroundedChild(t *testing.T) {
	started := time.Now()
	lines, err := run(t, local.NewHost(), context.Background(), "sh", "-c", "sleep 20 & echo $!")
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := strconv.Atoi(lines[0]); err == nil {
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	if d := time.Since(started); d > 10*time.Second {
		t.Fatalf("Run waited %s for a daemon holding its output", d)
	}
}

func TestRunKeepsTheBotsSecretsOutOfCommands(t *testing.T) {
	t.Setenv("SHIPBOT_TELEGRAM_TOKEN", "123:secret")
	h := &local.Host{Env: []string{"APP_MODE=demo"}}
	lines, err := run(t, h, context.Background(), "env")
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(lines, "\n")
	if strings.Contains(env, "123:secret") {
		t.Fatal("the bot's environment leaked into a command")
	}
	if !strings.Contains(env, "PATH=") || !slices.Contains(lines, "APP_MODE=demo") {
		t.Fatalf("env = %q", lines)
	}
}
