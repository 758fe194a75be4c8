package release_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// pipeHost runs scripts the way the SSH host does, on this machine: the
// command line `exec /bin/sh -c 'eval "$(head -c N)"'`, the script and then
// the artifact on stdin. damage, when set, rewrites the artifact on the way.
type pipeHost struct {
	*dirHost
	damage func([]byte)
}

var _ release.ScriptHost = (*pipeHost)(nil)

func (h *pipeHost) Open(context.Context) (release.Host, error) { return h, nil }
func (h *pipeHost) Remote() bool                               { return true }

func (h *pipeHost) RunScript(ctx context.Context, s release.Script, out func(string)) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `exec /bin/sh -c 'eval "$(head -c `+strconv.Itoa(len(s.Text))+`)"'`)
	w := release.NewLineWriter(8<<10, out)
	cmd.Stdout, cmd.Stderr = w, w
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// Like the SSH host: stdin stays open after the input until ctx ends.
	go func() {
		_, _ = io.WriteString(in, s.Text)
		switch {
		case s.Stdin == nil:
		case h.damage != nil:
			data, _ := io.ReadAll(s.Stdin)
			h.damage(data)
			_, _ = in.Write(data)
		default:
			_, _ = io.Copy(in, s.Stdin)
		}
	}()
	stop := context.AfterFunc(ctx, func() { in.Close() })
	defer stop()
	err = cmd.Wait()
	w.Close()
	return err
}

// An artifact that reaches the host altered is caught by the checksum the
// host computes, and nothing of it is unpacked or switched to.
func TestDamagedArtifactIsNeverUnpacked(t *testing.T) {
	t.Parallel()
	f, _ := artifactFixture(t, 2)
	f.mustDeploy("r1", "")
	f.runner.Hosts[1] = &pipeHost{dirHost: f.hosts[1], damage: func(b []byte) { b[len(b)/2] ^= 0xff }}
	_, rec, err := f.deploy("r2", "r1", "")
	if err == nil || !strings.Contains(err.Error(), "fetch on h2: the artifact reached h2 damaged: sha256 ") {
		t.Fatalf("err = %v\n%s", err, rec.output())
	}
	if !rec.has("fetch", "failed", "[h2]", "damaged") {
		t.Errorf("no failed fetch naming h2: %+v", rec.steps)
	}
	f.wantCurrent("r1")
	for _, b := range f.bases {
		if exists(filepath.Join(b, "releases", "r2")) {
			t.Errorf("%s: the damaged release was left behind", b)
		}
	}
	// The same host, undamaged, receives it on stdin and deploys.
	f.runner.Hosts[1] = &pipeHost{dirHost: f.hosts[1]}
	f.mustDeploy("r3", "r1")
	f.wantCurrent("r3")
}

// bashHost runs scripts with bash instead of /bin/sh (dash here), as on
// distributions whose /bin/sh is bash.
type bashHost struct{ *dirHost }

func (h *bashHost) Open(context.Context) (release.Host, error) { return h, nil }
func (h *bashHost) RunScript(ctx context.Context, s release.Script, out func(string)) error {
	return h.Run(ctx, "", []string{"bash", "-c", s.Text, "sh"}, out)
}

func TestScriptsRunUnderBash(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		if os.Getenv("SHIPBOT_REQUIRE_INTEGRATION") != "" {
			t.Fatal("bash is missing; the README test command needs it to prove the scripts under bash")
		}
		t.Skip("no bash")
	}
	f := newFixture(t, 2)
	for i, h := range f.hosts {
		f.runner.Hosts[i] = &bashHost{h}
	}
	f.mustDeploy("r1", "")
	f.mustDeploy("r2", "r1")
	res, rec, err := f.deploy("r3", "r2", "bad-health")
	if err != nil || !res.RolledBack || res.Release != "r2" {
		t.Fatalf("bad health under bash: %+v, %v\n%s", res, err, rec.output())
	}
	f.wantCurrent("r2")
	write(t, filepath.Join(f.bases[1], "fail-build"), "")
	if _, _, err := f.deploy("r4", "r2", ""); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("failing build under bash: %v", err)
	}
	f.wantCurrent("r2")
}

// On remote hosts a rollback is one session a host: each checks that the
// release is there and waits at a barrier; only when all passed does the
// bot let them switch, so a host missing the release still stops every host.
func TestRollbackInOneSessionWaitsForEveryHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.mustDeploy("r1", "")
	f.mustDeploy("r2", "r1")
	for i, h := range f.hosts {
		f.runner.Hosts[i] = &pipeHost{dirHost: h}
	}
	rec := &recorder{}
	res, err := f.runner.Rollback(context.Background(), deploy.RollbackRequest{To: "r1", From: "r2"}, rec)
	if err != nil || res.Release != "r1" {
		t.Fatalf("rollback: %+v, %v\n%s", res, err, rec.output())
	}
	f.wantCurrent("r1")
	for _, s := range []string{"check", "switch", "restart", "health"} {
		if ev, _ := rec.last(s); ev.state != deploy.StepDone {
			t.Errorf("step %s = %+v", s, ev)
		}
	}
	for _, b := range f.bases {
		if got := strings.Fields(readFile(t, filepath.Join(b, "restarts"))); got[len(got)-1] != "releases/r1" {
			t.Errorf("%s not restarted on r1: %v", b, got)
		}
	}

	// r2 is missing on h3 only: h1 and h2 wait at the barrier, then give up.
	if err := os.RemoveAll(filepath.Join(f.bases[2], "releases", "r2")); err != nil {
		t.Fatal(err)
	}
	rec = &recorder{}
	_, err = f.runner.Rollback(context.Background(), deploy.RollbackRequest{To: "r2", From: "r1"}, rec)
	if err == nil || !strings.Contains(err.Error(), "refused, current unchanged") || !strings.Contains(err.Error(), "does not exist on h3") {
		t.Fatalf("err = %v", err)
	}
	f.wantCurrent("r1")
	if _, ok := rec.last("switch"); ok {
		t.Errorf("a switch was reported although h3 lacks the release: %+v", rec.steps)
	}
}
