package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

// binarySSHBuild is the app's build step on the host: it writes VERSION, appends
// to the shared log, and with ref "slow" runs a long step whose process can
// be found by its unusual argument.
const binarySSHBuild = `set -eu
echo "$1" > VERSION
i=0
while [ $i -lt 5 ]; do echo "log line $i of $1" >> "$3/app.log"; i=$((i+1)); done
if [ "$2" = slow ]; then echo "slow build"; sleep 3179; fi
echo built
`

// binarySSHEnv is a shipbot config whose one env deploys over SSH to a real sshd.
type binarySSHEnv struct {
	*testEnv
	cluster *sshtest.Cluster
	remote  string // the app's path on the host
}

func newBinarySSHEnv(t *testing.T, knownHosts, keyFile string) *binarySSHEnv {
	t.Helper()
	c := sshtest.Start(t, 1)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "build.sh"), []byte(binarySSHBuild), 0o644); err != nil {
		t.Fatal(err)
	}
	if knownHosts == "" {
		knownHosts = c.KnownHosts
	}
	if keyFile == "" {
		keyFile = c.KeyFile
	}
	remote := filepath.Join(dir, "remote", "web")
	cfg := strings.NewReplacer("DIR", dir, "SRC", src, "REMOTE", remote, "HOST", c.Hosts[0].Addr, "USER", c.User,
		"KEYFILE", keyFile, "KNOWN", knownHosts).Replace(`bot:
  data_dir: DIR/var
  shutdown_timeout: 3s
chat:
  shell: {enabled: true, user: alice}
users:
  alice: {identities: ["shell:alice"], roles: [ops]}
roles:
  ops: {permissions: ["*"]}
apps:
  web:
    envs:
      prod:
        driver: ssh
        path: REMOTE
        keep_releases: 3
        fetch: {copy: SRC, ref: main}
        build: [["sh", "build.sh", "{{release}}", "{{ref}}", "{{shared_path}}"]]
        restart: [["true"]]
        step_timeout: 2m
        health:
          command: ["test", "-f", "{{current_path}}/VERSION"]
          retries: 1
        logs:
          command: ["tail", "-n", "{{lines}}", "{{shared_path}}/app.log"]
        ssh:
          hosts: ["HOST"]
          user: USER
          key_file: KEYFILE
          known_hosts: KNOWN
`)
	path := filepath.Join(dir, "shipbot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &binarySSHEnv{testEnv: &testEnv{t: t, dir: dir, config: path}, cluster: c, remote: remote}
}

