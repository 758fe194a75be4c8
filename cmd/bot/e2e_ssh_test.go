package main

// End-to-end tests of the real binary with `driver: ssh` against real sshd
// processes on loopback (issue 3). All sshd share this machine's file system,
// so each test gives its one host its own env path and checks the release
// layout there directly. The multi-host logic (parallel prepare, switch on
// all or none) is proven by internal/deploy/ssh's own tests.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

// sshAppBuild is the app's build step, run on the host in the new release:
// it records the release, appends six lines to the shared app log (what
// /logs reads), and with ref "slow" starts a step that outlives any test and
// ignores SIGTERM and SIGHUP, so only the remote kill-after ends it.
// GNU sleep adds up its arguments, so the second one only makes the sleeping
// process's command line unique to its test for pgrep.
const sshAppBuild = `set -eu
release=$1 ref=$2 shared=$3 mark=$4
echo "$release" > VERSION
for i in 1 2 3 4 5 6; do echo "$release log $i" >> "$shared/app.log"; done
if [ "$ref" = slow ]; then
	trap '' TERM HUP
	echo "slow build started"
	sleep 3600 "0.$mark"
fi
echo built
`

// sshApp is one test's world: a bot config whose app "web" has one env
// "prod" deployed over SSH to one real sshd, at base on that host.
type sshApp struct {
	*testEnv
	cluster *sshtest.Cluster
	host    *sshtest.Host
	base    string // the env's path on the host
	src     string // what fetch.copy uploads
	mark    string // digits unique to this test, on the slow step's command line

	knownHosts string
	keyFile    string
	approval   bool
	extra      string // more keys of the env, indented by 8 spaces
}

// newSSHApp starts one sshd and writes a config deploying to it with the
// cluster's pinned known_hosts and 0600 key; change the fields and call
// writeConfig again to vary them.
func newSSHApp(t *testing.T) *sshApp {
	t.Helper()
	c := sshtest.Start(t, 1)
	dir := t.TempDir()
	a := &sshApp{
		testEnv:    &testEnv{t: t, dir: dir, config: filepath.Join(dir, "shipbot.yaml")},
		cluster:    c,
		host:       c.Hosts[0],
		base:       filepath.Join(dir, "host", "srv", "web"),
		src:        filepath.Join(dir, "src"),
		mark:       strconv.FormatInt(time.Now().UnixNano()%1e9, 10) + strconv.Itoa(os.Getpid()%1000),
		knownHosts: c.KnownHosts,
		keyFile:    c.KeyFile,
	}
	if err := os.MkdirAll(a.src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.src, "build.sh"), []byte(sshAppBuild), 0o644); err != nil {
		t.Fatal(err)
	}
	a.writeConfig()
	return a
}

