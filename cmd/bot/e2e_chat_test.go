package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

// A piped session deploys staging for real and exits 0 once the job is done.
func TestE2EScriptedDeploy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p, st := e.runScript("/deploy demo staging\n")
	if st.ExitCode() != 0 {
		t.Fatalf("exit %v, stderr: %s", st, p.errOut)
	}
	release := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardState(1, "succeeded"))
	if got := e.currentRelease("staging"); got != release {
		t.Fatalf("current is %s, the job deployed %s", got, release)
	}
	running, err := os.ReadFile(filepath.Join(e.envPath("staging"), "shared", "running"))
	if err != nil || strings.TrimSpace(string(running)) != release {
		t.Fatalf("shared/running = %q (%v), want %s: the restart step did not run", running, err, release)
	}
	e.mustVerify()
}

// Four eyes: the requester cannot approve, a lead can, and a used approval
// does nothing the second time. Buttons are labelled per card ("1a").
func TestE2EFourEyesApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p := e.startBot(nil)

	p.send("/deploy demo production")
	approve := p.waitFor(cardLine(1, `\[(1a)\] Approve  \[1b\] Deny`))[1]
	id := p.mustContain(`Approval id: ([a-z2-7]{24})`)[1]
	p.send(approve)
	p.waitFor(`(?m)^! you requested this; someone else must approve it$`)

	p.send("/as bob")
	p.waitFor(`(?m)^you are now bob$`)
	p.send(approve)
	p.waitFor(`(?m)^Approved job #1$`)
	p.waitFor(cardState(1, "succeeded") + `(?:[^─\n][^\n]*\n)*?  approved by: bob\n`)

	// The finished card has no buttons left to press; the approval itself
	// is spent too.
	p.send(approve)
	p.waitFor(`(?m)^! no button \[1a\]$`)
	p.send("/approve " + id)
	p.waitFor(`(?m)^approval \w+ was already approved by bob$`)
	p.closeInput()
	p.mustExit0()

	if rs := e.releaseDirs("production"); len(rs) != 1 {
		t.Fatalf("production releases = %v, want exactly one", rs)
	}
	e.currentRelease("production")

	evs := e.auditExport()
	var selfApproval, approvals int
	for _, ev := range evs {
		if ev.Kind == audit.KindDenial && ev.Actor == "alice" && strings.HasPrefix(ev.Outcome, "self-approval") {
			selfApproval++
		}
		if ev.Kind == audit.KindIntent && ev.Command == "approve" && ev.Actor == "bob" {
			approvals++
		}
	}
	if selfApproval != 1 || approvals != 1 {
		t.Fatalf("audit: %d self-approval denials, %d approvals by bob; want 1 and 1", selfApproval, approvals)
	}
	e.mustVerify()
}

// Rollback puts the first release live again; /releases lists both.
func TestE2ERollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p := e.startBot(nil)

	p.send("/deploy demo staging")
	first := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardState(1, "succeeded"))
	p.send("/deploy demo staging")
	second := p.waitFor(cardRelease(2))[1]
	p.waitFor(cardState(2, "succeeded"))
	if got := e.currentRelease("staging"); got != second {
		t.Fatalf("after two deploys current is %s, want %s", got, second)
	}

	p.send("/rollback demo staging")
	p.waitFor(`Rollback demo → staging ` + cardState(3, "succeeded"))
	if got := e.currentRelease("staging"); got != first {
		t.Fatalf("after rollback current is %s, want the first release %s", got, first)
	}

	p.send("/releases demo staging")
	list := p.waitFor(`Releases of demo/staging\n((?:  │ [^\n]*\n)+)`)[1]
	if !regexp.MustCompile(`│ \* ` + first + `\b`).MatchString(list) {
		t.Errorf("releases do not mark %s current:\n%s", first, list)
	}
	if !regexp.MustCompile(`│   ` + second + `\b`).MatchString(list) {
		t.Errorf("releases do not list %s as not current:\n%s", second, list)
	}
	if n := strings.Count(list, " live\n"); n != 1 || !regexp.MustCompile(`│ \* `+first+`\b[^\n]* live\n`).MatchString(list) {
		t.Errorf("releases mark %d releases live, want only %s:\n%s", n, first, list)
	}
	p.closeInput()
	p.mustExit0()
	e.mustVerify()
}

// A manual lock stops others' deploys; only the holder or lock:force lifts it.
func TestE2ELockUnlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p, st := e.runScript(strings.Join([]string{
		"/lock demo staging maintenance",
		"/as bob",
		"/deploy demo staging",
		"/as carol",
		"/unlock demo staging",
		"/as bob",
		"/unlock demo staging",
		"/deploy demo staging",
	}, "\n") + "\n")
	if st.ExitCode() != 0 {
		t.Fatalf("exit %v, stderr: %s", st, p.errOut)
	}
	p.waitFor(`⚠ Locked demo/staging\nreason: maintenance\n`)
	p.waitFor(`✖ Refused\ndemo/staging is locked by alice since [^\n]*: maintenance\n`)
	p.waitFor(`✖ Refused\npermission denied: you need lock:staging \(or lock:demo/staging\)\n`)
	p.waitFor(`✔ Unlocked demo/staging\nwas held by alice: maintenance\n`)
	p.waitFor(cardState(1, "succeeded"))
	if strings.Contains(p.out.String(), "(job #2)") {
		t.Fatal("a job was created for the refused deploy")
	}
	e.currentRelease("staging")

	var lockEvents []string
	for _, ev := range e.auditExport() {
		if ev.Command == "lock" || ev.Command == "unlock" || ev.Kind == audit.KindDenial {
			lockEvents = append(lockEvents, string(ev.Kind)+" "+ev.Actor+" "+ev.Command)
		}
	}
	want := []string{
		"intent alice lock", "outcome alice lock",
		"denial bob deploy",
		"denial carol unlock",
		"intent bob unlock", "outcome bob unlock",
	}
	if !slices.Equal(lockEvents, want) {
		t.Fatalf("lock audit trail = %q, want %q", lockEvents, want)
	}
	e.mustVerify()
}

