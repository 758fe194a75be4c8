package telegram_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

func TestDeployApprovedBySecondPersonEndToEnd(t *testing.T) {
	r := newRig(t)
	r.driver.ExtraOutput = 30 // more than a card shows: the log follows as a file
	r.driver.Block = true     // hold the job running until the card shows it

	r.say(group, topic, alice, "/deploy@shipbot demo production v1.2")
	card := r.card(group, "awaiting approval")
	if card.Thread != topic {
		t.Fatalf("card posted in topic %d, want %d (where it was asked)", card.Thread, topic)
	}
	approve := r.fake.ButtonData(group, card.ID, "Approve")
	if !strings.HasPrefix(approve, "approve:") || r.fake.ButtonData(group, card.ID, "Deny") == "" {
		t.Fatalf("approval card without Approve/Deny buttons: %+v", card)
	}

	// alice presses her own Approve: an alert, and nothing runs.
	ans := r.press(alice, group, card.ID, approve, true)
	if ans.Fields["show_alert"] != "true" || !strings.Contains(ans.Fields["text"], "someone else") {
		t.Fatalf("self-approval answered %v", ans.Fields)
	}
	if d := r.lastDenial(); d.Actor != "alice" || d.Identity != "telegram:100" {
		t.Fatalf("self-approval denial %+v", d)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("the driver ran on a self-approval")
	}

	// bob approves: the same card shows the job running, then its end.
	ans = r.press(bob, group, card.ID, approve, true)
	if ans.Fields["show_alert"] == "true" {
		t.Fatalf("bob's approval refused: %v", ans.Fields)
	}
	r.fake.Wait("the card to show the running job", func() bool {
		m, _ := r.fake.Message(group, card.ID)
		return strings.Contains(m.Text, "⏳ build") && strings.Contains(m.Markup, `"cancel:`)
	})
	close(r.driver.Unblock)
	r.fake.Wait("the card's final state", func() bool {
		m, _ := r.fake.Message(group, card.ID)
		return strings.Contains(m.Text, "succeeded")
	})
	final, _ := r.fake.Message(group, card.ID)
	if final.Markup != "" || !strings.Contains(final.Text, "approved by:</b> bob") || !strings.Contains(final.Text, "✅ health") {
		t.Fatalf("final card: %q markup %q", final.Text, final.Markup)
	}
	if n := r.driver.Deploys.Load(); n != 1 {
		t.Fatalf("%d deploys", n)
	}
	// The whole log, as a file replying to the card, once.
	r.fake.Wait("the job log", func() bool { return len(r.fake.Calls("sendDocument")) > 0 })
	var doc *telegramtest.Document
	for _, m := range r.fake.Messages(group) {
		if m.Document != nil {
			if doc != nil {
				t.Fatal("the log was sent twice")
			}
			doc = m.Document
			if m.Thread != topic {
				t.Fatalf("log in topic %d", m.Thread)
			}
		}
	}
	if n := len(r.fake.Messages(group)); n != 2 || doc == nil {
		t.Fatalf("%d messages in the chat; want the card and its log", n)
	}
	if !strings.Contains(string(doc.Content), "compiling unit 30 of 30") || doc.ReplyTo != card.ID || !strings.HasSuffix(doc.Name, ".log") {
		t.Fatalf("document %+v", doc)
	}
	// A second press of the used button changes nothing.
	if ans := r.press(bob, group, card.ID, approve, true); ans.Fields["show_alert"] != "true" {
		t.Fatalf("second press: %v", ans.Fields)
	}
	if n := r.driver.Deploys.Load(); n != 1 {
		t.Fatalf("%d deploys after a second press", n)
	}
}

func TestButtonOnAnInaccessibleMessageResolvesByID(t *testing.T) {
	r := newRig(t)
	r.say(group, 0, alice, "/deploy demo production")
	card := r.card(group, "awaiting approval")
	approve := r.fake.ButtonData(group, card.ID, "Approve")
	// Telegram sends only the chat and the id of a message the bot can no
	// longer read; the button data is enough.
	if ans := r.press(bob, group, card.ID, approve, false); ans.Fields["show_alert"] == "true" {
		t.Fatalf("refused: %v", ans.Fields)
	}
	r.fake.Wait("the deploy", func() bool {
		m, _ := r.fake.Message(group, card.ID)
		return strings.Contains(m.Text, "succeeded")
	})
}

