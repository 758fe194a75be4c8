package slack_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/chat/slack/slackfake"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/httpserver"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/notify/notifytest"
)

const (
	signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	channel       = "C0DEPLOYS"
	outside       = "C0ELSEWHERE"
	alice         = "U0ALICE"
	bob           = "U0BOB"
	mallory       = "U0MALLORY" // in the workspace, in no config
	aliceDM       = "D0ALICE"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// bot is an adapter talking to a fake Slack.
type bot struct {
	t       *testing.T
	fake    *slackfake.Server
	a       *slack.Adapter
	dedupe  *chattest.Dedupe
	denials *chattest.Denials
	log     *chattest.Buffer
}

type botOption func(*slack.Options)

func httpMode(o *slack.Options) { o.Mode = slack.ModeHTTP }
func noDMs(o *slack.Options)    { o.DirectMessages = false }

func newBot(t *testing.T, h commands.Handler, opts ...botOption) *bot {
	t.Helper()
	b := &bot{t: t, fake: slackfake.Start(t), dedupe: chattest.NewDedupe(), denials: &chattest.Denials{}, log: &chattest.Buffer{}}
	o := slack.Options{BotToken: audit.NewSecret(b.fake.BotToken), AppToken: audit.NewSecret(b.fake.AppToken),
		SigningSecret: audit.NewSecret(signingSecret), APIURL: b.fake.URL, AllowedChannels: []string{channel},
		DirectMessages: true, Dedupe: b.dedupe, Denied: b.denials.Record,
		Log: slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, opt := range opts {
		opt(&o)
	}
	a, err := slack.New(o, h)
	if err != nil {
		t.Fatal(err)
	}
	b.a = a
	return b
}

// run runs the adapter until the test ends; Run's error must be nil, and no
// token or secret may reach the log.
func (b *bot) run() {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.a.Run(ctx) }()
	b.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.t.Errorf("Run: %v", err)
		}
		for _, s := range []string{b.fake.BotToken, b.fake.AppToken, signingSecret} {
			if strings.Contains(b.log.String(), s) {
				b.t.Errorf("a secret reached the log:\n%s", b.log.String())
			}
		}
	})
}

// slash sends a slash command over Socket Mode and waits for its ack.
func (b *bot) slash(user, ch, command, text string) json.RawMessage {
	b.t.Helper()
	id := b.fake.Push(b.t, "slash_commands", slackfake.SlashCommand(user, ch, command, text))
	var ack json.RawMessage
	b.fake.Eventually(b.t, "the ack of "+command, func() bool {
		p, ok := b.fake.Ack(id)
		ack = p
		return ok
	})
	return ack
}

// click sends a button click over Socket Mode and waits for its ack.
func (b *bot) click(user, ch, ts, value string) {
	b.t.Helper()
	id := b.fake.Push(b.t, "interactive", slackfake.BlockAction(user, ch, ts, "shipbot:0", value))
	b.fake.Eventually(b.t, "the ack of a click", func() bool { _, ok := b.fake.Ack(id); return ok })
}

// card waits for a message whose blocks contain want.
func (b *bot) card(want string) slackfake.Message {
	b.t.Helper()
	var found slackfake.Message
	b.fake.Eventually(b.t, "a message with "+want, func() bool {
		for _, m := range b.fake.Messages() {
			if strings.Contains(string(m.Blocks), want) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// message returns the current version of the message ts.
func (b *bot) message(ts string) slackfake.Message {
	for _, m := range b.fake.Messages() {
		if m.TS == ts {
			return m
		}
	}
	b.t.Fatalf("no message %s", ts)
	return slackfake.Message{}
}

// ephemeralTo waits for an ephemeral message to user containing want.
func (b *bot) ephemeralTo(user, want string) slackfake.Ephemeral {
	b.t.Helper()
	var found slackfake.Ephemeral
	b.fake.Eventually(b.t, "an ephemeral to "+user+" with "+want, func() bool {
		for _, e := range b.fake.Ephemerals() {
			if e.User == user && strings.Contains(e.Text, want) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// button returns the value of the button labelled label in blocks.
func button(t *testing.T, blocks json.RawMessage, label string) string {
	t.Helper()
	var bs []struct {
		Type     string
		Elements []struct {
			Value string
			Text  struct{ Text string }
		}
	}
	if err := json.Unmarshal(blocks, &bs); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		for _, e := range b.Elements {
			if e.Text.Text == label {
				return e.Value
			}
		}
	}
	return ""
}

// rig is the adapter in front of the real dispatcher, engine and card
// updater, with the fake store and driver.
type rig struct {
	*bot
	store  *deploytest.Store
	driver *deploytest.Driver
	cards  *notifytest.JobCards
}

func newRig(t *testing.T, opts ...botOption) *rig {
	t.Helper()
	r := &rig{bot: newBot(t, nil, opts...), store: deploytest.NewStore(), driver: deploytest.NewDriver()}
	r.cards = notifytest.NewJobCards(t, notify.Router{slack.Platform: r.a}, 10*time.Millisecond)
	r.store.OnChange = r.cards.Report
	engine := deploy.NewEngine(deploy.Options{Store: r.store, Log: quietLog(),
		Drivers: func(string, string) (deploy.Driver, bool) { return r.driver, true }})
	policy := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"slack:" + alice}, Roles: []string{"dev"}},
		"bob":   {Identities: []string{"slack:" + bob, "telegram:200"}, Roles: []string{"lead"}},
	}, map[string][]string{"dev": {"deploy:*", "status:*", "lock:*"}, "lead": {"deploy:*", "approve:production", "status:*"}})
	r.a.SetHandler(commands.New(commands.Options{Engine: engine, Policy: policy, Sender: notify.Router{slack.Platform: r.a},
		Audit: r.store, Log: quietLog(), AwaitCard: r.cards.Await, Catalog: commands.Catalog{"demo": {
			"staging":    {DefaultRef: "main"},
			"production": {Approval: deploy.ApprovalPolicy{Required: true, Roles: []string{"lead"}, TTL: time.Hour}}}}}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		engine.Drain(ctx)
		if err := r.cards.Flush(ctx); err != nil {
			t.Errorf("cards not flushed: %v", err)
		}
	})
	r.run()
	return r
}

func (r *rig) lastDenial() audit.Event {
	r.t.Helper()
	evs := r.store.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == audit.KindDenial {
			return evs[i]
		}
	}
	r.t.Fatal("no denial recorded")
	return audit.Event{}
}

// mount serves routes the way the bot's router does.
func mount(routes []slack.Route) http.Handler {
	var rs []httpserver.Route
	for _, r := range routes {
		rs = append(rs, httpserver.Route{Path: r.Path, Handler: r.Handler})
	}
	return httpserver.NewRouter(nil, quietLog(), rs...)
}

// post sends a signed (or deliberately mis-signed) HTTP-mode request
// through h and returns the response.
func post(h http.Handler, path string, header http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
	for k, v := range header {
		req.Header[k] = v
	}
	if strings.HasSuffix(path, "/events") {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
