package api

import (
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Every field is checked before it is joined into a command line, so no
// value can add a word, a flag or a second command.
func TestCommandLine(t *testing.T) {
	good := map[JobRequest]string{
		{Action: "deploy", App: "web", Env: "staging"}:                      "/deploy web staging",
		{Action: "deploy", App: "web", Env: "staging", Ref: "v1.2"}:         "/deploy web staging v1.2",
		{Action: "rollback", App: "web", Env: "prod", Release: "20261122a"}: "/rollback web prod 20261122a",
	}
	for req, want := range good {
		if got, err := commandLine(req); err != nil || got != want {
			t.Errorf("%+v: %q %v, want %q", req, got, err, want)
		}
	}
	bad := []JobRequest{
		{Action: "lock", App: "web", Env: "staging"},
		{Action: "deploy", App: "web staging", Env: "prod"},
		{Action: "deploy", App: "web", Env: "staging\n/approve x"},
		{Action: "deploy", App: "web", Env: "staging", Ref: "v1 --with-db"},
		{Action: "deploy", App: "web", Env: "staging", Ref: "--redeploy"},
		{Action: "deploy", App: "web", Env: "staging", Release: "r1"},
		{Action: "rollback", App: "web", Env: "staging", Ref: "main"},
		{Action: "rollback", App: "web", Env: "staging", Release: "--with-db"},
		{Action: "deploy", App: "", Env: "staging"},
	}
	for _, req := range bad {
		if got, err := commandLine(req); err == nil {
			t.Errorf("%+v passed as %q", req, got)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%+v: empty error", req)
		}
	}
}

// A job's view names each kind of target in its own field: a rollback's
// target is never shown as a release it built, a backup never as a release.
func TestJobViewSeparatesTargets(t *testing.T) {
	cases := []struct {
		j    deploy.Job
		want [3]string // release, rollback_to, backup
	}{
		{deploy.Job{Action: deploy.ActionDeploy, Release: "r2", FromRelease: "r1"}, [3]string{"r2", "", ""}},
		{deploy.Job{Action: deploy.ActionRollback, RollbackTo: "r1", FromRelease: "r2"}, [3]string{"", "r1", ""}},
		{deploy.Job{Action: deploy.ActionRestore, Backup: "b1", BackupID: "b2"}, [3]string{"", "", "b1"}},
	}
	for _, c := range cases {
		v := jobView(&c.j)
		if got := [3]string{v.Release, v.RollbackTo, v.Backup}; got != c.want {
			t.Errorf("%s: %v, want %v", c.j.Action, got, c.want)
		}
	}
}
