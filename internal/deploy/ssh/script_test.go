package ssh

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

// chattyCluster starts n sshd hosts whose sessions are as noisy as a real
// server's can be: bash's BASH_ENV profile and a ForceCommand wrapper both
// print to stdout (one line without a newline) and stderr before the
// command runs. The wrapper also logs every session's SSH_CONNECTION
// ("client-ip client-port server-ip server-port"), one line a session, to
// the returned file.
func chattyCluster(t *testing.T, n int) (*sshtest.Cluster, string) {
	t.Helper()
	dir := t.TempDir()
	sessions := filepath.Join(dir, "sessions.log")
	profile := filepath.Join(dir, "profile.sh")
	writeFile(t, profile, "echo 'Last login: yesterday from somewhere'\necho 'bash: warning: setlocale: LC_ALL: cannot change locale' >&2\n")
	wrapper := filepath.Join(dir, "force-command.sh")
	writeFile(t, wrapper, `#!/bin/sh
printf '%s\n' "$SSH_CONNECTION" >> `+release.ShellQuote(sessions)+`
echo "Welcome to a chatty host. Authorised use only."
echo "motd: disk 91% full" >&2
printf 'no newline after this banner'
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
`)
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	c := sshtest.StartWith(t, n, sshtest.Options{SSHDOptions: []string{
		"ForceCommand=" + wrapper,
		// bash, the login shell here, reads BASH_ENV before any command.
		"SetEnv=SHLVL=1 BASH_ENV=" + profile,
	}})
	return c, sessions
}

// sessionCounts reads the wrapper's log: sessions and distinct client
// connections per host (by server port).
func sessionCounts(t *testing.T, log string) (sessions map[string]int, conns map[string]int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sessions, conns = map[string]int{}, map[string]int{}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue
		}
		sessions[f[3]]++
		if !seen[f[1]+" "+f[3]] {
			seen[f[1]+" "+f[3]] = true
			conns[f[3]]++
		}
	}
	return sessions, conns
}

func port(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}

// A host whose login prints banners, profile output and stderr, one line
// without a newline, still deploys: markers carry the job's nonce and
// start on a line of their own, the artifact's checksum is computed on the
// host from the bytes received, and the noise never reaches the card.
func TestChattyLoginShellStillDeploys(t *testing.T) {
	t.Parallel()
	c, _ := chattyCluster(t, 2)
	f := newFixtureOn(t, c)
	// The noise is real: a plain command sees all of it.
	noisy, err := run(t, open(t, hostConfig(t, c, 0)), "", "echo", "hello")
	if err != nil || !strings.Contains(strings.Join(noisy, "|"), "Last login: yesterday from somewhere|") ||
		!strings.Contains(strings.Join(noisy, "|"), "motd: disk 91% full|") || !strings.Contains(strings.Join(noisy, "|"), "no newline after this bannerhello") {
		t.Fatalf("the chatty host is not chatty: %q, %v", noisy, err)
	}
	dir := t.TempDir()
	payload := strings.Repeat("\x00\x01\xfe\xff shipbot\r\n", 20000)
	writeTarGz(t, filepath.Join(dir, "helpdesk-v1.tar.gz"), map[string]string{
		"app.txt":       "from the artifact\n",
		"static/blob":   payload,
		"build-note.sh": "echo 'build says hi'\necho 'build warns' >&2\nprintf 'build ends without newline'\n",
	})
	rc := f.rc
	rc.Fetch = deploy.Fetch{Artifact: filepath.Join(dir, "helpdesk-{{ref}}.tar.gz"), DefaultRef: "v1"}
	rc.Build = append([]deploy.Command{{"sh", "build-note.sh"}}, rc.Build...)
	res, p, err := f.deploy(t, rc, "r1", "")
	if err != nil || res.Release != "r1" {
		t.Fatalf("deploy on chatty hosts: %+v, %v\n%s", res, err, p.dump())
	}
	f.requireLive(t, "r1")
	for i, base := range f.bases {
		if got := readFileT(t, filepath.Join(base, "releases", "r1", "static", "blob")); got != payload {
			t.Errorf("host %d: the artifact changed on the way (%d bytes, want %d)", i+1, len(got), len(payload))
		}
	}
	dump := p.dump()
	for _, noise := range []string{"Welcome", "motd", "Last login", "setlocale", "no newline after"} {
		if strings.Contains(dump, noise) {
			t.Errorf("login noise %q reached the progress:\n%s", noise, dump)
		}
	}
	// The steps' own output, stdout and stderr, does reach it, line by line.
	for _, want := range []string{"[web1] build says hi", "[web2] build warns", "[web1] build ends without newline"} {
		if !strings.Contains(dump, want+"\n") {
			t.Errorf("progress lacks the line %q:\n%s", want, dump)
		}
	}
	if strings.Contains(dump, "@@shipbot") {
		t.Errorf("a marker leaked into the progress:\n%s", dump)
	}

	// A failing step's exit status and last lines survive the noise too.
	rc.Build = append(rc.Build, deploy.Command{"sh", "-c", "echo 'compiling'; echo 'error: out of cheese' >&2; exit 7"})
	_, p, err = f.deploy(t, rc, "r2", "r1")
	var ee *release.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 || ee.Argv[0] != "sh" || !strings.HasSuffix(ee.Output, "compiling\nerror: out of cheese") {
		t.Fatalf("failing build on chatty hosts: %v (%+v)\n%s", err, ee, p.dump())
	}
	if !p.saw("build failed [web") || !strings.Contains(p.dump(), "exit status 7: error: out of cheese") {
		t.Errorf("the card lacks the failing step's status and last line:\n%s", p.dump())
	}
	f.requireLive(t, "r1")
}

