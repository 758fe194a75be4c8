package main

// SIGHUP on the real binary: a valid new config applies to the next
// request and the next job while a running job keeps its recipe; an
// invalid one is refused with a log line and an admin-chat notice, and the
// running config stays.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

const buildLine = `        - ["sh", "build.sh", "{{release}}", "{{ref}}"]` + "\n"

func TestE2EReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	gate := filepath.Join(e.dir, "gate")
	e.rewrite(buildLine, buildLine+`        - ["sh", "-c", "echo recipe A; while [ ! -e `+gate+` ]; do sleep 0.1; done"]`+"\n")
	e.appendConfig("pipelines:\n  admin_chat: \"shell:terminal\"\n")
	p := e.startBot(nil)

	p.send("/lock demo production release freeze")
	p.waitFor(`(?m)^✖ Refused\npermission denied[^\n]*lock[^\n]*\n`)
	p.send("/deploy demo staging")
	p.waitFor(cardLine(1, `  │ recipe A`))

	// A valid config: alice's role may now lock production, and the build
	// says B instead of waiting.
	e.rewrite(`"lock:staging"`, `"lock:staging", "lock:production"`)
	e.rewrite(`echo recipe A; while [ ! -e `+gate+` ]; do sleep 0.1; done`, `echo recipe B`)
	p.hup()
	p.waitFor(`(?m)^✔ Config reloaded\nusers, roles and apps apply from now on; running jobs keep the recipe they started with\n`)
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if first := p.waitFor(finishedCard(1))[0]; !strings.Contains(first, "recipe A") || strings.Contains(first, "recipe B") {
		t.Fatalf("the running job changed recipe:\n%s", first)
	}
	p.send("/lock demo production release freeze")
	p.waitFor(`(?m)^⚠ Locked demo/production\n`)
	p.send("/unlock demo production")
	p.waitFor(`(?m)^✔ Unlocked demo/production\n`)
	p.send("/deploy demo staging")
	if card := p.waitFor(finishedCard(2))[0]; !strings.Contains(card, "│ recipe B\n") {
		t.Fatalf("the job after the reload did not get the new recipe:\n%s", card)
	}

	// An invalid config: refused, and everything goes on as before.
	e.rewrite("  job_timeout: 30m\n", "  job_timeout: 30m\n  job_timout: 1h\n")
	p.hup()
	p.waitFor(`(?m)^✖ Config reload refused\n[^\n]*shipbot\.yaml is not valid; shipbot keeps running with the config it had\.\n[^\n]*shipbot\.yaml:\d+: bot\.job_timout: unknown key`)
	p.send("/lock demo production still allowed")
	p.waitFor(`(?m)^⚠ Locked demo/production\n`)
	p.send("/deploy demo staging")
	if card := p.waitFor(finishedCard(3))[0]; !strings.Contains(card, "│ recipe B\n") {
		t.Fatalf("the refused reload changed the recipe:\n%s", card)
	}
	p.closeInput()
	p.mustExit0()

	logText, err := os.ReadFile(filepath.Join(e.dir, "var", "shipbot.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`msg="config reloaded"`, `msg="config reload refused: the running config stays"`} {
		if n := strings.Count(string(logText), want); n != 1 {
			t.Errorf("the log has %d lines %s, want 1", n, want)
		}
	}
	if regexp.MustCompile(`Config reloaded`).FindAllStringIndex(p.out.String(), -1) == nil {
		t.Fatal("no reload notice")
	}
	noInternalError(t, p.out.String())
	e.rewrite("  job_timout: 1h\n", "")
	e.mustVerify()
}

// finishedCard matches job's card, whole, once it has succeeded.
func finishedCard(job int) string {
	return cardState(job, "succeeded") + `(?:[^─\n][^\n]*\n)*`
}

// hup sends SIGHUP to the bot.
func (p *botProc) hup() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		p.t.Fatal(err)
	}
}

// appendConfig adds text at the end of the test's config.
func (e *testEnv) appendConfig(text string) {
	e.t.Helper()
	raw, err := readFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := writeFile(e.config, raw+text); err != nil {
		e.t.Fatal(err)
	}
}
