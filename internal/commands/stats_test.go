package commands_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/notify"
)

// fakeInsights records queries and answers with a fixed message or err.
type fakeInsights struct {
	mu  sync.Mutex
	qs  []insights.Query
	err error
}

func (f *fakeInsights) Stats(_ context.Context, q insights.Query) (*insights.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.qs = append(f.qs, q)
	if f.err != nil {
		return nil, f.err
	}
	return &insights.Report{Days: q.Days}, nil
}

func (f *fakeInsights) Message(_ context.Context, q insights.Query, title string) (notify.Message, *insights.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.qs = append(f.qs, q)
	if f.err != nil {
		return notify.Message{}, nil, f.err
	}
	return notify.Message{Title: "Delivery: " + q.Scope(), Attachment: &notify.Attachment{Name: "c.png", Type: notify.MediaPNG}}, &insights.Report{}, nil
}

func statsEnv(t *testing.T, in commands.Insights) (*commands.Dispatcher, *deploytest.Store, *sender) {
	t.Helper()
	store, snd := deploytest.NewStore(), &sender{}
	engine := deploy.NewEngine(deploy.Options{Store: store,
		Drivers: func(app, env string) (deploy.Driver, bool) { return deploytest.NewDriver(), true }})
	policy := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"shell:alice"}, Roles: []string{"staging-viewer"}},
		"bob":   {Identities: []string{"shell:bob", "api:bob"}, Roles: []string{"viewer"}},
	}, map[string][]string{"staging-viewer": {"status:staging"}, "viewer": {"status:*"}})
	cat := commands.Catalog{"demo": {"staging": {Driver: "fake"}, "production": {Driver: "fake"}}}
	d := commands.New(commands.Options{Engine: engine, Policy: policy, Catalog: cat, Sender: snd, Audit: store,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Insights: in})
	return d, store, snd
}

func ask(d *commands.Dispatcher, user, text string) commands.Reply {
	return d.Handle(context.Background(), commands.Request{Platform: "shell", UserID: user, Text: text,
		Chat: notify.Channel{Platform: "shell", ID: "terminal"}})
}

func TestStatsCommand(t *testing.T) {
	f := &fakeInsights{}
	d, store, snd := statsEnv(t, f)
	// Every app/env the asker may see, 7 days by default; the chart goes along.
	if r := ask(d, "alice", "/stats"); r.Refused {
		t.Fatalf("refused: %+v", snd.last())
	}
	if m := snd.last(); m.Title != "Delivery: all apps" || m.Attachment == nil {
		t.Fatalf("answer %+v", m)
	}
	q := f.qs[0]
	if q.App != "" || q.Env != "" || q.Days != 7 || q.Allowed == nil || !q.Allowed("demo", "staging") || q.Allowed("demo", "production") {
		t.Fatalf("query %+v", q)
	}
	// APP, APP ENV, and a window.
	for text, want := range map[string]insights.Query{
		"/stats demo 30d":         {App: "demo", Days: 30},
		"/stats demo staging":     {App: "demo", Env: "staging", Days: 7},
		"/stats demo staging 90d": {App: "demo", Env: "staging", Days: 90},
		"/stats@shipbot 7d":       {Days: 7},
		"/stats demo production ": {App: "demo", Env: "production", Days: 7},
	} {
		user := "alice"
		if want.Env == "production" {
			user = "bob"
		}
		if r := ask(d, user, text); r.Refused {
			t.Fatalf("%s refused: %+v", text, snd.last())
		}
		got := f.qs[len(f.qs)-1]
		if got.App != want.App || got.Env != want.Env || got.Days != want.Days {
			t.Errorf("%s: query %+v, want %+v", text, got, want)
		}
	}
	// The read is audited as an intent and its outcome.
	evs := store.Events()
	if last := evs[len(evs)-1]; last.Kind != audit.KindOutcome || last.Command != "stats" {
		t.Fatalf("last audit row %+v", last)
	}
	asked := len(f.qs)
	// Bad input and permissions: refused, recorded, nothing computed.
	for text, want := range map[string]string{
		"/stats demo staging 14d":     "window \"14d\": use 7d, 30d or 90d",
		"/stats demo staging extra x": "usage: /stats [APP] [ENV] [7d|30d|90d]",
		"/stats Demo":                 "app \"Demo\" is not a valid name",
		"/stats nope":                 "unknown app \"nope\"",
		"/stats demo qa":              "unknown env \"qa\" for demo",
		"/stats demo production":      "permission denied: you need status:production",
		"/stats --all":                "unknown option",
	} {
		if r := ask(d, "alice", text); !r.Refused || !strings.Contains(snd.last().Text, want) {
			t.Errorf("%s: %+v %q, want %q", text, r, snd.last().Text, want)
		}
	}
	if len(f.qs) != asked {
		t.Fatalf("refused requests reached insights: %+v", f.qs[asked:])
	}
	// A failing store is an internal error with a ref, not a crash.
	f.err = errors.New("disk I/O error")
	if r := ask(d, "bob", "/stats"); !r.Refused || !strings.Contains(snd.last().Text, "internal error (ref ") {
		t.Fatalf("store failure: %+v %q", r, snd.last().Text)
	}
	// A door without a chat (the API) gets the figures in the Reply, and
	// nothing is sent.
	f.err = nil
	sent := len(snd.sent)
	r := d.Handle(context.Background(), commands.Request{Platform: "api", UserID: "bob", Via: "api",
		Chat: notify.Channel{Platform: "api", ID: "bob"}, Text: "/stats demo staging 30d"})
	if r.Refused || r.Stats == nil || r.Stats.Days != 30 || len(snd.sent) != sent {
		t.Fatalf("api: %+v, %d sent", r, len(snd.sent)-sent)
	}
	// Without insights wired, /stats is refused plainly.
	d2, _, snd2 := statsEnv(t, nil)
	if r := ask(d2, "bob", "/stats"); !r.Refused || !strings.Contains(snd2.last().Text, "not available") {
		t.Fatalf("no insights: %+v %q", r, snd2.last().Text)
	}
	if !strings.Contains(strings.Join(commands.HelpText(), "\n"), "/stats [APP] [ENV] [7d|30d|90d]") {
		t.Fatal("/help does not list /stats")
	}
}