// A deploy opens one connection per host and runs at most three sessions
// on it (prepare, go live; the bound leaves room for a migrate host); a
// rollback one (check, barrier, go live). Counted by the sshd's own ForceCommand,
// so nothing the client does goes uncounted.
func TestDeploySessionsPerHost(t *testing.T) {
	t.Parallel()
	c, log := chattyCluster(t, 3)
	f := newFixtureOn(t, c)
	counts := func() (map[string]int, map[string]int) { return sessionCounts(t, log) }

	check := func(what string, before map[string]int, beforeConns map[string]int, maxSessions int) {
		t.Helper()
		after, conns := counts()
		for i, h := range c.Hosts {
			pt := port(h.Addr)
			if got := after[pt] - before[pt]; got < 1 || got > maxSessions {
				t.Errorf("%s: host %d ran %d SSH sessions, want 1..%d", what, i+1, got, maxSessions)
			} else {
				t.Logf("%s: host %d: %d sessions", what, i+1, got)
			}
			if got := conns[pt] - beforeConns[pt]; got != 1 {
				t.Errorf("%s: host %d got %d connections, want 1", what, i+1, got)
			}
		}
	}
	s0, c0 := counts()
	f.mustDeploy(t, "r1", "")
	check("first deploy", s0, c0, 3)
	s1, c1 := counts()
	f.mustDeploy(t, "r2", "r1")
	check("second deploy", s1, c1, 3)
	s2, c2 := counts()
	if _, err := f.driver(f.rc).Rollback(context.Background(), deploy.RollbackRequest{To: "r1", From: "r2"}, &progress{}); err != nil {
		t.Fatal(err)
	}
	f.requireLive(t, "r1")
	check("rollback", s2, c2, 1)
}