func TestForgedButtonRefusedAndAudited(t *testing.T) {
	r := newRig(t)
	r.say(group, 0, bob, "/whoami")
	msg := r.card(group, "You are bob")
	for _, data := range []string{"approve:zzzzzzzzzzzzzzzzzzzzzzzz", "rm -rf /", "unlock:999"} {
		ans := r.press(bob, group, msg.ID, data, true)
		if ans.Fields["show_alert"] != "true" || ans.Fields["text"] == "" {
			t.Errorf("%q answered %v", data, ans.Fields)
		}
		if d := r.lastDenial(); d.Actor != "bob" || d.Identity != "telegram:200" || !strings.Contains(d.Outcome, "forged") {
			t.Errorf("%q: denial %+v", data, d)
		}
	}
	if r.driver.Calls() != 0 {
		t.Fatal("a forged button ran something")
	}
}

func TestUnknownPersonRefusedAndAudited(t *testing.T) {
	r := newRig(t)
	r.say(group, 0, mallory, "/deploy demo staging")
	refusal := r.card(group, "telegram:999")
	if !strings.Contains(refusal.Text, "Refused") {
		t.Fatalf("refusal %q", refusal.Text)
	}
	if d := r.lastDenial(); d.Identity != "telegram:999" || d.Actor != "" {
		t.Fatalf("denial %+v", d)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("a stranger deployed")
	}
}

func TestUnlistedChatIsRefusedAndTheHandlerHearsNothing(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	b.say(outside, 0, alice, "/deploy demo production")
	refusal := b.card(outside, "may not use shipbot")
	if !strings.Contains(refusal.Text, fmt.Sprint(outside)) {
		t.Fatalf("the refusal should name the chat id for the admin: %q", refusal.Text)
	}
	// Again: denied again, but the chat is not told twice in a minute.
	second := b.say(outside, 0, alice, "/whoami")
	b.fake.Wait("the second update to be handled", func() bool { return b.dedupe.Asked(fmt.Sprint("telegram:update:", second)) == 1 })
	b.fake.Wait("two denials", func() bool { return len(b.denials.List()) == 2 })
	if n := len(b.fake.Messages(outside)); n != 1 {
		t.Fatalf("%d refusals sent to the chat", n)
	}
	// A button in that chat: an alert and a denial.
	upd, qid := b.fake.NewPress(aliceU, outside, refusal.ID, "approve:aaaaaaaaaaaaaaaaaaaaaaaa", true)
	b.fake.Push(upd)
	ans := b.fake.WaitCall("answerCallbackQuery", func(c telegramtest.Call) bool { return c.Fields["callback_query_id"] == qid })
	if ans.Fields["show_alert"] != "true" {
		t.Fatalf("press in an unlisted chat answered %v", ans.Fields)
	}
	b.fake.Wait("three denials", func() bool { return len(b.denials.List()) == 3 })
	for _, d := range b.denials.List() {
		if d.Identity != "telegram:100" || d.Chat != fmt.Sprint("telegram:", outside) || !strings.Contains(d.Reason, "chat.telegram.chats") {
			t.Fatalf("denial %+v", d)
		}
	}
	if reqs := h.Requests(); len(reqs) != 0 {
		t.Fatalf("the handler heard %+v", reqs)
	}
}

