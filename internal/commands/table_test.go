package commands

import (
	"slices"
	"strings"
	"testing"
)

// The table is the one place a command is written: each once, each with its
// handler, a usage that starts with its name, and a permission unless it is
// one of the two every configured person may use.
func TestTableIsComplete(t *testing.T) {
	open := []string{"help", "whoami"}
	seen := map[string]bool{}
	for _, sp := range table {
		if seen[sp.name] {
			t.Errorf("%s is in the table twice", sp.name)
		}
		seen[sp.name] = true
		if sp.run == nil {
			t.Errorf("%s has no handler", sp.name)
		}
		if !strings.HasPrefix(sp.usage, "/"+sp.name) || sp.help == "" {
			t.Errorf("%s: usage %q, help %q", sp.name, sp.usage, sp.help)
		}
		if (sp.perm == "") != (sp.check == checkNone) || (sp.check == checkNone) != slices.Contains(open, sp.name) {
			t.Errorf("%s: permission %q checked as %d", sp.name, sp.perm, sp.check)
		}
		if sp.mutating && (sp.check == checkSome || sp.check == checkNone) {
			t.Errorf("%s changes things on a list permission", sp.name)
		}
		for _, f := range sp.flags {
			if !strings.Contains(sp.usage, f.name) {
				t.Errorf("%s: flag %s is not in its usage %q", sp.name, f.name, sp.usage)
			}
		}
		for platform, to := range sp.bare {
			if !Known(to) || platform == "" {
				t.Errorf("%s: bare alias %s -> %s", sp.name, platform, to)
			}
		}
	}
	if !slices.Equal(PermissionVerbs(), []string{"approve", "audit", "backup", "cancel", "deploy", "lock", "logs", "restore", "rollback", "start", "status", "stop", "view"}) {
		t.Errorf("verbs %v", PermissionVerbs())
	}
}

// Each command parses what its usage shows and nothing it does not.
func TestUsageParses(t *testing.T) {
	good := map[string]string{
		"help": "/help", "whoami": "/whoami", "apps": "/apps", "deploy": "/deploy a b v1 --plan --redeploy",
		"rollback": "/rollback a b r1 --with-db", "releases": "/releases a b", "status": "/status a b",
		"logs": "/logs a b 10 --build", "stop": "/stop a b", "start": "/start a b", "backup": "/backup verify a b x1",
		"backups": "/backups a b", "restore": "/restore a b x1", "jobs": "/jobs", "job": "/job #3", "cancel": "/cancel 3",
		"lock": "/lock a b --for 2h db -- work", "unlock": "/unlock a b", "extend": "/extend a b 30m", "locks": "/locks",
		"pending": "/pending", "approve": "/approve abcdefghijklmnopqrstuvwx", "deny": "/deny abcdefghijklmnopqrstuvwx",
		"audit": "/audit 5 app=a user=u", "stats": "/stats a b 30d",
	}
	for _, sp := range table {
		line, ok := good[sp.name]
		if !ok {
			t.Errorf("no example for %s", sp.name)
			continue
		}
		if c, err := Parse(line); err != nil || c.Name != sp.name {
			t.Errorf("%q: %+v, %v", line, c, err)
		}
		if _, err := Parse(line + " extra --nope"); err == nil && !sp.freeText {
			t.Errorf("%q with extra words parsed", line)
		}
	}
}

func TestMenuAndBare(t *testing.T) {
	if Bare("telegram", "start") != "help" || Bare("slack", "start") != "start" || Bare("telegram", "deploy") != "deploy" {
		t.Error("bare aliases")
	}
	for _, c := range Menu("telegram") {
		if c.Name == "start" {
			t.Error("/start is in Telegram's menu")
		}
	}
	if n := len(Menu("slack")); n != len(table) {
		t.Errorf("slack menu has %d of %d", n, len(table))
	}
}