// Bad input gets a one-line refusal, creates no job and leaves a denial.
func TestE2EBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	bad := []struct{ line, outcome string }{
		{"/frobnicate", "unknown command"},
		{"/deploy nosuchapp staging", `unknown app: unknown app "nosuchapp"`},
		{"/deploy demo staging a;b", `"a;b" is not allowed`},
		{"/deploy demo staging $(id)", `"$(id)" is not allowed`},
		{"/deploy demo staging --force", `unknown option "--force"`},
	}
	var script strings.Builder
	for _, b := range bad {
		script.WriteString(b.line + "\n")
	}
	script.WriteString("/jobs\n")
	p, st := e.runScript(script.String())
	if st.ExitCode() != 0 {
		t.Fatalf("exit %v, stderr: %s", st, p.errOut)
	}

	msgs := messages(p.out.String())
	if len(msgs) != len(bad)+1 {
		t.Fatalf("%d messages for %d commands:\n%s", len(msgs), len(bad)+1, p.out)
	}
	for i, b := range bad {
		lines := strings.Split(strings.TrimSuffix(msgs[i], "\n"), "\n")
		if len(lines) != 2 || lines[0] != "✖ Refused" {
			t.Errorf("%q: want a one-line refusal, got:\n%s", b.line, msgs[i])
		}
	}
	if !strings.Contains(msgs[len(bad)], "no jobs yet") {
		t.Errorf("/jobs after bad input: %s", msgs[len(bad)])
	}
	if rs := e.releaseDirs("staging"); len(rs) != 0 {
		t.Errorf("releases on disk after bad input: %v", rs)
	}

	var denials []audit.Event
	for _, ev := range e.auditExport() {
		switch {
		case ev.Kind == audit.KindDenial:
			denials = append(denials, ev)
		case ev.JobID != 0 || ev.Command == "deploy":
			t.Errorf("bad input reached the engine: %+v", ev)
		}
	}
	if len(denials) != len(bad) {
		t.Fatalf("%d denials in the audit log, want %d: %+v", len(denials), len(bad), denials)
	}
	for i, b := range bad {
		if denials[i].Decision != "denied" || !strings.Contains(denials[i].Outcome, b.outcome) {
			t.Errorf("%q: denial %q, want it to contain %q", b.line, denials[i].Outcome, b.outcome)
		}
	}
	e.mustVerify()
}

// A failed health check switches back; a failed build leaves no release.
func TestE2EBadHealthAndBadBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p := e.startBot(nil)

	p.send("/deploy demo staging")
	good := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardState(1, "succeeded"))

	p.send("/deploy demo staging bad-health")
	p.waitFor(cardState(2, "rolled back (health check failed)"))
	if got := e.currentRelease("staging"); got != good {
		t.Fatalf("after a failed health check current is %s, want %s", got, good)
	}

	p.send("/deploy demo staging bad-build")
	broken := p.waitFor(cardRelease(3))[1]
	p.waitFor(cardState(3, "failed"))
	if _, err := os.Stat(filepath.Join(e.envPath("staging"), "releases", broken)); !os.IsNotExist(err) {
		t.Fatalf("release %s of the failed build is still on disk (stat: %v)", broken, err)
	}
	if got := e.currentRelease("staging"); got != good {
		t.Fatalf("after a failed build current is %s, want %s", got, good)
	}
	p.closeInput()
	p.mustExit0()

	states := map[int64]string{}
	evs := e.auditExport()
	for id := int64(1); id <= 3; id++ {
		outs := outcomesOf(evs, jobIntent(t, evs, id).Seq)
		if len(outs) != 1 {
			t.Fatalf("job #%d has %d outcomes", id, len(outs))
		}
		states[id], _, _ = strings.Cut(outs[0].Outcome, ":")
	}
	if states[1] != "succeeded" || states[2] != "rolled_back" || states[3] != "failed" {
		t.Fatalf("job outcomes = %v", states)
	}
	e.mustVerify()
}

// /cancel stops a slow build within seconds and frees the lock.
func TestE2ECancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p := e.startBot(nil)

	p.send("/deploy demo staging slow")
	release := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardLine(1, `  \[>\] build \(running\)`))
	asked := time.Now()
	p.send("/cancel 1")
	p.waitFor(`Cancelling job #1\n`)
	p.waitFor(cardState(1, "cancelled"))
	if took := time.Since(asked); took > 5*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	if _, err := os.Stat(filepath.Join(e.envPath("staging"), "releases", release)); !os.IsNotExist(err) {
		t.Errorf("cancelled release %s is still on disk (stat: %v)", release, err)
	}

	p.send("/deploy demo staging")
	next := p.waitFor(cardRelease(2))[1]
	p.waitFor(cardState(2, "succeeded"))
	p.closeInput()
	p.mustExit0()
	if got := e.currentRelease("staging"); got != next {
		t.Errorf("current is %s, want job #2's release %s", got, next)
	}
	e.mustVerify()
}
