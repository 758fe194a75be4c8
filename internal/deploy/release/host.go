// Package release runs a deploy.Recipe, Capistrano-style, on one or more
// Hosts: releases/<id>, shared/, and a current symlink switched atomically.
// The local driver gives it a Host that runs commands on this machine, the SSH
// driver one that runs them over SSH; the release logic exists once.
package release

import (
	"context"
	"strconv"
)

// Host runs argv commands on one machine (reads: status, logs, backups).
// Deploys, rollbacks and restarts need a ScriptHost, which runs a whole
// phase as one script. Implementations never pass argv through a shell
// unquoted: the local host execs argv directly, a remote host quotes each
// word for the remote shell.
type Host interface {
	// Name is how the host appears in progress and errors ("web1", "local").
	Name() string
	// Run executes argv in dir ("" = the default) and streams combined output
	// lines to out as they arrive. It returns when the command has exited; if
	// ctx ends first, the command is killed (really, also on remote hosts) and
	// ctx.Err() is returned. A non-zero exit is an *ExitError.
	Run(ctx context.Context, dir string, argv []string, out func(line string)) error
	// Close frees connections. The Host is not used after.
	Close() error
}

// Opener opens a Host for the duration of one job (so an SSH driver can reuse
// one connection per host for every step of a job).
type Opener interface {
	Open(ctx context.Context) (Host, error)
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Argv   []string
	Code   int
	Output string // last lines, for the error message
}

func (e *ExitError) Error() string {
	name := ""
	if len(e.Argv) > 0 {
		name = e.Argv[0]
	}
	return name + ": exit status " + strconv.Itoa(e.Code)
}