func (a *sshApp) writeConfig() {
	a.t.Helper()
	approval := ""
	if a.approval {
		approval = `
        approval:
          required: true
          approver_roles: [ops]
          ttl: 10m`
	}
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 3s
chat:
  shell: {enabled: true, user: alice}
users:
  alice: {identities: ["shell:alice"], roles: [ops]}
  bob: {identities: ["shell:bob"], roles: [ops]}
roles:
  ops: {permissions: ["*"]}
apps:
  web:
    envs:
      prod:
        driver: ssh
        path: %[2]s
        keep_releases: 3
        fetch: {copy: %[3]s, ref: main}
        build:
          - ["sh", "build.sh", "{{release}}", "{{ref}}", "{{shared_path}}", "%[4]s"]
        restart:
          - ["cp", "{{release_path}}/VERSION", "{{shared_path}}/running"]
        step_timeout: 2m
        health:
          command: ["test", "-f", "{{current_path}}/VERSION"]
          retries: 1
        logs:
          command: ["tail", "-n", "{{lines}}", "{{shared_path}}/app.log"]
          max_lines: 4
        ssh:
          hosts: ["%[5]s"]
          user: %[6]s
          key_file: %[7]s
          known_hosts: %[8]s
          connect_timeout: 5s%[9]s
%[10]s`, a.dir, a.base, a.src, a.mark, a.host.Addr, a.cluster.User, a.keyFile, a.knownHosts, approval, a.extra)
	if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
		a.t.Fatal(err)
	}
}

// hostCurrent asserts current on the host is a symlink to an existing
// releases/<id> whose VERSION names it, and returns the id.
func (a *sshApp) hostCurrent() string {
	a.t.Helper()
	link := filepath.Join(a.base, "current")
	fi, err := os.Lstat(link)
	if err != nil {
		a.t.Fatalf("current on the host: %v", err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		a.t.Fatalf("%s is %v, not a symlink", link, fi.Mode())
	}
	target, err := os.Readlink(link)
	if err != nil {
		a.t.Fatal(err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(a.base, target)
	}
	if filepath.Dir(target) != filepath.Join(a.base, "releases") {
		a.t.Fatalf("current points to %s, outside %s/releases", target, a.base)
	}
	id := filepath.Base(target)
	v, err := os.ReadFile(filepath.Join(target, "VERSION"))
	if err != nil {
		a.t.Fatalf("current release %s: %v", id, err)
	}
	if got := strings.TrimSpace(string(v)); got != id {
		a.t.Fatalf("current release %s has VERSION %q", id, got)
	}
	return id
}

// noReleasesDir asserts nothing was ever prepared on the host.
func (a *sshApp) noReleasesDir() {
	a.t.Helper()
	if _, err := os.Stat(filepath.Join(a.base, "releases")); !os.IsNotExist(err) {
		a.t.Fatalf("releases/ on the host: %v; a refused deploy must prepare nothing", err)
	}
}

// logins counts the publickey logins sshd accepted so far: a refusal at
// the host key check must add none, since it comes before authentication.
func (a *sshApp) logins() int {
	return strings.Count(a.host.Log(), "Accepted publickey")
}

// messageBody returns the body of the one message whose title line is
// title (after its style marker), or fails.
func messageBody(t *testing.T, out, title string) string {
	t.Helper()
	var found []string
	for _, m := range messages(out) {
		first, rest, _ := strings.Cut(m, "\n")
		if _, name, ok := strings.Cut(first, " "); ok && name == title {
			found = append(found, rest)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d messages titled %q in:\n%s", len(found), title, out)
	}
	return found[0]
}

// codeLines are the "  │ " lines of a message body.
func codeLines(body string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if c, ok := strings.CutPrefix(l, "  │ "); ok {
			out = append(out, c)
		}
	}
	return out
}

// The whole path over SSH: bot check accepts the config, two deploys land
// on the host with the layout DESIGN.md describes, restart and health ran
// there, /releases lists both, and /logs returns exactly the lines asked for
// within the configured cap.
func TestE2ESSHDeployReleasesLogs(t *testing.T) {
	t.Parallel()
	a := newSSHApp(t)
	if code, out, errOut := a.cli("check", "--config", a.config); code != 0 || !strings.Contains(out, "config OK") {
		t.Fatalf("bot check: exit %d\n%s%s", code, out, errOut)
	}

	p := a.startBot(nil)
	p.send("/deploy web prod")
	first := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardState(1, "succeeded"))
	if got := a.hostCurrent(); got != first {
		t.Fatalf("current on the host is %s, the job deployed %s", got, first)
	}
	p.send("/deploy web prod")
	second := p.waitFor(cardRelease(2))[1]
	// The build's output reached the card from the remote PTY.
	p.waitFor(cardState(2, "succeeded") + `(?:[^─\n][^\n]*\n)*?  │ built\n`)
	if second == first {
		t.Fatalf("both jobs deployed release %s", second)
	}
	if got := a.hostCurrent(); got != second {
		t.Fatalf("after the second deploy current is %s, want %s", got, second)
	}
	running, err := os.ReadFile(filepath.Join(a.base, "shared", "running"))
	if err != nil || strings.TrimSpace(string(running)) != second {
		t.Fatalf("shared/running = %q (%v), want %s: the restart step did not run on the host", running, err, second)
	}
	if _, err := os.Stat(filepath.Join(a.base, "releases", first, "VERSION")); err != nil {
		t.Fatalf("the first release is gone from the host, /rollback would have nothing: %v", err)
	}

	p.send("/releases web prod")
	p.send("/logs web prod 2")
	p.send("/logs web prod 9")
	p.closeInput()
	p.mustExit0()
	out := p.out.String()

	rels := codeLines(messageBody(t, out, "Releases of web/prod"))
	listed := func(mark, id, state string) bool {
		rx := regexp.MustCompile(`^` + regexp.QuoteMeta(mark+" "+id) + `  ref=main  by=alice  \S+ \S+  ` + state + `$`)
		return slices.ContainsFunc(rels, rx.MatchString)
	}
	if len(rels) != 2 || !listed("*", second, "live") || !listed(" ", first, "superseded") {
		t.Fatalf("/releases lists %q, want %s live and %s superseded, both by alice at ref main", rels, second, first)
	}

	two := messageBody(t, out, "Logs of web/prod (last 2 lines)")
	if got, want := codeLines(two), []string{second + " log 5", second + " log 6"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("/logs 2 showed %q, want %q", got, want)
	}
	if strings.Contains(two, "(truncated)") {
		t.Fatalf("/logs 2 says truncated:\n%s", two)
	}
	capped := messageBody(t, out, "Logs of web/prod (last 4 lines)")
	want := []string{second + " log 3", second + " log 4", second + " log 5", second + " log 6"}
	if got := codeLines(capped); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("/logs 9 with max_lines 4 showed %q, want %q", got, want)
	}
	if !strings.Contains(capped, "(truncated: 9 lines asked") {
		t.Fatalf("/logs beyond max_lines does not say truncated:\n%s", capped)
	}

	evs := a.auditExport()
	for _, id := range []int64{1, 2} {
		outs := outcomesOf(evs, jobIntent(t, evs, id).Seq)
		if len(outs) != 1 || !strings.HasPrefix(outs[0].Outcome, "succeeded") {
			t.Fatalf("job #%d outcomes %+v, want one succeeded", id, outs)
		}
	}
	noInternalError(t, out)
	a.mustVerify()
}

// A host whose key is not the pinned one is refused with both fingerprints,
// before authentication, and the refusal is an audit denial. At first
// contact (reading the host's releases for a new job) no job is created; when
// the key changes between a job's creation and its start (here: between the
// request and its approval) the job fails and the denial names the job.
func TestE2ESSHChangedHostKey(t *testing.T) {
	t.Parallel()

	// pinOther points the config at a known_hosts that pins another key for
	// the host and returns the fingerprints shown: presented, then pinned.
	pinOther := func(a *sshApp) (string, string) {
		other, _, _ := sshtest.NewKey(a.t)
		a.knownHosts = filepath.Join(a.dir, "known_hosts_changed")
		if err := os.WriteFile(a.knownHosts, []byte(sshtest.KnownHostsLine(a.host.Addr, other)+"\n"), 0o644); err != nil {
			a.t.Fatal(err)
		}
		a.writeConfig()
		return gossh.FingerprintSHA256(a.host.HostKey), gossh.FingerprintSHA256(other)
	}

	t.Run("first contact", func(t *testing.T) {
		t.Parallel()
		a := newSSHApp(t)
		presented, pinned := pinOther(a)
		p, st := a.runScript("/deploy web prod\n/jobs\n")
		if st.ExitCode() != 0 {
			t.Fatalf("exit %v, stderr: %s", st, p.errOut)
		}
		p.mustContain(`✖ Refused\n[^\n]*HOST KEY OF ` + regexp.QuoteMeta(a.host.Addr) + ` HAS CHANGED[^\n]*presented ssh-ed25519 ` +
			regexp.QuoteMeta(presented) + `[^\n]*expects ssh-ed25519 ` + regexp.QuoteMeta(pinned) + `[^\n]*refused before running anything`)
		p.mustContain(`• Recent jobs\nno jobs yet\n`)
		if strings.Contains(p.out.String(), "(job #1)") {
			t.Fatal("a job was created for a host that failed its key check")
		}
		if _, err := os.Stat(a.base); !os.IsNotExist(err) {
			t.Fatalf("the env path exists on the host (%v): something ran there", err)
		}
		if n := a.logins(); n != 0 {
			t.Fatalf("sshd accepted %d logins from a bot that should have hung up at the host key", n)
		}

		var denials []audit.Event
		for _, ev := range a.auditExport() {
			if ev.Kind == audit.KindDenial {
				denials = append(denials, ev)
			}
		}
		if len(denials) != 1 || denials[0].Command != "deploy" || denials[0].Actor != "alice" ||
			!strings.Contains(denials[0].Outcome, presented) || !strings.Contains(denials[0].Outcome, pinned) {
			t.Fatalf("audit denials %+v, want one for alice's deploy naming %s and %s", denials, presented, pinned)
		}
		a.mustVerify()
	})

	t.Run("job", func(t *testing.T) {
		t.Parallel()
		a := newSSHApp(t)
		a.approval = true
		a.writeConfig()
		p, st := a.runScript("/deploy web prod\n")
		if st.ExitCode() != 0 {
			t.Fatalf("request: exit %v, stderr: %s", st, p.errOut)
		}
		p.mustContain(cardState(1, "awaiting approval"))
		approval := p.mustContain(`Approval id: (\w+)`)[1]

		presented, pinned := pinOther(a)
		logins := a.logins()
		p, st = a.runScript("/as bob\n/approve " + approval + "\n")
		if st.ExitCode() != 0 {
			t.Fatalf("approval: exit %v, stderr: %s", st, p.errOut)
		}
		p.mustContain(`(?m)^• Approved job #1$`)
		card := p.mustContain(`\(job #1\)\n([^\n]*)\n  state: failed\n`)
		if !strings.Contains(card[1], presented) || !strings.Contains(card[1], pinned) ||
			strings.Index(card[1], presented) > strings.Index(card[1], pinned) {
			t.Fatalf("failed card says %q, want the presented %s then the pinned %s", card[1], presented, pinned)
		}
		a.noReleasesDir()
		if n := a.logins(); n != logins {
			t.Fatalf("sshd accepted %d more logins after the key changed", n-logins)
		}

		evs := a.auditExport()
		outs := outcomesOf(evs, jobIntent(t, evs, 1).Seq)
		if len(outs) != 1 || !strings.HasPrefix(outs[0].Outcome, "failed: ") {
			t.Fatalf("job #1 outcomes %+v, want one failed", outs)
		}
		var denial *audit.Event
		for i, ev := range evs {
			if ev.Kind == audit.KindDenial && ev.JobID == 1 {
				denial = &evs[i]
			}
		}
		if denial == nil || denial.Command != "deploy" || denial.Actor != "alice" ||
			!strings.Contains(denial.Outcome, presented) || !strings.Contains(denial.Outcome, pinned) {
			t.Fatalf("audit denial for job #1: %+v, want alice's deploy naming %s and %s", denial, presented, pinned)
		}
		a.mustVerify()
	})
}

