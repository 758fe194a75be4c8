package main

// Expected conditions (a log file not written yet, a key the host refuses, a
// host that does not answer) are things a person can act on: the real
// binary answers them with what happened and where, never "internal error".

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

// noInternalError fails if the bot answered anything with "internal error".
func noInternalError(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "internal error") {
		t.Fatalf("an expected condition was answered with \"internal error\":\n%s", out)
	}
}

func TestE2ESSHConditionsAreNamed(t *testing.T) {
	t.Parallel()
	a := newSSHApp(t)

	// Nothing deployed yet: the log file does not exist on the host.
	p, st := a.runScript("/logs web prod\n")
	if st.ExitCode() != 0 {
		t.Fatalf("bot exited %v: %s", st, p.errOut)
	}
	p.mustContain(`(?m)^✖ Error\nthe logs command failed on ` + regexp.QuoteMeta(a.host.Addr) +
		` \(exit 1\): tail: cannot open '[^']*/shared/app\.log'[^\n]*; nothing was done\n`)
	noInternalError(t, p.out.String())

	// A key the host does not know.
	_, _, pem := sshtest.NewKey(t)
	a.keyFile = filepath.Join(a.dir, "id_other")
	if err := os.WriteFile(a.keyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	a.writeConfig()
	p, _ = a.runScript("/deploy web prod\n/releases web prod\n")
	refused := regexp.QuoteMeta(a.host.Addr) + ` refused shipbot's key for user ` + regexp.QuoteMeta(a.cluster.User) +
		`: add the public key of ssh\.key_file to ~` + regexp.QuoteMeta(a.cluster.User) + `/\.ssh/authorized_keys there; nothing was done`
	if n := len(regexp.MustCompile(refused).FindAllString(p.out.String(), -1)); n != 2 {
		t.Fatalf("%d refused-key answers, want 2 (deploy, releases):\n%s", n, p.out)
	}
	noInternalError(t, p.out.String())
	a.noReleasesDir()

	// The host is down.
	a.keyFile = a.cluster.KeyFile
	a.writeConfig()
	a.host.Stop()
	p, _ = a.runScript("/deploy web prod\n/logs web prod 1\n/status web prod\n")
	down := `cannot reach ` + regexp.QuoteMeta(a.host.Addr) + `: connection refused \(is sshd running, is the port right\?\)`
	if n := len(regexp.MustCompile(down+`; nothing was done`).FindAllString(p.out.String(), -1)); n != 2 {
		t.Fatalf("%d host-down answers, want 2 (deploy, logs):\n%s", n, p.out)
	}
	p.mustContain(`Status of web/prod\n(?:[^─\n][^\n]*\n)*?  │ [^\n]*` + down)
	noInternalError(t, p.out.String())
	a.mustVerify()
}
