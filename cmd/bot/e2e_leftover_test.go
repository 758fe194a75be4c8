//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processesUnder lists the live processes whose working directory is inside
// dir, with their command lines: the steps of a bot whose data is there.
func processesUnder(t *testing.T, dir string) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || !strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
			continue // gone, or a zombie waiting for its parent
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out[pid] = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}

// kill -9 of the bot in the middle of a slow build: the build script dies
// with the bot (Pdeathsig), its sleep is re-parented and runs on, and the
// restarted bot stops it before it announces the job as interrupted.
func TestE2EKilledBotLeavesNoStepRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p := e.startBot(nil)
	p.send("/deploy demo staging slow")
	p.waitFor(cardLine(1, `  \[>\] build \(running\)`))

	var procs map[int]string
	deadline := time.Now().Add(outputTimeout)
	for {
		procs = processesUnder(t, e.dir)
		found := false
		for _, c := range procs {
			found = found || c == "sleep 30"
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build's sleep never showed up; processes under the test dir: %v", procs)
		}
		time.Sleep(20 * time.Millisecond) // polling the process table
	}
	t.Cleanup(func() {
		for pid := range processesUnder(t, e.dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(exitTimeout)
	// Without recovery this sleep would go on for 30 s: check it is there
	// now, so the test shows recovery (not luck) ends it.
	left := processesUnder(t, e.dir)
	sleeping := false
	for _, c := range left {
		sleeping = sleeping || c == "sleep 30"
	}
	if !sleeping {
		t.Fatalf("after kill -9 the build's sleep is already gone (%v); the test proves nothing", left)
	}
	for _, c := range left {
		if strings.HasPrefix(c, "sh build.sh") {
			// Pdeathsig delivers asynchronously; give it a moment.
			deadline := time.Now().Add(5 * time.Second)
			for {
				still := false
				for _, c := range processesUnder(t, e.dir) {
					still = still || strings.HasPrefix(c, "sh build.sh")
				}
				if !still {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the build script outlived the bot: no parent-death signal")
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	q := e.startBot(nil)
	q.waitFor(cardLine(1, `  state: interrupted[^\n]*`))
	// Recovery stopped them before the card was shown; the poll only absorbs
	// the kernel's reaping of what it killed.
	deadline = time.Now().Add(5 * time.Second)
	for {
		rest := processesUnder(t, e.dir)
		if len(rest) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("step processes still running after the restart: %v", rest)
		}
		time.Sleep(20 * time.Millisecond)
	}
	q.mustContain(`stopped 1 step process\(es\) the previous run left behind`)
	q.closeInput()
	q.mustExit0()
}
