package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

// fixture is an app deployed to n sshd hosts on this machine. All hosts
// share the file system, so each gets its own base path through
// HostConfig.BasePath, and its own port for the app's server.
type fixture struct {
	c     *sshtest.Cluster
	hosts []HostConfig
	bases []string
	rc    deploy.Recipe
}

func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	return newFixtureOn(t, sshtest.Start(t, n))
}

// newFixtureOn deploys to the hosts of c.
func newFixtureOn(t testing.TB, c *sshtest.Cluster) *fixture {
	t.Helper()
	n := len(c.Hosts)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	src := filepath.Join(root, "src")
	mkdir(t, src)
	writeFile(t, filepath.Join(src, "app.txt"), "the app\n")

	f := &fixture{c: c}
	for i := range n {
		base := filepath.Join(root, fmt.Sprintf("host%d", i+1))
		shared := filepath.Join(base, "shared")
		mkdir(t, shared)
		writeFile(t, filepath.Join(shared, "port"), strconv.Itoa(freePort(t)))
		writeFile(t, filepath.Join(shared, "config.env"), "SECRET=shared\n")
		f.bases = append(f.bases, base)
		cfg := hostConfig(t, c, i)
		cfg.Name = fmt.Sprintf("web%d", i+1)
		cfg.BasePath = base
		cfg.Keepalive = time.Second
		f.hosts = append(f.hosts, cfg)
		// The servers the restart step starts outlive their sessions.
		t.Cleanup(func() {
			if b, err := os.ReadFile(filepath.Join(shared, "app.pid")); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					stopPid(pid)
				}
			}
		})
	}
	f.rc = deploy.Recipe{
		App: "helpdesk", Env: "staging",
		// Never used: every host has a BasePath.
		Path:         "/nonexistent/helpdesk",
		KeepReleases: 5,
		Fetch:        deploy.Fetch{CopyFrom: src},
		Shared:       []string{"config.env"},
		Build: []deploy.Command{
			{"sh", "-c", `printf '%s\n' "$1" > RELEASE`, "sh", "{{release}}"},
		},
		Restart:     []deploy.Command{{self, appFlag, "restart", "{{shared_path}}"}},
		StepTimeout: 30 * time.Second,
		Health: deploy.Health{
			Command:  deploy.Command{self, appFlag, "check", "{{shared_path}}", "{{release}}"},
			Retries:  20,
			Interval: 100 * time.Millisecond,
			Timeout:  5 * time.Second,
		},
	}
	return f
}

func (f *fixture) driver(rc deploy.Recipe) *Driver { return New(rc, f.hosts, 0, nil) }

func (f *fixture) deploy(t *testing.T, rc deploy.Recipe, id, prev string) (deploy.Result, *progress, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	p := &progress{}
	res, err := f.driver(rc).Deploy(ctx, deploy.DeployRequest{App: rc.App, Env: rc.Env, Release: id, Previous: prev, By: "alice"}, p)
	return res, p, err
}

// mustDeploy deploys id and fails the test unless it went live everywhere.
func (f *fixture) mustDeploy(t *testing.T, id, prev string) {
	t.Helper()
	res, p, err := f.deploy(t, f.rc, id, prev)
	if err != nil || res.RolledBack || res.Release != id {
		t.Fatalf("deploy %s: %+v, %v\n%s", id, res, err, p.dump())
	}
	f.requireLive(t, id)
}

// requireLive checks every host: current points at id and the app's
// server, restarted, serves id.
func (f *fixture) requireLive(t *testing.T, id string) {
	t.Helper()
	for i, base := range f.bases {
		link, err := os.Readlink(filepath.Join(base, "current"))
		if err != nil || link != "releases/"+id {
			t.Errorf("host %d: current -> %q (%v), want releases/%s", i+1, link, err, id)
		}
		got, err := appRelease(filepath.Join(base, "shared"))
		if err != nil || got != id {
			t.Errorf("host %d: app serves %q (%v), want %s", i+1, got, err, id)
		}
	}
}

func mkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// watchCurrent reads every host's current link in a loop, as a web server
// resolving it would, until stop is called, and reports what it saw.
func watchCurrent(bases []string) (stop func() (seen map[string]int, failures []string)) {
	var (
		done     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		seen     = map[string]int{}
		failures []string
	)
	for _, base := range bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur := filepath.Join(base, "current")
			// Sampling every millisecond leaves the CPU to the deploy.
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for ; !done.Load(); <-tick.C {
				link, err := os.Readlink(cur)
				if err == nil {
					// The link must also resolve to a release with its files.
					_, err = os.Stat(filepath.Join(cur, "RELEASE"))
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					seen[link]++
				}
				mu.Unlock()
			}
		}()
	}
	return func() (map[string]int, []string) {
		done.Store(true)
		wg.Wait()
		return seen, failures
	}
}

func TestDeployToThreeHostsSwitchesAllAndPassesHealth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.mustDeploy(t, "r1", "")
	for _, base := range f.bases {
		// The shared file is linked into the release.
		if b, err := os.ReadFile(filepath.Join(base, "current", "config.env")); err != nil || string(b) != "SECRET=shared\n" {
			t.Errorf("%s: shared config.env in release: %q, %v", base, b, err)
		}
	}

	stop := watchCurrent(f.bases)
	res, p, err := f.deploy(t, f.rc, "r2", "r1")
	seen, failures := stop()
	if err != nil || res.RolledBack || res.Release != "r2" {
		t.Fatalf("deploy r2: %+v, %v\n%s", res, err, p.dump())
	}
	f.requireLive(t, "r2")
	if len(failures) > 0 {
		t.Errorf("reading current failed %d times during the deploy, first: %s", len(failures), failures[0])
	}
	if seen["releases/r1"] == 0 || seen["releases/r2"] == 0 {
		t.Errorf("the watch did not span the switch: %v", seen)
	}
	if !p.saw("health done") || !p.saw("switch done") {
		t.Errorf("progress lacks the switch or health step:\n%s", p.dump())
	}
	// Output is streamed with the host it came from.
	if !strings.Contains(p.dump(), "[web2] health: 200 release=r2") {
		t.Errorf("no health output from web2 in progress:\n%s", p.dump())
	}

	d := f.driver(f.rc)
	ctx := context.Background()
	rels, err := d.Releases(ctx)
	if err != nil || len(rels) != 2 || rels[0] != (deploy.ReleaseInfo{ID: "r2", Current: true}) || rels[1].ID != "r1" {
		t.Errorf("releases = %+v, %v", rels, err)
	}
	st, err := d.Status(ctx)
	if err != nil || !st.Healthy || st.Current != "r2" || len(st.Detail) != 3 {
		t.Errorf("status = %+v, %v", st, err)
	}

	// A rollback flips back and restarts; nothing is rebuilt.
	rb, err := d.Rollback(ctx, deploy.RollbackRequest{App: "helpdesk", Env: "staging", To: "r1", From: "r2", By: "alice"}, &progress{})
	if err != nil || rb.Release != "r1" {
		t.Fatalf("rollback: %+v, %v", rb, err)
	}
	f.requireLive(t, "r1")
}

func TestFailedHealthCheckRollsBackEveryHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.mustDeploy(t, "r1", "")

	broken := f.rc
	broken.Build = append(append([]deploy.Command(nil), f.rc.Build...), deploy.Command{"touch", "BROKEN"})
	broken.Health.Retries = 3
	res, p, err := f.deploy(t, broken, "r2", "r1")
	if err != nil || !res.RolledBack || res.Release != "r1" {
		t.Fatalf("deploy of a release failing health: %+v, %v\n%s", res, err, p.dump())
	}
	if !p.saw("health failed") || !p.saw("switch back done") {
		t.Errorf("progress lacks the failed health check or the switch back:\n%s", p.dump())
	}
	// Every host points at r1 again and its server was restarted on r1.
	f.requireLive(t, "r1")
	for _, base := range f.bases {
		if !exists(filepath.Join(base, "releases", "r2", "BROKEN")) {
			t.Errorf("%s: the failed release should stay for inspection", base)
		}
	}
}

