package main

// The README's terminal tour, run verbatim: the commands are read from
// README.md itself, typed in its order into the real binary on the example
// config, and each outcome the README claims is checked. A change to the
// tour's commands fails here until the claims below are updated with it.

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// tourStep is one README line and what the README says it does.
type tourStep struct {
	command string
	// claims are waited for in order, each after the previous match.
	claims []string
}

var tourSteps = []tourStep{
	{"/help", []string{`── #1 ──\n• shipbot commands\n(?:/[^\n]*\n)*?/lock APP ENV \[--for 2h\] REASON… — [^\n]*\n(?:/[^\n]*\n)*?/locks — `}},
	{"/whoami", []string{`── #2 ──\n• You are alice\n  identity: shell:alice\n  roles: developer\n  permissions: [^\n]*deploy:staging`}},
	{"/logs demo staging", []string{`── #3 ──\n✖ Error\nno log file at /\S+/var/deploy/demo/staging/shared/app\.log on local yet[^\n]*\n`}},
	{"/deploy demo staging", []string{`── #4 ──\n• Deploy demo → staging \(job #1\)\n`, cardState(1, "succeeded")}},
	{"/logs demo staging", []string{`── #5 ──\n• Logs of demo/staging \(last line\)\n  │ \S+ demo started release \S+ \(ref main\)\n`}},
	{"/deploy demo production --plan", []string{`── #6 ──\n• Plan: deploy demo → production \(nothing runs\)\n  from: -\n  to: \S+\n  hosts: local\n  lock: free\n`}},
	{"/deploy demo production", []string{`── #7 ──\n⚠ Deploy demo → production \(job #2\)\n(?:[^─\n][^\n]*\n)*?\[7a\] Approve  \[7b\] Deny\n`}},
	{"7a", []string{`(?m)^! you requested this; someone else must approve it$`}},
	{"/as bob", []string{`(?m)^you are now bob$`}},
	{"7a", []string{`(?m)^Approved job #2$`, cardState(2, "succeeded")}},
	{"/as alice", []string{`(?m)^you are now alice$`}},
	{"/deploy demo staging v2", []string{`── #8 ──\n• Deploy demo → staging \(job #3\)\n  state: queued\n  ref: v2\n`, cardState(3, "succeeded")}},
	{"/releases demo staging", []string{`── #9 ──\n• Releases of demo/staging\n  │ \* \S+  ref=v2  by=alice  [^\n]*  live\n  │   \S+  ref=main  by=alice  [^\n]*  superseded\n`}},
	{"/rollback demo staging", []string{`── #10 ──\n• Rollback demo → staging \(job #4\)\n`, cardState(4, "succeeded")}},
	{"/backup demo staging", []string{`── #11 ──\n• Backup demo → staging \(job #5\)\n`, `\(job #5\)\nbackup (\S+): 1 files, [^\n]*\n  state: succeeded\n`}},
	{"/backups demo staging", []string{`── #12 ──\n• Backups of demo/staging\n  │ (\S+)  [^\n]*  manual by alice  ok\n`}},
	{"/restore demo staging ID", []string{`── #13 ──\n⚠ Restore demo → staging \(job #6\)\n(?:[^─\n][^\n]*\n)*?\[13a\] Approve  \[13b\] Deny\n`}},
	{"/as bob", []string{`(?m)^you are now bob$`}},
	{"13a", []string{`(?m)^Approved job #6$`, cardState(6, "succeeded")}},
	{"/lock demo staging --for 2h db migration", []string{`── #14 ──\n⚠ Locked demo/staging\nreason: db migration\n  expires: in 2h \(`}},
	{"/deploy demo staging", []string{`── #15 ──\n✖ Refused\ndemo/staging is locked by bob since [^\n]*\(manual lock\): db migration; expires `}},
	{"/locks", []string{`── #16 ──\n• Locks\n  │ demo/staging  by bob  db migration  age \d+s  expires in (?:2h|1h59m\d+s) \(`}},
	{"/unlock demo staging", []string{`── #17 ──\n✔ Unlocked demo/staging\nwas held by bob: db migration\n`}},
	{"/audit 10", []string{`── #18 ──\n• Audit \(last 10\)\n(?:  │ [^\n]*\n){10}`}},
}

// readmeTour returns the commands of the README's tour: the first code
// block after "## Try it in two minutes", each line up to its first run
// of two spaces.
func readmeTour(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "\n## Try it in two minutes\n")
	if !ok {
		t.Fatal(`README.md has no "## Try it in two minutes" section`)
	}
	_, block, ok := strings.Cut(after, "\n```\n")
	if !ok {
		t.Fatal("the tour section has no code block")
	}
	block, _, _ = strings.Cut(block, "\n```")
	var cmds []string
	for _, line := range strings.Split(block, "\n") {
		cmd, _, _ := strings.Cut(line, "  ")
		if cmd = strings.TrimSpace(cmd); cmd != "" {
			cmds = append(cmds, cmd)
		}
	}
	return cmds
}

func TestE2EReadmeTour(t *testing.T) {
	t.Parallel()
	cmds := readmeTour(t)
	var want []string
	for _, s := range tourSteps {
		want = append(want, s.command)
	}
	if strings.Join(cmds, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the README tour is\n%s\n\nbut this test checks\n%s\n\nupdate tourSteps to what the README now claims",
			strings.Join(cmds, "\n"), strings.Join(want, "\n"))
	}

	e := newEnv(t, "")
	p := e.startBot(nil)
	backup := ""
	for i, s := range tourSteps {
		line := s.command
		if strings.HasSuffix(line, " ID") {
			if backup == "" {
				t.Fatalf("step %d (%s) needs a backup id and none was shown", i+1, line)
			}
			line = strings.TrimSuffix(line, "ID") + backup
		}
		p.send(line)
		for _, claim := range s.claims {
			m := p.waitFor(claim)
			if len(m) > 1 && strings.HasPrefix(s.command, "/backup") {
				if backup != "" && backup != m[1] {
					t.Fatalf("/backups lists %s, the backup card said %s", m[1], backup)
				}
				backup = m[1]
			}
		}
	}
	p.closeInput()
	p.mustExit0()

	out := p.out.String()
	noInternalError(t, out)
	// The tour's first staging release is live again after the rollback.
	rels := regexp.MustCompile(`\(job #1\)\n(?:[^─\n][^\n]*\n)*?  release: (\S+)\n`).FindStringSubmatch(out)
	if rels == nil || e.currentRelease("staging") != rels[1] {
		t.Fatalf("staging current is %s, want the first release %v", e.currentRelease("staging"), rels)
	}
	e.currentRelease("production")
	e.mustVerify()
}
