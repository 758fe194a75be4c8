package commands_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// api is a request through the HTTP API as the token named name.
func (e *env) api(name, text string) commands.Reply {
	return e.d.Handle(context.Background(), commands.Request{Platform: "api", UserID: name, Via: "api", Text: text,
		Chat: notify.Channel{Platform: "api", ID: name}})
}

// An api: identity never approves or denies, even when its user holds
// every approver role: approval is a person's act in chat.
func TestAPIIdentityNeverApproves(t *testing.T) {
	e := newEnv(t)
	// bob (lead: approve:production) also owns a CI token.
	e.d.SetAccess(commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"shell:alice"}, Roles: []string{"developer"}},
		"bob":   {Identities: []string{"shell:bob", "api:bob-ci"}, Roles: []string{"lead"}},
	}, map[string][]string{
		"developer": {"deploy:*"},
		"lead":      {"deploy:*", "approve:production", "status:*"},
	}), e.d.Catalog())
	if r := e.say("alice", "/deploy demo production v1"); r.Refused {
		t.Fatalf("deploy refused: %+v", r)
	}
	as, _ := e.store.PendingApprovals(context.Background())
	if len(as) != 1 {
		t.Fatalf("pending approvals %+v", as)
	}
	for _, cmd := range []string{"/approve ", "/deny "} {
		r := e.api("bob-ci", cmd+as[0].ID)
		if !r.Refused || r.Denial != "not a person" || !strings.Contains(r.Notice, "person in chat") {
			t.Fatalf("%s through the API: %+v", cmd, r)
		}
		if d := e.lastDenial(t); d.Identity != "api:bob-ci" || d.Chat != "api:bob-ci" || d.Via != "api" || d.Command != strings.TrimSpace(cmd[1:]) {
			t.Fatalf("denial row %+v", d)
		}
	}
	// Even a request that claims no door but carries an api: identity.
	r := e.d.Handle(context.Background(), commands.Request{Platform: "api", UserID: "bob-ci", Text: "/approve " + as[0].ID,
		Chat: notify.Channel{Platform: "shell", ID: "terminal"}})
	if !r.Refused || r.Denial != "not a person" {
		t.Fatalf("api identity without Via: %+v", r)
	}
	if a, _ := e.store.Approval(context.Background(), as[0].ID); a.State != deploy.ApprovalPending {
		t.Fatalf("approval is %s; want still pending", a.State)
	}
	// bob in person may.
	if r := e.say("bob", "/approve "+as[0].ID); r.Refused {
		t.Fatalf("bob in chat: %+v", r)
	}
}

// A door gets the job id and the kind of refusal back instead of a chat
// message; an auto-deploy rule acts as its configured user.
func TestDoorRepliesCarryJobAndDenial(t *testing.T) {
	e := newEnv(t)
	sent := len(e.sender.sent)
	r := e.d.Handle(context.Background(), commands.Request{Platform: "auto", UserID: "rule", Via: "auto", As: "alice",
		Text: "/deploy demo staging v2", Chat: notify.Channel{Platform: "auto", ID: "gitlab-7"}})
	if r.Refused || r.JobID == 0 {
		t.Fatalf("auto deploy as alice: %+v", r)
	}
	j, err := e.store.Job(context.Background(), r.JobID)
	if err != nil || j.RequestedBy.User != "alice" || j.RequestedBy.Identity != "auto:rule" {
		t.Fatalf("job %+v %v", j, err)
	}
	waitJob(t, e.store, r.JobID, deploy.Succeeded)
	r = e.d.Handle(context.Background(), commands.Request{Platform: "auto", UserID: "rule", Via: "auto", As: "carol",
		Text: "/deploy demo staging v2", Chat: notify.Channel{Platform: "auto", ID: "gitlab-8"}})
	if !r.Refused || r.Denial != "permission" || !strings.Contains(r.Notice, "deploy:staging") {
		t.Fatalf("carol may not deploy: %+v", r)
	}
	if r := e.api("nobody", "/deploy demo staging"); !r.Refused || r.Denial != "unknown identity" {
		t.Fatalf("unknown api identity: %+v", r)
	}
	if r := e.say("bob", "/lock demo staging freeze"); r.Refused {
		t.Fatal(r)
	}
	if r := e.api("x", "/deploy demo staging v3"); r.Denial != "unknown identity" {
		t.Fatal(r)
	}
	e.sender.mu.Lock()
	defer e.sender.mu.Unlock()
	for _, m := range e.sender.sent[sent:] {
		if m.Title == "Refused" {
			t.Fatalf("a door's refusal was sent to a chat: %+v", m)
		}
	}
}

// A door's rows say which door: the audit row of an API request carries
// via "api", and /audit shows it beside the user, so a row from a token is
// told from the same person typing in chat.
func TestAuditRowsNameTheDoor(t *testing.T) {
	e := newEnv(t)
	e.d.SetAccess(commands.NewPolicy(map[string]commands.UserSpec{
		"bob": {Identities: []string{"shell:bob", "api:bob-ci"}, Roles: []string{"lead"}},
	}, map[string][]string{"lead": {"status:*", "audit:read"}}), e.d.Catalog())
	if r := e.api("bob-ci", "/whoami"); r.Refused {
		t.Fatalf("whoami through the API: %+v", r)
	}
	e.say("bob", "/whoami")
	e.say("bob", "/audit 3 user=bob")
	lines := e.sender.last().Code
	var viaAPI, inChat bool
	for _, l := range lines {
		if strings.Contains(l, "whoami") {
			viaAPI = viaAPI || strings.Contains(l, "bob@api ")
			inChat = inChat || (strings.Contains(l, "bob ") && !strings.Contains(l, "@"))
		}
	}
	if !viaAPI || !inChat {
		t.Fatalf("audit listing does not tell the API row from the chat one:\n%s", strings.Join(lines, "\n"))
	}
}
