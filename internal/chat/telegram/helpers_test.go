package telegram_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/notify/notifytest"
)

const (
	token   = "123456:TEST-token-abc"
	secret  = "s3cret_token"
	hookURL = "https://bot.example.com/hooks/telegram"

	group   = int64(-1001234567890) // a forum supergroup
	topic   = 7
	alice   = int64(100)
	bob     = int64(200)
	mallory = int64(999) // in the group, in no config
	outside = int64(-4242)
)

var (
	aliceU = telegramtest.User(alice, "alice")
	bobU   = telegramtest.User(bob, "bob")
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// bot is an adapter talking to a fake Bot API.
type bot struct {
	t       *testing.T
	fake    *telegramtest.Server
	a       *telegram.Adapter
	dedupe  *chattest.Dedupe
	denials *chattest.Denials
	log     *chattest.Buffer
}

type botOption func(*telegram.Options)

func webhookMode(o *telegram.Options) { o.Mode = telegram.ModeWebhook }

// newBot builds an adapter against a new fake; it does not run it.
func newBot(t *testing.T, h commands.Handler, opts ...botOption) *bot {
	t.Helper()
	b := &bot{t: t, fake: telegramtest.Start(t, token), dedupe: chattest.NewDedupe(), denials: &chattest.Denials{}, log: &chattest.Buffer{}}
	o := telegram.Options{Token: audit.NewSecret(token), APIURL: b.fake.URL, WebhookURL: hookURL,
		WebhookSecret: audit.NewSecret(secret), AllowedChats: []int64{group, alice, bob}, Dedupe: b.dedupe,
		Denied: b.denials.Record, Log: slog.New(slog.NewTextHandler(b.log, nil))}
	for _, opt := range opts {
		opt(&o)
	}
	a, err := telegram.New(o, h)
	if err != nil {
		t.Fatal(err)
	}
	b.a = a
	return b
}

// run runs the adapter until the test ends; Run's error must be nil.
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
		if strings.Contains(b.log.String(), token) {
			b.t.Errorf("the token reached the log:\n%s", b.log.String())
		}
	})
}

// say pushes a message and returns its update id.
func (b *bot) say(chat int64, thread int, from int64, text string) int64 {
	user := telegramtest.User(from, "")
	switch from {
	case alice:
		user = aliceU
	case bob:
		user = bobU
	}
	c := telegramtest.Group(chat)
	if chat > 0 {
		c = telegramtest.Private(chat)
	}
	return b.fake.Push(b.fake.NewMessage(c, thread, user, text))
}

// press pushes a button press and waits for its answer.
func (b *bot) press(from int64, chat int64, msg int, data string, accessible bool) telegramtest.Call {
	b.t.Helper()
	upd, qid := b.fake.NewPress(telegramtest.User(from, ""), chat, msg, data, accessible)
	b.fake.Push(upd)
	return b.fake.WaitCall("answerCallbackQuery", func(c telegramtest.Call) bool {
		return c.Fields["callback_query_id"] == qid && c.Status == 200
	})
}

// rig is the adapter in front of the real dispatcher, engine and card
// updater, with fake stores and driver.
type rig struct {
	*bot
	store  *deploytest.Store
	driver *deploytest.Driver
	cards  *notifytest.JobCards
}

func newRig(t *testing.T, opts ...botOption) *rig {
	t.Helper()
	r := &rig{bot: newBot(t, nil, opts...), store: deploytest.NewStore(), driver: deploytest.NewDriver()}
	r.cards = notifytest.NewJobCards(t, notify.Router{telegram.Platform: r.a}, 10*time.Millisecond)
	r.store.OnChange = r.cards.Report
	engine := deploy.NewEngine(deploy.Options{Store: r.store, Log: quietLog(),
		Drivers: func(string, string) (deploy.Driver, bool) { return r.driver, true }})
	policy := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"telegram:100"}, Roles: []string{"dev"}},
		"bob":   {Identities: []string{"telegram:200"}, Roles: []string{"lead"}},
	}, map[string][]string{"dev": {"deploy:*", "status:*"}, "lead": {"deploy:*", "approve:production", "status:*"}})
	r.a.SetHandler(commands.New(commands.Options{Engine: engine, Policy: policy, Sender: notify.Router{telegram.Platform: r.a},
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

// card waits for the bot's message in chat whose text contains want and
// returns it.
func (b *bot) card(chat int64, want string) telegramtest.Message {
	b.t.Helper()
	var found telegramtest.Message
	b.fake.Wait("a message with "+want, func() bool {
		for _, m := range b.fake.Messages(chat) {
			if strings.Contains(m.Text, want) {
				found = m
				return true
			}
		}
		return false
	})
	return found
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

var errInjected = errors.New("injected dedupe failure")

func post(h http.Handler, method, secret, body string) int {
	req := httptest.NewRequest(method, "/hooks/telegram", strings.NewReader(body))
	if secret != "" {
		req.Header.Set(telegram.SecretHeader, secret)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}
