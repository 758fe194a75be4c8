package telegram_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify"
)

const (
	chatID  = -1001234567890
	alice   = 100
	bob     = 200
	mallory = 999
)

// memDedupe is a Deduper in memory; the durable one is sqlite's FirstSeen.
type memDedupe struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (d *memDedupe) FirstSeen(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[key] {
		return false, nil
	}
	d.seen[key] = true
	return true, nil
}

type rig struct {
	fake    *telegramtest.Server
	adapter *telegram.Adapter
	store   *deploytest.Store
	driver  *deploytest.Driver
	denied  chan string
	nextID  int64
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRig(t *testing.T, mode string) *rig {
	t.Helper()
	r := &rig{fake: telegramtest.Start(t, token), store: deploytest.NewStore(), driver: deploytest.NewDriver(), denied: make(chan string, 10)}
	r.driver.ExtraOutput = 30
	a, err := telegram.New(telegram.Options{Token: audit.NewSecret(token), APIURL: r.fake.URL, Mode: mode,
		WebhookURL: "https://bot.example.com/hooks/telegram", WebhookSecret: audit.NewSecret("s3cret_token"),
		AllowedChats: []int64{chatID}, Dedupe: &memDedupe{seen: map[string]bool{}}, PollTimeout: 2 * time.Second,
		Denied: func(_ context.Context, identity, chat, reason string) {
			r.denied <- identity + " " + chat + " " + reason
		},
		Log: quietLog()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.adapter = a
	cards := notify.NewCards(notify.Router{telegram.Platform: a}, 10*time.Millisecond, quietLog())
	engine := deploy.NewEngine(deploy.Options{Store: r.store, Observer: cards, Log: quietLog(),
		Drivers: func(string, string) (deploy.Driver, bool) { return r.driver, true }})
	policy := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"telegram:100"}, Roles: []string{"dev"}},
		"bob":   {Identities: []string{"telegram:200"}, Roles: []string{"lead"}},
	}, map[string][]string{"dev": {"deploy:*", "status:*"}, "lead": {"deploy:*", "approve:production", "status:*"}})
	a.SetHandler(commands.New(commands.Options{Engine: engine, Policy: policy, Sender: notify.Router{telegram.Platform: a},
		Audit: r.store, Log: quietLog(), Catalog: commands.Catalog{"demo": {
			"production": {Approval: deploy.ApprovalPolicy{Required: true, Roles: []string{"lead"}, TTL: time.Hour}}}}}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		engine.Drain(dctx)
		_ = cards.Flush(dctx)
	})
	return r
}

func (r *rig) update(body map[string]any) map[string]any {
	r.nextID++
	body["update_id"] = r.nextID
	return body
}

func message(from int64, chat int64, text string) map[string]any {
	m := map[string]any{"message_id": 1, "date": 0, "text": text,
		"from": map[string]any{"id": from, "is_bot": false, "first_name": "u"},
		"chat": map[string]any{"id": chat, "type": "supergroup"}}
	if strings.HasPrefix(text, "/") {
		cmd := strings.Fields(text)[0]
		m["entities"] = []any{map[string]any{"type": "bot_command", "offset": 0, "length": len(cmd)}}
	}
	return map[string]any{"message": m}
}

func press(from int64, data string, accessible bool) map[string]any {
	var msg map[string]any
	if accessible {
		msg = map[string]any{"message_id": 1, "date": 1, "chat": map[string]any{"id": chatID, "type": "supergroup"}, "text": "card"}
	} else {
		msg = map[string]any{"message_id": 1, "date": 0, "chat": map[string]any{"id": chatID, "type": "supergroup"}}
	}
	return map[string]any{"callback_query": map[string]any{"id": "cb" + data, "chat_instance": "x", "data": data,
		"from": map[string]any{"id": from, "is_bot": false, "first_name": "u"}, "message": msg}}
}

