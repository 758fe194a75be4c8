package main

// Lock expiry on the real binary: /lock --for, the env's lock.default_ttl,
// the reminder with its Extend and Unlock buttons, automatic release with
// an audit row and a notice, /locks.

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/audit"
)

func TestE2ELockExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.rewrite("default_ttl: 4h", "default_ttl: 8s")
	p := e.startBot(nil)

	// staging: a lock for 16 s (reminded 4 s before its end) that is
	// extended from the reminder, then unlocked from it.
	p.send("/lock demo staging --for 16s db migration")
	p.waitFor(`(?m)^⚠ Locked demo/staging\nreason: db migration\n  expires: in 16s \(`)
	p.send("/deploy demo staging")
	p.waitFor(`(?m)^✖ Refused\ndemo/staging is locked by alice since [^\n]*: db migration; expires [^\n]*\n`)

	// production: bob locks without --for; the env's default (8s here) applies,
	// reminded 2s before its end: a window no tick misses.
	p.send("/as bob")
	p.send("/lock demo production release freeze")
	p.waitFor(`(?m)^⚠ Locked demo/production\nreason: release freeze\n  expires: in 8s \(`)
	p.send("/locks")
	p.waitFor(`(?m)^• Locks\n  │ demo/production  by bob  release freeze  age \d+s  expires in \d+s \([^\n]*\)\n` +
		`  │ demo/staging  by alice  db migration  age \d+s  expires in \d+s \([^\n]*\)\n`)

	// production is reminded, then released on its own.
	p.waitFor(`── #(\d+) ──\n⚠ Lock on demo/production expires in \d+s [^\n]*\nbob, your lock \(release freeze\) is released then`)
	p.waitFor(`(?m)^✔ Lock on demo/production expired\nbob's lock \(release freeze\), taken [^\n]*, was released; deploys may run again\.\n`)

	// staging's reminder: Extend adds an hour.
	card := p.waitFor(`── #(\d+) ──\n⚠ Lock on demo/staging expires in \d+s [^\n]*\nalice, your lock \(db migration\) [^\n]*\n\[(\d+)a\] Extend 1h  \[(\d+)b\] Unlock\n`)
	if card[1] != card[2] || card[1] != card[3] {
		t.Fatalf("reminder #%s labels its buttons %sa/%sb", card[1], card[2], card[3])
	}
	// alice presses her own reminder.
	p.send("/as alice")
	p.send(card[1] + "a")
	p.waitFor(`(?m)^expires in 1h\S* \(`)
	p.send("/locks")
	p.waitFor(`(?m)^• Locks\n  │ demo/staging  by alice  db migration  age \d+s  expires in 1h\S* \([^\n]*\)\n(?:──|$)`)
	p.send(card[1] + "b")
	p.waitFor(`(?m)^was held by alice: db migration$`)
	p.send("/locks")
	p.waitFor(`(?m)^• Locks\nnothing is locked\n`)

	// Free again: a deploy runs.
	p.send("/deploy demo staging")
	p.waitFor(cardState(1, "succeeded"))
	p.closeInput()
	p.mustExit0()

	evs := e.auditExport()
	var expired, extended int
	for _, ev := range evs {
		if ev.Kind == audit.KindOutcome && ev.Actor == "scheduler" && ev.Command == "unlock" &&
			strings.HasPrefix(ev.Outcome, "lock expired (was held by bob since ") && strings.HasSuffix(ev.Outcome, ": release freeze)") {
			expired++
		}
		if ev.Kind == audit.KindOutcome && ev.Actor == "alice" && ev.Command == "extend" && strings.HasPrefix(ev.Outcome, "extended to ") {
			extended++
		}
	}
	if expired != 1 || extended != 1 {
		t.Fatalf("audit: %d expiry outcomes, %d extensions; want 1 and 1", expired, extended)
	}
	if n := len(regexp.MustCompile(`Lock on demo/production expired`).FindAllString(p.out.String(), -1)); n != 1 {
		t.Fatalf("%d expiry notices, want 1", n)
	}
	noInternalError(t, p.out.String())
	e.mustVerify()
}

// rewrite replaces old with new in the test's config.
func (e *testEnv) rewrite(old, new string) {
	e.t.Helper()
	raw, err := readFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.Contains(raw, old) {
		e.t.Fatalf("config lacks %q", old)
	}
	if err := writeFile(e.config, strings.Replace(raw, old, new, 1)); err != nil {
		e.t.Fatal(err)
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