// kill -9 of the bot while a deploy runs over SSH: on restart the job is
// interrupted and holds the lock, the audit chain is intact, current on the
// host is valid, and a killed remote step does not outlive the bot.
func TestE2ESSHKilledMidDeploy(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"build", "restart", "remote step"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			a := newSSHApp(t)
			p, st := a.runScript("/deploy web prod\n")
			if st.ExitCode() != 0 {
				t.Fatalf("first deploy: exit %v, stderr: %s", st, p.errOut)
			}
			first := a.hostCurrent()

			if at == "remote step" {
				a.killDuringSlowBuild()
			} else {
				// The crash point kills the bot as the step starts, as a
				// power cut would.
				crashed, st := a.runScript("/deploy web prod\n", crashEnv+"="+at)
				if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("crash run ended with %v, want SIGKILL\noutput:\n%s", st, crashed.out)
				}
			}
			before := a.auditExport()

			p, st = a.runScript("/jobs\n/deploy web prod\n")
			if st.ExitCode() != 0 {
				t.Fatalf("restart: exit %v, stderr: %s", st, p.errOut)
			}
			p.mustContain(cardState(2, "interrupted — lock still held"))
			p.mustContain(`(?m)^  │ #2 +deploy +web/prod +interrupted `)
			p.mustContain(`✖ Refused\nweb/prod is locked by alice since [^\n]* \(job #2\)`)
			if strings.Contains(p.out.String(), "(job #3)") {
				t.Fatal("a deploy started while the interrupted job holds the lock")
			}

			a.mustVerify()
			after := a.auditExport()
			for i, ev := range before {
				if i >= len(after) || after[i].Seq != ev.Seq || after[i].Hash != ev.Hash {
					t.Fatalf("audit row %d changed or lost across the restart", ev.Seq)
				}
			}
			outs := outcomesOf(after, jobIntent(t, after, 2).Seq)
			if len(outs) != 1 || !strings.HasPrefix(outs[0].Outcome, "interrupted") {
				t.Fatalf("job #2 outcomes %+v, want exactly one interrupted", outs)
			}

			cur := a.hostCurrent()
			if at == "restart" {
				if cur == first {
					t.Fatal("killed after the switch, current still names the first release")
				}
			} else if cur != first {
				t.Fatalf("killed before the switch, current is %s, want %s", cur, first)
			}

			// The holder lifts the lock and the host takes a new deploy.
			p, st = a.runScript("/unlock web prod\n/deploy web prod\n")
			if st.ExitCode() != 0 {
				t.Fatalf("after unlock: exit %v, stderr: %s", st, p.errOut)
			}
			third := p.mustContain(cardRelease(3))[1]
			p.mustContain(cardState(3, "succeeded"))
			if got := a.hostCurrent(); got != third {
				t.Fatalf("current is %s after job #3 deployed %s", got, third)
			}
			a.mustVerify()
		})
	}
}