func TestRedeliveredUpdateRunsOnce(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	upd := b.fake.NewMessage(telegramtest.Group(group), 0, bobU, "/whoami")
	id := b.fake.Push(upd)
	b.fake.Wait("the first delivery", func() bool { return len(h.Requests()) == 1 })
	// Telegram sends it again (the bot died before confirming it) ...
	upd.ID = id
	b.fake.Redeliver(upd)
	b.fake.Wait("the redelivery to reach the dedupe", func() bool { return b.dedupe.Asked(fmt.Sprint("telegram:update:", id)) == 2 })
	// ... and a later update still runs: the redelivery was skipped, not stuck.
	b.say(group, 0, bob, "/status demo staging")
	b.fake.Wait("the next update", func() bool { return len(h.Requests()) >= 2 })
	reqs := h.Requests()
	if len(reqs) != 2 || reqs[0].Text != "/whoami" || reqs[1].Text != "/status demo staging" {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestDedupeFailureHandlesNothing(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.dedupe.SetFail(errInjected)
	b.run()
	b.say(group, 0, bob, "/whoami")
	upd, qid := b.fake.NewPress(bobU, group, 1, "cancel:1", false)
	b.fake.Push(upd)
	ans := b.fake.WaitCall("answerCallbackQuery", func(c telegramtest.Call) bool { return c.Fields["callback_query_id"] == qid })
	if ans.Fields["show_alert"] != "true" || !strings.Contains(ans.Fields["text"], "try again") {
		t.Fatalf("press answered %v", ans.Fields)
	}
	b.fake.Wait("the failure logged twice", func() bool { return strings.Count(b.log.String(), "dedupe failed") == 2 })
	if reqs := h.Requests(); len(reqs) != 0 {
		t.Fatalf("handled without dedupe: %+v", reqs)
	}
}

func TestRateLimitedEditsStillDeliverTheFinalState(t *testing.T) {
	r := newRig(t)
	r.fake.FailNext("editMessageText", 1, 429, 1)
	r.driver.Block = true // the job ends after its card is posted: the end is an edit
	r.say(group, 0, alice, "/deploy demo staging")
	card := r.card(group, "Deploy demo")
	close(r.driver.Unblock)
	r.fake.Wait("the final state", func() bool {
		m, _ := r.fake.Message(group, card.ID)
		return strings.Contains(m.Text, "succeeded")
	})
	edits := r.fake.Calls("editMessageText")
	for i, c := range edits {
		if c.Status == 429 {
			if i+1 == len(edits) {
				t.Fatal("nothing was sent after the 429")
			}
			if gap := edits[i+1].Time.Sub(c.Time); gap < time.Second {
				t.Fatalf("retried %v after a 429 asking for 1s", gap)
			}
			return
		}
	}
	t.Fatal("the injected 429 was never hit")
}

func TestWhichMessagesAreCommands(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	cases := []struct {
		chat   int64
		thread int
		text   string
		want   string // "" = not a command for shipbot
	}{
		{group, topic, "/deploy@shipbot demo production v1.2", "/deploy demo production v1.2"},
		{group, 0, "/WHOAMI@ShipBot", "/whoami"},
		{group, 0, "/status demo staging", "/status demo staging"},
		{group, 0, "/deploy@otherbot demo staging", ""},          // another bot's
		{group, 0, "/frobnicate", ""},                            // not ours, not addressed to us
		{group, 0, "deploy demo production, shall we?", ""},      // chatter
		{group, 0, "please /deploy demo staging", ""},            // not at the start
		{alice, 0, "whoami", "whoami"},                           // plain text in private
		{alice, 0, "Deploy demo staging", "Deploy demo staging"}, // the dispatcher lower-cases the name
		{alice, 0, "thanks!", ""},
		{alice, 0, "/start", "/help"},
		{alice, 0, "/start demo staging", "/start demo staging"},
		{group, 0, "/start@shipbot demo staging", "/start demo staging"},
		{alice, 0, "/frobnicate", "/frobnicate"}, // in private, the dispatcher explains
	}
	for _, c := range cases {
		b.say(c.chat, c.thread, alice, c.text)
	}
	b.say(group, 0, alice, "/help") // the last one, so all before it were seen
	total := 1
	for _, c := range cases {
		if c.want != "" {
			total++
		}
	}
	b.fake.Wait("every command", func() bool { return len(h.Requests()) == total })
	// Order holds per chat; chats are served side by side.
	got := map[string][]string{}
	for _, req := range h.Requests() {
		got[req.Chat.ID] = append(got[req.Chat.ID], req.Text)
	}
	want := map[string][]string{}
	for _, c := range cases {
		if c.want != "" {
			want[fmt.Sprint(c.chat)] = append(want[fmt.Sprint(c.chat)], c.want)
		}
	}
	want[fmt.Sprint(group)] = append(want[fmt.Sprint(group)], "/help")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("commands\n got %q\nwant %q", got, want)
	}
	var first commands.Request
	for _, r := range h.Requests() {
		if r.Chat.ID == fmt.Sprint(group) {
			first = r
			break
		}
	}
	first.ReplyTo = "" // the id the fake gave the message; replies are tested on their own
	wantReq := commands.Request{Platform: "telegram", UserID: "100", UserName: "@alice",
		Chat: notify.Channel{Platform: "telegram", ID: fmt.Sprint(group), Thread: fmt.Sprint(topic)}, Text: "/deploy demo production v1.2"}
	if first != wantReq {
		t.Fatalf("request\n got %+v\nwant %+v", first, wantReq)
	}
}

func TestPressCarriesVerifiedIdentityAndAlwaysGetsAnAnswer(t *testing.T) {
	h := &chattest.Recorder{}
	h.SetReply(commands.Reply{Notice: strings.Repeat("long notice ", 40), Refused: true})
	b := newBot(t, h)
	b.run()
	ref, err := b.a.Send(t.Context(), notify.Channel{Platform: "telegram", ID: fmt.Sprint(group), Thread: fmt.Sprint(topic)},
		notify.Message{Title: "card", Buttons: []notify.Button{{Label: "Cancel", Data: "cancel:5"}}})
	if err != nil {
		t.Fatal(err)
	}
	var id int
	fmt.Sscan(ref.ID, &id)
	ans := b.press(bob, group, id, "cancel:5", true)
	if ans.Fields["show_alert"] != "true" || len([]rune(ans.Fields["text"])) > 200 || !strings.HasPrefix(ans.Fields["text"], "long notice") {
		t.Fatalf("answer %v", ans.Fields)
	}
	req := h.Requests()[0]
	want := commands.Request{Platform: "telegram", UserID: "200", Chat: notify.Channel{Platform: "telegram",
		ID: fmt.Sprint(group), Thread: fmt.Sprint(topic)}, Action: "cancel:5", Message: ref.ID}
	if req.UserName == "" || req.Text != "" {
		t.Fatalf("request %+v", req)
	}
	req.UserName = ""
	if req != want {
		t.Fatalf("request\n got %+v\nwant %+v", req, want)
	}
	// Accepted presses get a quiet answer.
	h.SetReply(commands.Reply{Notice: "Cancelling"})
	if ans := b.press(bob, group, id, "cancel:5", true); ans.Fields["show_alert"] == "true" || ans.Fields["text"] != "Cancelling" {
		t.Fatalf("answer %v", ans.Fields)
	}
}

func TestPollingStartsWithTheMenuAndRemovesAWebhook(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.fake.SetWebhook("https://old.example.com/hook", "old") // left by a webhook-mode run
	b.run()
	b.say(group, 0, alice, "/whoami")
	b.fake.Wait("the command", func() bool { return len(h.Requests()) == 1 })
	var order []string
	for _, c := range b.fake.Calls("") {
		if len(order) == 0 || order[len(order)-1] != c.Method {
			order = append(order, c.Method)
		}
	}
	if got := strings.Join(order[:4], " "); got != "getMe setMyCommands deleteWebhook getUpdates" {
		t.Fatalf("start-up calls %q", got)
	}
	for _, c := range b.fake.Calls("getUpdates") {
		if c.Status != 200 {
			t.Fatalf("getUpdates answered %d: polled before the webhook was removed", c.Status)
		}
		if !strings.Contains(c.Fields["allowed_updates"], "callback_query") {
			t.Fatalf("allowed_updates %q", c.Fields["allowed_updates"])
		}
	}
	var names []string
	for _, c := range b.fake.Commands() {
		names = append(names, c.Command)
	}
	if got := strings.Join(names, " "); got != "help whoami apps deploy rollback releases status logs stop backup backups restore jobs job cancel lock unlock extend locks pending approve deny audit stats" {
		t.Fatalf("menu %q", got)
	}
}

func TestWebhookModeChecksTheSecretBeforeAnything(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h, webhookMode)
	b.run()
	b.fake.Wait("setWebhook", func() bool { u, s := b.fake.Webhook(); return u == hookURL && s == secret })
	if c := b.fake.Calls("setWebhook")[0]; !strings.Contains(c.Fields["allowed_updates"], "message") {
		t.Fatalf("setWebhook %v", c.Fields)
	}
	if len(b.fake.Calls("getUpdates")) != 0 || len(b.fake.Calls("deleteWebhook")) != 0 {
		t.Fatal("webhook mode polled or removed its own webhook")
	}
	if got := b.a.WebhookPath(); got != "/hooks/telegram" {
		t.Fatalf("WebhookPath %q", got)
	}
	upd := b.fake.NewMessage(telegramtest.Group(group), 0, bobU, "/whoami")
	upd.ID = 4242
	body, _ := json.Marshal(upd)
	handler := b.a.WebhookHandler()
	cases := []struct {
		name, method, header string
		body                 string
		want                 int
	}{
		{"no secret", "POST", "", string(body), 401},
		{"wrong secret", "POST", secret + "x", string(body), 403},
		{"wrong secret, same length", "POST", strings.Repeat("x", len(secret)), string(body), 403},
		{"not POST", "GET", secret, "", 405},
		{"not an update", "POST", secret, "{", 400},
		{"oversize", "POST", secret, `{"update_id":1,"message":{"text":"` + strings.Repeat("x", 2<<20) + `"}}`, 413},
		{"valid", "POST", secret, string(body), 200},
		{"valid, delivered again", "POST", secret, string(body), 200},
	}
	for _, c := range cases {
		if got := post(handler, c.method, c.header, c.body); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
		if c.name == "oversize" && len(h.Requests()) != 0 {
			t.Fatal("a rejected request reached the handler")
		}
	}
	// The handler runs the update before answering; the repeat is deduped.
	if reqs := h.Requests(); len(reqs) != 1 || reqs[0].Text != "/whoami" || reqs[0].UserID != "200" {
		t.Fatalf("requests %+v", reqs)
	}
	if b.dedupe.Asked("telegram:update:4242") != 2 {
		t.Fatal("the repeat did not go through the dedupe")
	}
}