// waitCall polls the fake until a call of method satisfies ok.
func waitCall(t *testing.T, fake *telegramtest.Server, method string, ok func(telegramtest.Call) bool) telegramtest.Call {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, c := range fake.Calls(method) {
			if ok(c) {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s call matched; calls: %+v", method, fake.Calls(method))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func answerFor(data string) func(telegramtest.Call) bool {
	return func(c telegramtest.Call) bool { return c.Fields["callback_query_id"] == "cb"+data }
}

func TestTelegramFourEyesEndToEnd(t *testing.T) {
	r := newRig(t, "polling")
	waitCall(t, r.fake, "setMyCommands", func(c telegramtest.Call) bool { return strings.Contains(c.Fields["commands"], "deploy") })
	waitCall(t, r.fake, "deleteWebhook", func(telegramtest.Call) bool { return true })

	r.fake.Push(r.update(message(alice, chatID, "/deploy@shipbot demo production v1.2")))
	card := waitCall(t, r.fake, "sendMessage", func(c telegramtest.Call) bool { return strings.Contains(c.Fields["reply_markup"], "approve:") })
	var kb struct {
		InlineKeyboard [][]struct {
			CallbackData string `json:"callback_data"`
		} `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(card.Fields["reply_markup"]), &kb); err != nil {
		t.Fatal(err)
	}
	approve := kb.InlineKeyboard[0][0].CallbackData

	// alice presses her own Approve: refused with an alert.
	r.fake.Push(r.update(press(alice, approve, true)))
	ans := waitCall(t, r.fake, "answerCallbackQuery", answerFor(approve))
	if ans.Fields["show_alert"] != "true" || !strings.Contains(ans.Fields["text"], "someone else") {
		t.Fatalf("self-approval answer %v", ans.Fields)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("driver ran on a self-approval")
	}
	// bob approves from a card too old to be accessible: resolved by id.
	r.fake.Push(r.update(press(bob, approve, false)))
	waitCall(t, r.fake, "editMessageText", func(c telegramtest.Call) bool { return strings.Contains(c.Fields["text"], "succeeded") })
	if n := r.driver.Deploys.Load(); n != 1 {
		t.Fatalf("%d deploys", n)
	}
	// The job printed more than a card shows: its log follows as a document.
	doc := waitCall(t, r.fake, "sendDocument", func(telegramtest.Call) bool { return true })
	if !strings.Contains(string(doc.Files["document"]), "compiling unit 30 of 30") || doc.Fields["chat_id"] != "-1001234567890" {
		t.Fatalf("document %q to %s", doc.Files["document"], doc.Fields["chat_id"])
	}
	// The same update delivered again runs nothing.
	dup := r.update(message(bob, chatID, "/whoami"))
	r.fake.Push(dup)
	r.fake.Redeliver(dup)
	waitCall(t, r.fake, "sendMessage", func(c telegramtest.Call) bool { return strings.Contains(c.Fields["text"], "You are bob") })
	r.fake.Push(r.update(message(bob, chatID, "/whoami")))
	deadline := time.Now().Add(10 * time.Second)
	for count(r.fake, "You are bob") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(r.fake, "You are bob"); n != 2 {
		t.Fatalf("whoami answered %d times for 2 distinct updates + 1 redelivery, want 2", n)
	}

	// A forged button and a stranger: refused and audited.
	r.fake.Push(r.update(press(bob, "approve:zzzzzzzzzzzzzzzzzzzzzzzz", true)))
	forged := waitCall(t, r.fake, "answerCallbackQuery", answerFor("approve:zzzzzzzzzzzzzzzzzzzzzzzz"))
	if forged.Fields["show_alert"] != "true" {
		t.Fatalf("forged button answer %v", forged.Fields)
	}
	r.fake.Push(r.update(message(mallory, chatID, "/deploy demo production")))
	waitCall(t, r.fake, "sendMessage", func(c telegramtest.Call) bool { return strings.Contains(c.Fields["text"], "telegram:999") })
	var denials int
	for _, e := range r.store.Events() {
		if e.Kind == audit.KindDenial && (e.Identity == "telegram:999" || strings.Contains(e.Outcome, "forged")) {
			denials++
		}
	}
	if denials < 2 {
		t.Fatalf("%d denials for the forged button and the stranger", denials)
	}

	// A chat that is not allowed: the handler never sees it.
	r.fake.Push(r.update(message(bob, 555, "/deploy demo production")))
	select {
	case d := <-r.denied:
		if !strings.Contains(d, "telegram:200 telegram:555") {
			t.Fatalf("denied %q", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("unlisted chat not reported")
	}
	if n := r.driver.Deploys.Load(); n != 1 {
		t.Fatalf("%d deploys after refusals", n)
	}
}

func count(fake *telegramtest.Server, text string) int {
	n := 0
	for _, c := range fake.Calls("sendMessage") {
		if strings.Contains(c.Fields["text"], text) {
			n++
		}
	}
	return n
}

func TestWebhookChecksSecretBeforeAnything(t *testing.T) {
	r := newRig(t, "webhook")
	waitCall(t, r.fake, "setWebhook", func(c telegramtest.Call) bool {
		return c.Fields["secret_token"] == "s3cret_token" && c.Fields["url"] == "https://bot.example.com/hooks/telegram"
	})
	srv := httptest.NewServer(r.adapter.WebhookHandler())
	defer srv.Close()
	body := func() io.Reader {
		b, _ := json.Marshal(r.update(message(bob, chatID, "/whoami")))
		return strings.NewReader(string(b))
	}
	cases := []struct {
		name   string
		header string
		body   io.Reader
		want   int
	}{
		{"no header", "", body(), http.StatusUnauthorized},
		{"wrong secret", "s3cret_tokeX", body(), http.StatusForbidden},
		{"not json", "s3cret_token", strings.NewReader("{"), http.StatusBadRequest},
		{"oversize", "s3cret_token", strings.NewReader(strings.Repeat("x", 2<<20)), http.StatusRequestEntityTooLarge},
		{"valid", "s3cret_token", body(), http.StatusOK},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, tc.body)
		if tc.header != "" {
			req.Header.Set("X-Telegram-Bot-Api-Secret-Token", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	waitCall(t, r.fake, "sendMessage", func(c telegramtest.Call) bool { return strings.Contains(c.Fields["text"], "You are bob") })
	if n := count(r.fake, "You are bob"); n != 1 {
		t.Fatalf("only the valid request may run a command; ran %d", n)
	}
}

func TestNewRefusesMissingSecrets(t *testing.T) {
	if _, err := telegram.New(telegram.Options{Dedupe: &memDedupe{}}, nil); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("no token: %v", err)
	}
	_, err := telegram.New(telegram.Options{Token: audit.NewSecret("1:x"), Mode: "webhook", Dedupe: &memDedupe{}}, nil)
	if err == nil || !strings.Contains(err.Error(), "webhook_secret") {
		t.Fatalf("webhook without secret: %v", err)
	}
}

func TestOnlyCommandsReachTheBot(t *testing.T) {
	r := newRig(t, "polling")
	// Group chatter without a bot_command entity is not for the bot.
	chatter := message(bob, chatID, "deploy demo production, shall we?")
	r.fake.Push(r.update(chatter))
	// In a private chat plain text is a command (the chat id is bob's own,
	// which the allowlist must then hold: add it for this test).
	private := message(bob, chatID, "whoami")
	private["message"].(map[string]any)["chat"] = map[string]any{"id": chatID, "type": "private"}
	r.fake.Push(r.update(private))
	waitCall(t, r.fake, "sendMessage", func(c telegramtest.Call) bool { return strings.Contains(c.Fields["text"], "You are bob") })
	if n := len(r.fake.Calls("sendMessage")); n != 1 {
		t.Fatalf("%d messages sent; group chatter must get none", n)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("chatter started a deploy")
	}
}
