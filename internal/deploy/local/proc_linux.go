//go:build linux

package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// stepAttr puts a step in its own process group, so one kill reaches
// everything it started, and has the kernel SIGKILL the step's first process
// when shipbot dies (kill -9, OOM killer), which no handler in shipbot can
// do. Pdeathsig fires when the thread that started the child exits; the Go
// runtime only ends threads of goroutines that exit while locked to their
// thread, which shipbot never does around a step.
//
// A phase script gets SIGTERM instead: SIGKILL would end only the script's
// shell and leave the step it runs (a grandchild of shipbot) going until a
// restart's recovery; the script's trap passes the TERM on to that step.
func stepAttr(script bool) *syscall.SysProcAttr {
	if script {
		return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	}
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillLeftovers stops the process group p of a step a previous run of shipbot
// started and did not see end. Pdeathsig killed the step's first process
// with shipbot, but its children (a build script's sleep, a compiler) were
// re-parented and run on. A group id is reused once the group is gone, so
// the group is killed only while one of its members still carries p's token
// in its environment. It returns how many of the group's processes it found,
// and waits (up to five seconds) for them to be gone.
func KillLeftovers(p deploy.StepProcess) (int, error) {
	if p.Token == "" || p.PGID == 1 || p.PGID < 0 {
		return 0, fmt.Errorf("step process group %d: nothing to look for", p.PGID)
	}
	if p.PGID == 0 {
		// Shipbot died between recording the step and learning its group:
		// the token alone says which processes are the step's.
		g, err := markedGroup([]byte(stepEnv + "=" + p.Token))
		if err != nil || g == 0 {
			return 0, err
		}
		p.PGID = g
	}
	members, ours, err := groupMembers(p.PGID, []byte(stepEnv+"="+p.Token))
	if err != nil || !ours {
		return 0, err
	}
	if err := syscall.Kill(-p.PGID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Errorf("killing step process group %d: %w", p.PGID, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, _, err := groupMembers(p.PGID, nil)
		if err != nil {
			return len(members), err
		}
		if len(left) == 0 {
			return len(members), nil
		}
		if time.Now().After(deadline) {
			return len(members), fmt.Errorf("step process group %d: %d process(es) still there after SIGKILL", p.PGID, len(left))
		}
		time.Sleep(20 * time.Millisecond) // polling the kernel's process table, not waiting for our own state
	}
}

// markedGroup is the process group of a live process carrying marker in its
// environment, or 0.
func markedGroup(marker []byte) (int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, err
	}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + n + "/environ")
		if err != nil || !hasEntry(env, marker) {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g > 1 {
			return g, nil
		}
	}
	return 0, nil
}

func hasEntry(env, marker []byte) bool {
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.Equal(kv, marker) {
			return true
		}
	}
	return false
}

// groupMembers lists the live processes of group pgid from /proc, and
// whether one of them has marker as an environment entry (marker nil: not
// looked at). Zombies count as gone: they run nothing and their parent
// reaps them.
func groupMembers(pgid int, marker []byte) (pids []int, marked bool, err error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, false, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, false, err
	}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + n + "/stat")
		if err != nil {
			continue // gone since the listing
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces and
		// parentheses, so fields are counted after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err != nil || g != pgid {
			continue
		}
		pids = append(pids, pid)
		if marker != nil && !marked {
			env, err := os.ReadFile("/proc/" + n + "/environ")
			marked = err == nil && hasEntry(env, marker)
		}
	}
	return pids, marked, nil
}