func (e *binarySSHEnv) current() string {
	e.t.Helper()
	target, err := os.Readlink(filepath.Join(e.remote, "current"))
	if err != nil {
		e.t.Fatalf("current on the host: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.remote, target, "VERSION")); err != nil {
		e.t.Fatalf("current -> %s has no VERSION: %v", target, err)
	}
	return filepath.Base(target)
}

func TestBinarySSHDeployLogsAndChangedHostKey(t *testing.T) {
	t.Parallel()
	e := newBinarySSHEnv(t, "", "")
	p := e.startBot(nil)
	p.send("/deploy web prod")
	p.waitFor(cardState(1, "succeeded"))
	rel := e.current()
	if v, _ := os.ReadFile(filepath.Join(e.remote, "releases", rel, "VERSION")); strings.TrimSpace(string(v)) != rel {
		t.Fatalf("VERSION %q in release %s", v, rel)
	}
	p.send("/logs web prod 2")
	got := p.waitFor(`(?s)Logs of web/prod \(last 2 lines\).*?│ (log line 3 of \S+)\n.*?│ (log line 4 of \S+)`)
	if !strings.HasSuffix(got[2], rel) {
		t.Fatalf("logs %q", got)
	}
	p.closeInput()
	p.mustExit0()

	// The host now presents a key other than the pinned one.
	other, _, _ := sshtest.NewKey(t)
	known := filepath.Join(e.dir, "known_hosts_changed")
	if err := os.WriteFile(known, []byte(sshtest.KnownHostsLine(e.cluster.Hosts[0].Addr, other)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(e.config)
	changed := strings.Replace(string(cfg), e.cluster.KnownHosts, known, 1)
	if err := os.WriteFile(e.config, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "/deploy web prod\n"
	p2, _ := e.runScript(script)
	// Reading the host's releases is the first contact: the refusal comes
	// before any job exists, with the presented and the pinned fingerprint.
	p2.mustContain(`(?is)Refused.*host key.*presented.*SHA256:.*expects.*SHA256:`)
	if e.current() != rel {
		t.Fatal("current moved although the host key did not match")
	}
	if dirs, _ := os.ReadDir(filepath.Join(e.remote, "releases")); len(dirs) != 1 {
		t.Fatalf("%d releases on the host; the refused deploy must create none", len(dirs))
	}
	var denial *audit.Event
	for _, ev := range e.auditExport() {
		if ev.Kind == audit.KindDenial && ev.Command == "deploy" {
			ev := ev
			denial = &ev
		}
	}
	if denial == nil || !strings.Contains(denial.Outcome, "SHA256:") {
		t.Fatalf("no audit denial naming the fingerprint: %+v", denial)
	}
	e.mustVerify()
}

func TestBinarySSHKilledMidStepLeavesHostClean(t *testing.T) {
	t.Parallel()
	e := newBinarySSHEnv(t, "", "")
	p, _ := e.runScript("/deploy web prod\n")
	p.mustContain(cardState(1, "succeeded"))
	first := e.current()

	p = e.startBot(nil)
	p.send("/deploy web prod slow")
	p.waitFor(`slow build`)
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(exitTimeout)

	// The remote step ends without the bot: the PTY hangs up when the
	// connection drops, and timeout on the host is the second line.
	deadline := time.Now().Add(20 * time.Second)
	for exec.Command("pgrep", "-f", "sleep 3179").Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the killed bot's remote step still runs on the host")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if e.current() != first {
		t.Fatal("current moved during a build that never finished")
	}
	p2, _ := e.runScript("/jobs\n/deploy web prod\n")
	p2.mustContain(`\(job #2\)\n(?:[^─\n][^\n]*\n)*?  state: interrupted — lock still held\n`)
	p2.mustContain(`locked by alice`)
	e.mustVerify()
	if e.current() != first {
		t.Fatal("current changed")
	}
}

func TestBinaryHostsScanAndKeyPermissions(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	e := &testEnv{t: t, dir: t.TempDir()}
	code, out, errOut := e.cli("hosts", "scan", c.Hosts[0].Addr)
	if code != 0 {
		t.Fatalf("scan exit %d: %s", code, errOut)
	}
	key := base64.StdEncoding.EncodeToString(c.Hosts[0].HostKey.Marshal())
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(lines[0], key) {
		t.Fatalf("scan printed %q, want one line with the host's key", out)
	}
	if !strings.Contains(errOut, "SHA256:") {
		t.Fatalf("no fingerprint for the admin to compare: %q", errOut)
	}
	if code, _, _ := e.cli("hosts", "scan", "127.0.0.1:1"); code != 1 {
		t.Fatalf("scan of a closed port exited %d", code)
	}

	loose := filepath.Join(t.TempDir(), "id_loose")
	pem, _ := os.ReadFile(c.KeyFile)
	if err := os.WriteFile(loose, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	se := newBinarySSHEnv(t, "", loose)
	p, state := se.runScript("/help\n")
	if state.ExitCode() == 0 || !strings.Contains(p.errOut.String(), "ssh.key_file") {
		t.Fatalf("a group/world-readable key was accepted: exit %d, %s", state.ExitCode(), p.errOut)
	}
	if strings.Contains(p.out.String(), "shipbot commands") {
		t.Fatal("the bot answered chat before refusing its key")
	}
}