func TestBuildFailureOnOneHostSwitchesNone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.mustDeploy(t, "r1", "")

	writeFile(t, filepath.Join(f.bases[1], "shared", "fail-build"), "")
	rc := f.rc
	rc.Build = append(append([]deploy.Command(nil), f.rc.Build...), deploy.Command{"test", "!", "-e", "{{shared_path}}/fail-build"})
	res, p, err := f.deploy(t, rc, "r2", "r1")
	if err == nil || res.RolledBack {
		t.Fatalf("deploy with a failing build on web2: %+v, %v", res, err)
	}
	if !strings.Contains(err.Error(), "web2") || !strings.Contains(err.Error(), "current unchanged") {
		t.Errorf("error %q should name web2 and say current is unchanged", err)
	}
	if p.saw("switch ") {
		t.Errorf("a switch was attempted:\n%s", p.dump())
	}
	f.requireLive(t, "r1")
	for _, base := range f.bases {
		if exists(filepath.Join(base, "releases", "r2")) {
			t.Errorf("%s: the unfinished release was left behind", base)
		}
	}
}

func TestChangedHostKeyRefusesTheDeployBeforeAnythingRuns(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	// web2 presents a key other than the pinned one (reinstalled, or an
	// impostor): pin a different key for it.
	old, _, _ := sshtest.NewKey(t)
	lines := []string{
		sshtest.KnownHostsLine(f.c.Hosts[0].Addr, f.c.Hosts[0].HostKey),
		sshtest.KnownHostsLine(f.c.Hosts[1].Addr, old),
		sshtest.KnownHostsLine(f.c.Hosts[2].Addr, f.c.Hosts[2].HostKey),
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, strings.Join(lines, "\n")+"\n")
	cb, err := HostKeyCallback(kh)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.hosts {
		f.hosts[i].HostKeys = cb
	}

	_, p, err := f.deploy(t, f.rc, "r1", "")
	var hke *HostKeyError
	if !errors.As(err, &hke) {
		t.Fatalf("want a *HostKeyError, got %v", err)
	}
	// The engine records this kind of refusal as an audit denial.
	if !errors.As(err, new(*deploy.DeniedError)) {
		t.Errorf("host key refusal %v is not a *deploy.DeniedError", err)
	}
	presented, pinned := gossh.FingerprintSHA256(f.c.Hosts[1].HostKey), gossh.FingerprintSHA256(old)
	if hke.Host != f.c.Hosts[1].Addr || hke.Presented != presented {
		t.Errorf("error names %s presenting %s, want %s presenting %s", hke.Host, hke.Presented, f.c.Hosts[1].Addr, presented)
	}
	for _, fp := range []string{presented, pinned} {
		if !strings.Contains(err.Error(), fp) {
			t.Errorf("error %q lacks fingerprint %s", err, fp)
		}
	}
	// No host ran a single command: not even the release dirs exist.
	for _, base := range f.bases {
		if exists(filepath.Join(base, "releases")) || exists(filepath.Join(base, "current")) {
			t.Errorf("%s: something ran although a host key was wrong", base)
		}
	}
	if len(p.output) > 0 {
		t.Errorf("output from a refused deploy: %q", p.output)
	}
}

func TestCancelStopsALongRemoteStepOnEveryHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.mustDeploy(t, "r1", "")

	m := marker(300)
	rc := f.rc
	rc.Build = append(append([]deploy.Command(nil), f.rc.Build...), deploy.Command{"sleep", m})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.driver(rc).Deploy(ctx, deploy.DeployRequest{App: "helpdesk", Env: "staging", Release: "r2", Previous: "r1"}, &progress{})
		done <- err
	}()
	waitFor(t, 20*time.Second, "the long step to run on all hosts", func() bool {
		return len(processes(t, "^sleep "+m+"$")) == len(f.bases)
	})

	cancel()
	if err := waitErr(t, done, 15*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled deploy = %v, want context.Canceled", err)
	}
	if left := processes(t, m); len(left) > 0 {
		t.Fatalf("remote steps still running after the deploy returned: %q", left)
	}
	f.requireLive(t, "r1")
	for _, base := range f.bases {
		if exists(filepath.Join(base, "releases", "r2")) {
			t.Errorf("%s: the cancelled release was left behind", base)
		}
	}
}