// A step that ignores SIGTERM and SIGHUP still ends KillAfter after a
// cancel: timeout(1) on the host follows the stop with SIGKILL.
func TestCancelKillsAStepThatIgnoresTERM(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.mustDeploy(t, "r1", "")
	m := marker(300)
	rc := f.rc
	rc.Build = append(append([]deploy.Command(nil), f.rc.Build...), deploy.Command{"sh", "-c", "trap '' TERM HUP; sleep " + m})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.driver(rc).Deploy(ctx, deploy.DeployRequest{App: "helpdesk", Env: "staging", Release: "r2", Previous: "r1"}, &progress{})
		done <- err
	}()
	waitFor(t, 20*time.Second, "the stubborn step to run on all hosts", func() bool {
		return len(processes(t, "^sleep "+m+"$")) == len(f.bases)
	})
	cancelled := time.Now()
	cancel()
	if err := waitErr(t, done, release.KillAfter+10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled deploy = %v, want context.Canceled", err)
	}
	waitFor(t, 3*time.Second, "the stubborn step to be killed", func() bool { return len(processes(t, m)) == 0 })
	if took := time.Since(cancelled); took < release.KillAfter-time.Second {
		t.Errorf("the step ended %s after the cancel: it did not ignore SIGTERM, the test proves nothing", took)
	}
	f.requireLive(t, "r1")
	for _, base := range f.bases {
		if exists(filepath.Join(base, "releases", "r2")) {
			t.Errorf("%s: the cancelled release was left behind", base)
		}
	}
}

// A restart that leaves a daemon holding the session's output (a careless
// `server &`) does not hold the deploy: the script's last line ends the
// wait after a short grace.
func TestDaemonHoldingOutputDoesNotHoldTheDeploy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	m := marker(120)
	t.Cleanup(func() {
		for _, l := range processes(t, "^sleep "+m+"$") {
			if pid, err := strconv.Atoi(strings.Fields(l)[0]); err == nil {
				stopPid(pid)
			}
		}
	})
	rc := f.rc
	rc.Restart = append(append([]deploy.Command(nil), f.rc.Restart...), deploy.Command{"sh", "-c", "sleep " + m + " & echo daemon started"})
	start := time.Now()
	res, p, err := f.deploy(t, rc, "r1", "")
	if err != nil || res.Release != "r1" {
		t.Fatalf("deploy: %+v, %v\n%s", res, err, p.dump())
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the deploy waited %s for the daemon's output to close", took)
	}
	if len(processes(t, "^sleep "+m+"$")) != 1 {
		t.Fatal("the daemon is not running: the test proves nothing")
	}
	f.requireLive(t, "r1")
}

// A step that runs past StepTimeout fails the deploy as timed out and is
// stopped on the host; even when the network went silent the moment the
// step started, so that the bot's stop never arrives, the step's own
// timeout on the host ends it.
func TestStepTimeoutStopsTheScriptEvenBehindASilentNetwork(t *testing.T) {
	t.Parallel()
	for _, frozen := range []bool{false, true} {
		t.Run(map[bool]string{false: "connected", true: "silent network"}[frozen], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 1)
			var p *freezingProxy
			if frozen {
				var cfg HostConfig
				cfg, p = proxied(t, f.c)
				cfg.Name, cfg.BasePath, cfg.Keepalive = f.hosts[0].Name, f.hosts[0].BasePath, -1
				cfg.cancelGrace = 300 * time.Millisecond
				f.hosts[0] = cfg
			}
			m := marker(300)
			rc := f.rc
			rc.StepTimeout = 2 * time.Second
			rc.Build = append(append([]deploy.Command(nil), f.rc.Build...), deploy.Command{"sleep", m})
			done := make(chan error, 1)
			go func() {
				_, _, err := f.deploy(t, rc, "r1", "")
				done <- err
			}()
			waitFor(t, 20*time.Second, "the long step to run", func() bool { return sleeping(t, m) })
			if frozen {
				p.freeze()
			}
			err := waitErr(t, done, 15*time.Second)
			if err == nil || !strings.Contains(err.Error(), "build on web1: timed out after 2s") {
				t.Fatalf("deploy = %v, want the build timed out", err)
			}
			// The remote backstop is the step timeout plus a second, then
			// timeout's kill-after if the step ignored it.
			waitFor(t, 10*time.Second, "the step to end on the host", func() bool { return len(processes(t, m)) == 0 })
			if !frozen && exists(filepath.Join(f.bases[0], "releases", "r1")) {
				t.Error("the timed-out release was left behind")
			}
		})
	}
}
