package commands_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/notify/notifytest"
)

// Bound buttons: a press counts only in the chat and on the message the
// button went out with; anything else is refused as forged and audited.
func TestBoundButtonsActOnlyWhereTheyWerePosted(t *testing.T) {
	store, s := deploytest.NewStore(), &sender{}
	buttons := notify.NewMemoryButtons()
	bound := notify.NewBinder(s, buttons, nil)
	cards := notifytest.NewJobCards(t, bound, 0)
	store.OnChange = cards.Report
	engine := deploy.NewEngine(deploy.Options{Store: store,
		Drivers: func(string, string) (deploy.Driver, bool) { return deploytest.NewDriver(), true }})
	policy := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"telegram:100"}, Roles: []string{"dev"}},
		"bob":   {Identities: []string{"telegram:200"}, Roles: []string{"lead"}},
	}, map[string][]string{"dev": {"deploy:*"}, "lead": {"deploy:*", "approve:*"}})
	d := commands.New(commands.Options{Engine: engine, Policy: policy, Sender: bound, Audit: store, Buttons: buttons, AwaitCard: cards.Await,
		Catalog: commands.Catalog{"demo": {"production": {Approval: deploy.ApprovalPolicy{Required: true, Roles: []string{"lead"}, TTL: time.Hour}}}},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		engine.Drain(ctx)
		_ = cards.Flush(ctx)
	})
	group := notify.Channel{Platform: "telegram", ID: "-100"}
	ctx := context.Background()
	d.Handle(ctx, commands.Request{Platform: "telegram", UserID: "100", Chat: group, Text: "/deploy demo production v1"})
	data := s.button("Approve")
	if !strings.HasPrefix(data, notify.ButtonPrefix) {
		t.Fatalf("Approve carries %q", data)
	}
	press := func(ch notify.Channel, msg, data string) commands.Reply {
		return d.Handle(ctx, commands.Request{Platform: "telegram", UserID: "200", Chat: ch, Message: msg, Action: data})
	}
	cases := []struct {
		ch        notify.Channel
		msg, data string
		why       string
	}{
		{notify.Channel{Platform: "telegram", ID: "-200"}, "1", data, "another chat"},
		{group, "2", data, "another message"},
		{group, "1", "b:aaaaaaaaaaaaaaaaaaaaaaaa", "not one of shipbot's"},
		{group, "1", "approve:" + strings.TrimPrefix(data, "b:"), "not one of shipbot's"},
	}
	for _, c := range cases {
		if r := press(c.ch, c.msg, c.data); !r.Refused || !strings.Contains(r.Notice, c.why) {
			t.Errorf("press of %q on %s/%s: %+v, want refused for %s", c.data, c.ch, c.msg, r, c.why)
		}
		if ev := lastDenialOf(t, store); ev.Actor != "bob" || !strings.HasPrefix(ev.Outcome, "forged or stale button") {
			t.Errorf("denial %+v", ev)
		}
	}
	if js, _ := store.Jobs(ctx, deploy.JobFilter{}); js[0].State != deploy.AwaitingApproval {
		t.Fatalf("a refused press moved the job to %s", js[0].State)
	}
	if r := press(group, "1", data); r.Refused {
		t.Fatalf("the real press was refused: %+v", r)
	}
}

func lastDenialOf(t *testing.T, s *deploytest.Store) (ev struct{ Actor, Outcome string }) {
	t.Helper()
	evs := s.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == "denial" {
			return struct{ Actor, Outcome string }{evs[i].Actor, evs[i].Outcome}
		}
	}
	t.Fatal("no denial")
	return
}