func TestWebhookHandlerIsOffInPollingMode(t *testing.T) {
	b := newBot(t, &chattest.Recorder{})
	if got := post(b.a.WebhookHandler(), "POST", "", `{"update_id":1}`); got != 404 {
		t.Fatalf("polling-mode webhook answered %d", got)
	}
	if b.a.WebhookPath() != "" {
		t.Fatal("polling mode has no webhook path")
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	ok := telegram.Options{Token: audit.NewSecret("1:x"), Dedupe: chattest.NewDedupe()}
	cases := []struct {
		name string
		edit func(*telegram.Options)
		want string
	}{
		{"no token", func(o *telegram.Options) { o.Token = audit.Secret{} }, "chat.telegram.token"},
		{"token with a slash", func(o *telegram.Options) { o.Token = audit.NewSecret("1:x/../y") }, "chat.telegram.token"},
		{"no dedupe", func(o *telegram.Options) { o.Dedupe = nil }, "Dedupe"},
		{"odd mode", func(o *telegram.Options) { o.Mode = "pigeon" }, "pigeon"},
		{"webhook without secret", func(o *telegram.Options) { o.Mode, o.WebhookURL = "webhook", hookURL }, "chat.telegram.webhook_secret"},
		{"webhook with a bad secret", func(o *telegram.Options) {
			o.Mode, o.WebhookURL, o.WebhookSecret = "webhook", hookURL, audit.NewSecret("has spaces")
		}, "chat.telegram.webhook_secret"},
		{"webhook without URL", func(o *telegram.Options) { o.Mode, o.WebhookSecret = "webhook", audit.NewSecret(secret) }, "chat.telegram.webhook_url"},
		{"bad api url", func(o *telegram.Options) { o.APIURL = "ftp://x" }, "api_url"},
	}
	for _, c := range cases {
		o := ok
		c.edit(&o)
		_, err := telegram.New(o, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "has spaces") {
			t.Errorf("%s: the error prints the secret", c.name)
		}
	}
	if _, err := telegram.New(ok, nil); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestWrongTokenFailsRunWithoutPrintingIt(t *testing.T) {
	b := newBot(t, &chattest.Recorder{}, func(o *telegram.Options) { o.Token = audit.NewSecret("654321:WRONG-token") })
	err := b.a.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "getMe") || !strings.Contains(err.Error(), "Unauthorized") ||
		!strings.Contains(err.Error(), "chat.telegram.token") {
		t.Fatalf("Run: %v", err)
	}
	if strings.Contains(err.Error(), "WRONG-token") || strings.Contains(b.log.String(), "WRONG-token") {
		t.Fatalf("the token leaked: %v", err)
	}
}

func TestPollingSurvivesServerErrors(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	// Telegram unreachable at boot, then while polling: the bot keeps trying.
	b.fake.FailNext("getMe", 1, 502, 0)
	b.fake.FailNext("deleteWebhook", 1, 500, 0)
	b.fake.FailNext("getUpdates", 2, 502, 0)
	b.run()
	b.say(group, 0, alice, "/whoami")
	b.fake.Wait("the command after two failed polls", func() bool { return len(h.Requests()) == 1 })
	if !strings.Contains(b.log.String(), "502") {
		t.Fatal("failed polls should be logged")
	}
}

// The deploy engine's Who for a Telegram request: the chat and topic the
// card goes back to.
func TestJobCardGoesBackToTheTopic(t *testing.T) {
	r := newRig(t)
	r.say(group, topic, alice, "/deploy demo staging")
	card := r.card(group, "Deploy demo")
	if card.Thread != topic {
		t.Fatalf("card in topic %d", card.Thread)
	}
	j, err := r.store.Job(t.Context(), 1)
	if err != nil || j.RequestedBy.Chat != fmt.Sprintf("telegram:%d/%d", group, topic) || j.RequestedBy.Identity != "telegram:100" {
		t.Fatalf("job %+v: %v", j, err)
	}
	r.fake.Wait("the end", func() bool {
		j, _ := r.store.Job(t.Context(), 1)
		return j.State == deploy.Succeeded
	})
}

// gate is a handler that holds every request of one chat until opened.
type gate struct {
	chat string
	open chan struct{}
	mu   sync.Mutex
	got  []commands.Request
}

func (g *gate) Handle(ctx context.Context, r commands.Request) commands.Reply {
	if r.Chat.ID == g.chat {
		<-g.open
	}
	g.mu.Lock()
	g.got = append(g.got, r)
	g.mu.Unlock()
	return commands.Reply{}
}

func (g *gate) texts(chat string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, r := range g.got {
		if r.Chat.ID == chat {
			out = append(out, r.Text)
		}
	}
	return out
}

// A slow command in the group delays nobody in a DM, and the group's own
// commands keep their order behind it.
func TestSlowChatDelaysNoOtherChat(t *testing.T) {
	g := &gate{chat: fmt.Sprint(group), open: make(chan struct{})}
	b := newBot(t, g)
	b.run()
	b.say(group, 0, alice, "/status demo staging")
	b.say(group, 0, alice, "/lock demo staging x")
	b.say(group, 0, alice, "/deploy demo staging")
	b.say(alice, 0, alice, "/whoami")
	b.fake.Wait("the DM handled while the group is busy", func() bool { return len(g.texts(fmt.Sprint(alice))) == 1 })
	if n := len(g.texts(fmt.Sprint(group))); n != 0 {
		t.Fatalf("%d group requests passed the blocked one", n)
	}
	close(g.open)
	b.fake.Wait("the group's requests", func() bool { return len(g.texts(fmt.Sprint(group))) == 3 })
	if got := g.texts(fmt.Sprint(group)); !slices.Equal(got, []string{"/status demo staging", "/lock demo staging x", "/deploy demo staging"}) {
		t.Fatalf("group order %q", got)
	}
}

// In a group the answer replies to the command and a refusal names the
// person; the approval card says who may approve.
func TestGroupRepliesNameThePerson(t *testing.T) {
	r := newRig(t)
	u := r.fake.NewMessage(telegramtest.Group(group), topic, aliceU, "/logs demo staging")
	r.fake.Push(u)
	refusal := r.card(group, "Refused")
	if !strings.Contains(refusal.Text, "alice: ") || !strings.Contains(refusal.Text, "logs") || refusal.ReplyTo != u.Message.ID {
		t.Fatalf("refusal %+v: want a reply to message %d naming alice", refusal, u.Message.ID)
	}
	r.say(group, topic, alice, "/deploy demo production v2")
	card := r.card(group, "awaiting approval")
	if !strings.Contains(card.Text, "Needs approval by a lead, not alice.") {
		t.Fatalf("approval card %q", card.Text)
	}
	// In a private chat there is nobody else to tell apart.
	r.say(alice, 0, alice, "/logs demo staging")
	dm := r.card(alice, "Refused")
	if strings.Contains(dm.Text, "alice: ") || dm.ReplyTo != 0 {
		t.Fatalf("private refusal %+v", dm)
	}
}