// killDuringSlowBuild starts job #2 with the slow ref, SIGKILLs the bot once
// the step really runs on the host, and waits for that step to end there.
func (a *sshApp) killDuringSlowBuild() {
	a.t.Helper()
	marker := "sleep 3600 0." + a.mark
	remoteStep := func() bool { return exec.Command("pgrep", "-f", marker).Run() == nil }

	p := a.startBot(nil)
	p.send("/deploy web prod slow")
	p.waitFor(cardState(2, "running"))
	deadline := time.Now().Add(outputTimeout)
	for !remoteStep() {
		if time.Now().After(deadline) {
			a.t.Fatalf("the slow build never ran on the host\noutput:\n%s", p.out)
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		a.t.Fatal(err)
	}
	p.wait(exitTimeout)

	// Nobody is left to cancel it: sshd closes the dead bot's session, the
	// script's watchdog sees its stdin end and stops the step (timeout on
	// the host sends SIGTERM, which the step ignores, then SIGKILL 5s later).
	deadline = time.Now().Add(10 * time.Second)
	for remoteStep() {
		if time.Now().After(deadline) {
			a.t.Fatal("the killed bot's remote step still runs on the host 10s later")
		}
		time.Sleep(100 * time.Millisecond) // polling another process's state
	}
}

// `bot hosts scan` prints the host's key line and its fingerprint, trusts
// nothing, and that line alone is enough to deploy; a closed port exits 1.
func TestE2ESSHHostsScan(t *testing.T) {
	t.Parallel()
	a := newSSHApp(t)
	scanDir := t.TempDir()
	cli := &testEnv{t: t, dir: scanDir}

	code, out, errOut := cli.cli("hosts", "scan", a.host.Addr)
	if code != 0 {
		t.Fatalf("scan exit %d: %s", code, errOut)
	}
	if want := sshtest.KnownHostsLine(a.host.Addr, a.host.HostKey) + "\n"; out != want {
		t.Fatalf("scan printed %q, want exactly %q", out, want)
	}
	if fp := gossh.FingerprintSHA256(a.host.HostKey); !strings.Contains(errOut, fp) {
		t.Fatalf("scan's stderr lacks the fingerprint %s: %q", fp, errOut)
	}
	if ents, _ := os.ReadDir(scanDir); len(ents) != 0 {
		t.Fatalf("scan wrote %d files; it must trust (and write) nothing", len(ents))
	}

	// What an admin does after comparing the fingerprint: pin the line.
	a.knownHosts = filepath.Join(a.dir, "known_hosts_from_scan")
	if err := os.WriteFile(a.knownHosts, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	a.writeConfig()
	p, st := a.runScript("/deploy web prod\n")
	if st.ExitCode() != 0 {
		t.Fatalf("deploy with the scanned key: exit %v, stderr: %s", st, p.errOut)
	}
	rel := p.mustContain(cardRelease(1))[1]
	p.mustContain(cardState(1, "succeeded"))
	if got := a.hostCurrent(); got != rel {
		t.Fatalf("current is %s, the job deployed %s", got, rel)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	code, out, errOut = cli.cli("hosts", "scan", closed)
	if code != 1 || out != "" || !strings.Contains(errOut, "scan") {
		t.Fatalf("scan of closed %s: exit %d, stdout %q, stderr %q; want 1, nothing, an error", closed, code, out, errOut)
	}
}

// A key file others may read, or a missing known_hosts, stops `bot run`
// before any chat, naming the config key and the problem, and the host is
// never contacted.
func TestE2ESSHStartupRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(a *sshApp)
		want  []string
	}{
		{"key 0644", func(a *sshApp) { a.keyFile = copyKey(a, 0o644) },
			[]string{"ssh.key_file", "accessible by group or others", "0644", "chmod 600"}},
		{"key 0640", func(a *sshApp) { a.keyFile = copyKey(a, 0o640) },
			[]string{"ssh.key_file", "accessible by group or others", "0640"}},
		{"known_hosts missing", func(a *sshApp) { a.knownHosts = filepath.Join(a.dir, "no_such_known_hosts") },
			[]string{"ssh.known_hosts", "no_such_known_hosts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newSSHApp(t)
			tc.setup(a)
			a.writeConfig()
			p, st := a.runScript("/help\n/deploy web prod\n")
			if st.ExitCode() == 0 {
				t.Fatalf("bot run exited 0\nstdout: %s", p.out)
			}
			for _, w := range tc.want {
				if !strings.Contains(p.errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, p.errOut)
				}
			}
			if out := p.out.String(); out != "" {
				t.Fatalf("the bot talked before refusing to start:\n%s", out)
			}
			if n := a.logins(); n != 0 {
				t.Fatalf("sshd accepted %d logins", n)
			}
			if _, err := os.Stat(a.base); !os.IsNotExist(err) {
				t.Fatalf("the env path exists on the host (%v)", err)
			}
		})
	}
}

// copyKey writes the cluster's accepted key to a new file with mode.
func copyKey(a *sshApp, mode os.FileMode) string {
	a.t.Helper()
	pem, err := os.ReadFile(a.cluster.KeyFile)
	if err != nil {
		a.t.Fatal(err)
	}
	path := filepath.Join(a.dir, "id_loose")
	if err := os.WriteFile(path, pem, mode); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		a.t.Fatal(err)
	}
	return path
}
