//go:build linux

package local_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/local"
)

// recorder is a deploy.ProcessRecorder that keeps what it was told.
type recorder struct {
	mu      sync.Mutex
	tokens  []string // recorded before a start, without a group
	started []deploy.StepProcess
	ended   []deploy.StepProcess
	fail    error
	seen    chan deploy.StepProcess
}

func (r *recorder) Started(p deploy.StepProcess) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if p.PGID == 0 {
		// The record made just before the start: only the token is known.
		r.tokens = append(r.tokens, p.Token)
		return nil
	}
	r.started = append(r.started, p)
	if r.seen != nil {
		r.seen <- p
	}
	return nil
}

func (r *recorder) Ended(p deploy.StepProcess) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, p)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A step's group is recorded while it runs and forgotten after; a child the
// step put in the background does not outlive the step.
func TestRunRecordsGroupAndKillsWhatTheStepLeft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := &recorder{}
	ctx := deploy.WithProcessRecorder(context.Background(), rec)
	var mu sync.Mutex
	var lines []string
	// The background sleep keeps nothing open, so Run returns at once.
	err := local.NewHost().Run(ctx, dir, []string{"sh", "-c", `sleep 60 >/dev/null 2>&1 & echo "child $!"; echo "env $SHIPBOT_STEP"`},
		func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.started) != 1 || len(rec.ended) != 1 || rec.started[0] != rec.ended[0] ||
		len(rec.tokens) != 1 || rec.tokens[0] != rec.started[0].Token {
		t.Fatalf("tokens %q, started %+v, ended %+v: want the token recorded before the start, the group after, then forgotten",
			rec.tokens, rec.started, rec.ended)
	}
	p := rec.started[0]
	var child int
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "child "); ok {
			child, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(l, "env "); ok && (v != p.Token || len(v) < 16) {
			t.Fatalf("the step's SHIPBOT_STEP is %q, the recorded token %q", v, p.Token)
		}
	}
	if child == 0 || p.PGID <= 1 {
		t.Fatalf("output %q, group %d", lines, p.PGID)
	}
	waitGone(t, child)
}

// A step whose group cannot be recorded does not run on unseen.
func TestRunStopsAStepItCannotRecord(t *testing.T) {
	t.Parallel()
	rec := &recorder{fail: errors.New("disk full")}
	ctx := deploy.WithProcessRecorder(context.Background(), rec)
	marker := t.TempDir() + "/ran"
	start := time.Now()
	err := local.NewHost().Run(ctx, "", []string{"sh", "-c", "sleep 5; touch " + marker}, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v, want the recording failure", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("the step ran to its end")
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the unrecorded step went on")
	}
}

// Pdeathsig: when the process that started a step dies, the step's first
// process dies with it. A helper process (this test binary re-executed)
// starts the step and is then killed with SIGKILL.
func TestStepDiesWithShipbot(t *testing.T) {
	if os.Getenv("SHIPBOT_TEST_PARENT") == "1" {
		rec := &recorder{seen: make(chan deploy.StepProcess, 1)}
		ctx := deploy.WithProcessRecorder(context.Background(), rec)
		go func() {
			p := <-rec.seen
			os.Stdout.WriteString("pgid " + strconv.Itoa(p.PGID) + " " + p.Token + "\n")
		}()
		_ = local.NewHost().Run(ctx, "", []string{"sh", "-c", "sleep 60 & sleep 60"}, func(string) {})
		os.Exit(0)
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStepDiesWithShipbot$")
	cmd.Env = append(os.Environ(), "SHIPBOT_TEST_PARENT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) != 3 || f[0] != "pgid" {
		t.Fatalf("helper said %q", buf[:n])
	}
	pgid, _ := strconv.Atoi(f[1])
	token := f[2]
	if pgid <= 1 {
		t.Fatalf("helper reported group %d", pgid) // never kill(-0): that is this test's own group
	}
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	// The group is recorded as soon as sh starts; wait until it has forked
	// both sleeps.
	deadline := time.Now().Add(5 * time.Second)
	for len(groupPIDs(t, pgid)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("group %d has %v, want sh and two sleeps", pgid, groupPIDs(t, pgid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	// The group leader (sh) gets Pdeathsig; its background sleep does not,
	// and is what recovery is for.
	waitGone(t, pgid)

	// A token that does not match leaves the group alone.
	n0, err := local.KillLeftovers(deploy.StepProcess{PGID: pgid, Token: "not-this-one"})
	if err != nil || n0 != 0 {
		t.Fatalf("KillLeftovers with a wrong token: %d, %v", n0, err)
	}
	if members := groupPIDs(t, pgid); len(members) == 0 {
		t.Fatal("the step's background child is already gone: the test proves nothing about KillLeftovers")
	}
	n1, err := local.KillLeftovers(deploy.StepProcess{PGID: pgid, Token: token})
	if err != nil || n1 == 0 {
		t.Fatalf("KillLeftovers: %d, %v", n1, err)
	}
	if members := groupPIDs(t, pgid); len(members) != 0 {
		t.Fatalf("processes %v of the group survive", members)
	}
}

func groupPIDs(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// Shipbot died after recording a step's token and before its group: the
// token alone finds the step's group.
func TestKillLeftoversByTokenAlone(t *testing.T) {
	t.Parallel()
	token := "tok-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60")
	cmd.Env = append(os.Environ(), "SHIPBOT_STEP="+token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for len(groupPIDs(t, pgid)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("group %d has %v", pgid, groupPIDs(t, pgid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, err := local.KillLeftovers(deploy.StepProcess{Token: token})
	if err != nil || n != 3 {
		t.Fatalf("KillLeftovers by token: %d, %v", n, err)
	}
	if left := groupPIDs(t, pgid); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
	if n, err := local.KillLeftovers(deploy.StepProcess{Token: "no-such-token"}); n != 0 || err != nil {
		t.Fatalf("unknown token: %d, %v", n, err)
	}
}
