//go:build !linux

package local

import (
	"syscall"

	"github.com/shipbot/shipbot/internal/deploy"
)

// stepAttr puts a step in its own process group, so one kill reaches
// everything it started. Only Linux can have the kernel kill a step when
// shipbot dies.
func stepAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// KillLeftovers needs Linux's /proc to tell a leftover step group from an
// unrelated group that reused its id; elsewhere it does not guess, and
// reports nothing found.
func KillLeftovers(deploy.StepProcess) (int, error) { return 0, nil }
