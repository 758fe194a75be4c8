package commands_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
)

// readPolicy adds to newEnv's people dave, who may see staging only, and
// zed, who has no role at all.
func readPolicy(e *env) {
	p := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"shell:alice"}, Roles: []string{"developer"}},
		"bob":   {Identities: []string{"shell:bob"}, Roles: []string{"lead"}},
		"dave":  {Identities: []string{"shell:dave"}, Roles: []string{"stager"}},
		"zed":   {Identities: []string{"shell:zed"}},
	}, map[string][]string{
		"developer": {"deploy:staging", "deploy:production", "status:*", "lock:staging"},
		"lead":      {"deploy:*", "approve:production", "lock:*"},
		"stager":    {"view:staging", "status:staging"},
	})
	e.d.SetAccess(p, commands.Catalog{"demo": {
		"staging":    {Driver: "fake", DefaultRef: "main"},
		"production": {Driver: "fake", Approval: deploy.ApprovalPolicy{Required: true, Roles: []string{"lead"}, TTL: time.Hour}},
	}})
}

// Every list command needs view; before, /jobs, /pending, /apps and /locks
// answered anyone the config knew, roles or not.
func TestListCommandsNeedView(t *testing.T) {
	e := newEnv(t)
	readPolicy(e)
	for _, cmd := range []string{"/jobs", "/pending", "/apps", "/locks"} {
		r := e.say("zed", cmd)
		if !r.Refused || !strings.Contains(e.sender.last().Text, "you need view") {
			t.Errorf("%s by a person with no role: refused=%v %q", cmd, r.Refused, e.sender.last().Text)
		}
		if d := e.lastDenial(t); d.Command != strings.TrimPrefix(cmd, "/") || d.Actor != "zed" {
			t.Errorf("%s: denial %+v", cmd, d)
		}
	}
	// A role that names no view grant keeps every env (configs from
	// before view existed work unchanged).
	if r := e.say("alice", "/jobs"); r.Refused {
		t.Fatalf("alice /jobs refused: %q", e.sender.last().Text)
	}
}

// A scoped view grant lists its envs only.
func TestListCommandsShowOnlyViewableEnvs(t *testing.T) {
	e := newEnv(t)
	readPolicy(e)
	ctx := context.Background()
	e.say("alice", "/deploy demo staging")
	e.say("alice", "/deploy demo production") // waits for approval
	e.say("bob", "/lock demo production db work")
	deadline := time.Now().Add(5 * time.Second)
	for {
		js, _ := e.store.Jobs(ctx, deploy.JobFilter{})
		if len(js) == 2 && !slices.ContainsFunc(js, func(j *deploy.Job) bool { return j.State == deploy.Queued || j.State == deploy.Running }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("jobs did not settle")
		}
		time.Sleep(5 * time.Millisecond)
	}
	show := func(user, cmd string) string {
		t.Helper()
		if r := e.say(user, cmd); r.Refused {
			t.Fatalf("%s %s refused: %q", user, cmd, e.sender.last().Text)
		}
		m := e.sender.last()
		return m.Text + "\n" + strings.Join(m.Code, "\n")
	}
	for _, cmd := range []string{"/jobs", "/apps"} {
		out := show("dave", cmd)
		if !strings.Contains(out, "demo/staging") || strings.Contains(out, "production") {
			t.Errorf("dave %s shows %q; want staging only", cmd, out)
		}
		if out := show("alice", cmd); !strings.Contains(out, "production") {
			t.Errorf("alice %s shows %q; want production too", cmd, out)
		}
	}
	if out := show("dave", "/pending"); !strings.Contains(out, "nothing waits") {
		t.Errorf("dave /pending shows %q", out)
	}
	if out := show("bob", "/pending"); !strings.Contains(out, "demo/production") {
		t.Errorf("bob /pending shows %q", out)
	}
	if out := show("dave", "/locks"); strings.Contains(out, "production") {
		t.Errorf("dave /locks shows %q", out)
	}
	if out := show("bob", "/locks"); !strings.Contains(out, "demo/production") {
		t.Errorf("bob /locks shows %q", out)
	}
}

// lock:force is a token of its own: an env named "force" is not granted
// lock by it, nor one named "read" audit by audit:read.
func TestSpecialPermissionsAreNotScopes(t *testing.T) {
	p := commands.NewPolicy(map[string]commands.UserSpec{
		"eve": {Identities: []string{"shell:eve"}, Roles: []string{"r"}},
	}, map[string][]string{"r": {"lock:force", "audit:read"}})
	a, _ := p.Actor("shell:eve")
	if a.Can("lock", "demo", "force") || a.Can("audit", "demo", "read") {
		t.Fatalf("special grants read as scopes: %v", a.Perms)
	}
	if !a.Has("lock:force") || !a.Has("audit:read") {
		t.Fatalf("special grants lost: %v", a.Perms)
	}
}