func TestLogsAreCapped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	rc := f.rc
	rc.Logs = deploy.LogSource{Command: deploy.Command{"seq", "1", "{{lines}}"}, MaxLines: 30, MaxBytes: 1 << 10}
	logs, err := f.driver(rc).Logs(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Lines) != 30 || !logs.Truncated {
		t.Fatalf("logs: %d lines, truncated %v; want 30, truncated", len(logs.Lines), logs.Truncated)
	}
	// Every host contributed its share, newest last.
	if logs.Lines[0] != "[web1] 1" || logs.Lines[29] != "[web3] 10" {
		t.Errorf("logs = %q", logs.Lines)
	}

	rc.Logs = deploy.LogSource{Command: deploy.Command{"seq", "100000"}, MaxLines: 500, MaxBytes: 200}
	logs, err = f.driver(rc).Logs(context.Background(), 500)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, l := range logs.Lines {
		size += len(l) + 1
	}
	if size > 200 || !logs.Truncated || logs.Lines[len(logs.Lines)-1] != "[web3] 100000" {
		t.Errorf("byte-capped logs: %d bytes, truncated %v, last %q", size, logs.Truncated, logs.Lines[len(logs.Lines)-1])
	}
}

func TestPlanNamesHostsWithoutConnecting(t *testing.T) {
	t.Parallel()
	hosts := []HostConfig{{Name: "web1", Addr: "192.0.2.1:22"}, {Addr: "192.0.2.2:22"}}
	plan, err := New(deploy.Recipe{Path: "/srv/app", Build: []deploy.Command{{"make"}}}, hosts, 2, nil).Plan(context.Background(), deploy.DeployRequest{Release: "r2", Previous: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(plan.Hosts, ",") != "web1,192.0.2.2:22" || plan.From != "r1" || plan.To != "r2" {
		t.Errorf("plan = %+v", plan)
	}
}

// The bot's process dies (kill -9) in the middle of a build on every host:
// its connections drop, sshd hangs up every step, and current stays on the
// release that was live, valid the whole time.
func TestKilledBotLeavesEveryCurrentValid(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.mustDeploy(t, "r1", "")

	m := marker(300)
	rc := f.rc
	rc.Build = append(append([]deploy.Command(nil), f.rc.Build...), deploy.Command{"sleep", m})
	spec := deploySpec{User: f.c.User, KeyFile: f.c.KeyFile, KnownHosts: f.c.KnownHosts, Recipe: rc, Release: "r2", Previous: "r1"}
	for i, h := range f.hosts {
		spec.Hosts = append(spec.Hosts, HostConfigSpec{Name: h.Name, Addr: h.Addr, Base: f.bases[i]})
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(t.TempDir(), "spec.json")
	writeFile(t, specFile, string(b))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	bot := exec.Command(self, appFlag, "deploy", specFile)
	bot.Stdout, bot.Stderr = &out, &out
	if err := bot.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = bot.Wait(); close(exited) }()
	t.Cleanup(func() { _ = bot.Process.Kill(); <-exited })

	select {
	case <-exited:
		t.Fatalf("the deploy process ended early:\n%s", out.String())
	default:
	}
	waitFor(t, 20*time.Second, "the build to run on all hosts", func() bool {
		return len(processes(t, "^sleep "+m+"$")) == len(f.bases)
	})
	stop := watchCurrent(f.bases)
	if err := bot.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	waitFor(t, 10*time.Second, "sshd to hang up the steps of the dead bot", func() bool { return len(processes(t, m)) == 0 })
	seen, failures := stop()
	if len(failures) > 0 || seen["releases/r1"] == 0 || len(seen) != 1 {
		t.Errorf("current while the bot died: seen %v, failures %q", seen, failures)
	}
	f.requireLive(t, "r1")
}
