package slack_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/chat/slack/slackfake"
)

func TestSlashCommandApprovedBySecondPersonEndToEnd(t *testing.T) {
	r := newRig(t)
	r.driver.ExtraOutput = 30 // more than a card shows: the log follows as a file
	r.driver.Block = true     // hold the job running until the card shows it

	if ack := r.slash(alice, channel, "/shipbot", "deploy demo production v1.2"); string(ack) != "null" && len(ack) != 0 {
		t.Fatalf("slash command acked with %s; want an empty ack (the card is the answer)", ack)
	}
	card := r.card("awaiting approval")
	if card.Channel != channel || card.ThreadTS != "" {
		t.Fatalf("card posted to %s/%s", card.Channel, card.ThreadTS)
	}
	approve := button(t, card.Blocks, "Approve")
	if !strings.HasPrefix(approve, "approve:") || button(t, card.Blocks, "Deny") == "" {
		t.Fatalf("approval card without Approve/Deny buttons: %s", card.Blocks)
	}

	// alice clicks her own Approve: told privately, audited, nothing runs.
	r.click(alice, channel, card.TS, approve)
	r.ephemeralTo(alice, "someone else")
	if d := r.lastDenial(); d.Actor != "alice" || d.Identity != "slack:"+alice {
		t.Fatalf("self-approval denial %+v", d)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("the driver ran on a self-approval")
	}

	// bob approves: the same message shows the job running, then its end.
	r.click(bob, channel, card.TS, approve)
	r.fake.Eventually(t, "the card to show the running job", func() bool {
		m := r.message(card.TS)
		return strings.Contains(string(m.Blocks), "⏳ build") && strings.Contains(string(m.Blocks), `"cancel:`)
	})
	close(r.driver.Unblock)
	r.fake.Eventually(t, "the card's final state", func() bool {
		return strings.Contains(string(r.message(card.TS).Blocks), "succeeded")
	})
	final := r.message(card.TS)
	blocks := string(final.Blocks)
	if strings.Contains(blocks, `"actions"`) || !strings.Contains(blocks, `*approved by*\nbob`) || !strings.Contains(blocks, "✅ health") {
		t.Fatalf("final card: %s", blocks)
	}
	if !strings.Contains(final.Text, "succeeded") {
		t.Fatalf("fallback text %q", final.Text)
	}
	if n := len(r.fake.Messages()); n != 1 {
		t.Fatalf("%d messages; the card must be edited in place, not reposted", n)
	}
	if n := len(final.Versions); n < 3 {
		t.Fatalf("%d versions of the card; want approval, progress, final", n)
	}
	if n := r.driver.Deploys.Load(); n != 1 {
		t.Fatalf("%d deploys", n)
	}
	// The whole log, as a file in the card's thread, once.
	r.fake.Eventually(t, "the job log", func() bool { return len(r.fake.Files()) > 0 })
	files := r.fake.Files()
	if len(files) != 1 || files[0].Channel != channel || files[0].ThreadTS != card.TS ||
		!strings.Contains(string(files[0].Content), "compiling unit 30 of 30") || !strings.HasSuffix(files[0].Name, ".log") {
		t.Fatalf("files %+v", files)
	}
	// A second click on the used button changes nothing.
	r.click(bob, channel, card.TS, approve)
	r.ephemeralTo(bob, "already")
	if n := r.driver.Deploys.Load(); n != 1 {
		t.Fatalf("%d deploys after a second click", n)
	}
}

func TestDenyUpdatesTheCardWithWhoDenied(t *testing.T) {
	r := newRig(t)
	r.slash(alice, channel, "/deploy", "demo production")
	card := r.card("awaiting approval")
	r.click(bob, channel, card.TS, button(t, card.Blocks, "Deny"))
	r.fake.Eventually(t, "the denied card", func() bool {
		b := string(r.message(card.TS).Blocks)
		return strings.Contains(b, "cancelled") && strings.Contains(b, "bob")
	})
	if strings.Contains(string(r.message(card.TS).Blocks), `"actions"`) || r.driver.Calls() != 0 {
		t.Fatalf("denied card still has buttons or the driver ran: %s", r.message(card.TS).Blocks)
	}
}

func TestForgedActionValueRefusedAndAudited(t *testing.T) {
	r := newRig(t)
	r.slash(bob, channel, "/shipbot", "whoami")
	msg := r.card("You are bob")
	for _, value := range []string{"approve:zzzzzzzzzzzzzzzzzzzzzzzz", "rm -rf /", "unlock:999"} {
		before := len(r.fake.Ephemerals())
		r.click(bob, channel, msg.TS, value)
		r.fake.Eventually(t, "a refusal of "+value, func() bool { return len(r.fake.Ephemerals()) > before })
		if e := r.fake.Ephemerals()[before]; e.User != bob || e.Channel != channel || e.Text == "" {
			t.Errorf("%q answered %+v", value, e)
		}
		if d := r.lastDenial(); d.Actor != "bob" || d.Identity != "slack:"+bob || !strings.Contains(d.Outcome, "forged") {
			t.Errorf("%q: denial %+v", value, d)
		}
	}
	if r.driver.Calls() != 0 {
		t.Fatal("a forged action ran something")
	}
	// A click on someone else's button (another app's action_id) is not a command.
	id := r.fake.Push(t, "interactive", slackfake.BlockAction(bob, channel, msg.TS, "other_app_button", "approve:x"))
	r.fake.Eventually(t, "the ack", func() bool { _, ok := r.fake.Ack(id); return ok })
}

func TestUnknownPersonRefusedAndAudited(t *testing.T) {
	r := newRig(t)
	r.slash(mallory, channel, "/shipbot", "deploy demo staging")
	r.card("know slack:" + mallory)
	if d := r.lastDenial(); d.Identity != "slack:"+mallory {
		t.Fatalf("denial %+v", d)
	}
	if r.driver.Calls() != 0 {
		t.Fatal("an unknown person deployed")
	}
}

func TestRateLimitThenSuccessKeepsTheFinalState(t *testing.T) {
	r := newRig(t)
	r.fake.FailNext("chat.update", 1, slackfake.Failure{Status: http.StatusTooManyRequests, RetryAfter: 1})
	r.driver.Block = true // the job ends after its card is posted: the end is an edit
	r.slash(alice, channel, "/deploy", "demo staging")
	card := r.card("Deploy demo")
	close(r.driver.Unblock)
	r.fake.Eventually(t, "the final state", func() bool {
		return strings.Contains(string(r.message(card.TS).Blocks), "succeeded")
	})
	calls := r.fake.Calls("chat.update")
	for i, c := range calls {
		if c.Status == http.StatusTooManyRequests {
			if i+1 == len(calls) {
				t.Fatal("nothing was sent after the 429")
			}
			return
		}
	}
	t.Fatal("the injected 429 was never hit")
}

func TestRetriedDeliveryRunsOnce(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	ev := slackfake.Event(slackfake.AppMention(alice, channel, "<@U0SHIPBOT> status demo staging"))
	first := b.fake.Push(t, "events_api", ev)
	second := b.fake.Push(t, "events_api", ev) // Slack's retry: same event_id
	b.fake.Eventually(t, "both acks", func() bool {
		_, a := b.fake.Ack(first)
		_, c := b.fake.Ack(second)
		return a && c
	})
	b.fake.Eventually(t, "the dedupe check of both", func() bool { return b.dedupe.Asked("slack:event:"+ev["event_id"].(string)) == 2 })
	if reqs := h.Requests(); len(reqs) != 1 || reqs[0].Text != "/status demo staging" || reqs[0].UserID != alice {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestDedupeFailureHandlesNothing(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.dedupe.SetFail(errors.New("disk full"))
	b.run()
	b.slash(alice, channel, "/shipbot", "deploy demo staging")
	b.click(alice, channel, "1.1", "approve:x")
	b.ephemeralTo(alice, "could not record")
	if n := len(h.Requests()); n != 0 {
		t.Fatalf("%d requests handled without dedupe", n)
	}
}

func TestWhichEventsAreCommands(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	push := func(inner map[string]any) { b.fake.Push(t, "events_api", slackfake.Event(inner)) }
	push(slackfake.AppMention(alice, channel, "<@U0SHIPBOT> deploy demo staging"))
	push(slackfake.AppMention(alice, channel, "<@U0SHIPBOT>"))
	push(slackfake.DirectMessage(alice, aliceDM, "/releases demo staging"))
	push(slackfake.DirectMessage(alice, aliceDM, "lock demo staging db &amp; cache work"))
	chatter := slackfake.DirectMessage(alice, channel, "deploy demo staging")
	chatter["channel_type"] = "channel" // a plain channel message: not for shipbot
	push(chatter)
	fromBot := slackfake.AppMention(alice, channel, "<@U0SHIPBOT> deploy demo staging")
	fromBot["bot_id"] = "B0OTHER"
	push(fromBot)
	edited := slackfake.DirectMessage(alice, aliceDM, "deploy demo staging")
	edited["subtype"] = "message_changed"
	push(edited)
	b.slash(bob, channel, "/shipbot", "")
	b.slash(bob, channel, "/rollback", "demo staging")
	b.fake.Eventually(t, "seven requests", func() bool { return len(h.Requests()) >= 6 })
	// Order holds within a channel or DM; different ones go side by side.
	want := map[string][]string{
		channel: {"/deploy demo staging", "/help", "/help", "/rollback demo staging"},
		aliceDM: {"/releases demo staging", "/lock demo staging db & cache work"},
	}
	reqs := h.Requests()
	if len(reqs) != 6 {
		t.Fatalf("requests %+v", reqs)
	}
	got := map[string][]string{}
	for _, r := range reqs {
		if r.Platform != slack.Platform {
			t.Fatalf("request %+v", r)
		}
		got[r.Chat.ID] = append(got[r.Chat.ID], r.Text)
		if r.Text == "/rollback demo staging" && r.UserID != bob {
			t.Fatalf("request %+v", r)
		}
	}
	for ch, w := range want {
		if !slices.Equal(got[ch], w) {
			t.Errorf("requests in %s: %q, want %q", ch, got[ch], w)
		}
	}
}

func TestThreadedMentionAnswersInTheThread(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	m := slackfake.AppMention(alice, channel, "<@U0SHIPBOT> status demo staging")
	m["thread_ts"] = "1700000000.000001"
	b.fake.Push(t, "events_api", slackfake.Event(m))
	b.fake.Eventually(t, "the request", func() bool { return len(h.Requests()) == 1 })
	if c := h.Requests()[0].Chat; c.Thread != "1700000000.000001" || c.String() != "slack:"+channel+"/1700000000.000001" {
		t.Fatalf("chat %+v", c)
	}
}

func TestUnlistedChannelIsRefusedAndTheHandlerHearsNothing(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h, noDMs)
	b.run()
	ack := b.slash(alice, outside, "/shipbot", "deploy demo staging")
	var a struct{ ResponseType, Text string }
	_ = json.Unmarshal(ack, &a)
	if !strings.Contains(string(ack), "not enabled in this channel") || !strings.Contains(string(ack), `"ephemeral"`) {
		t.Fatalf("ack %s", ack)
	}
	// The second refusal in a minute is audited but not said again.
	if ack := b.slash(alice, outside, "/shipbot", "deploy demo staging"); strings.Contains(string(ack), "not enabled") {
		t.Fatalf("second refusal said again: %s", ack)
	}
	b.fake.Push(t, "events_api", slackfake.Event(slackfake.DirectMessage(alice, aliceDM, "deploy demo staging")))
	b.ephemeralTo(alice, "direct messages")
	b.click(bob, outside, "1.1", "approve:x")
	b.fake.Eventually(t, "four refusals", func() bool { return len(b.denials.List()) == 4 })
	d := b.denials.List()
	if d[0].Identity != "slack:"+alice || d[0].Chat != "slack:"+outside || d[2].Chat != "slack:"+aliceDM || d[3].Identity != "slack:"+bob {
		t.Fatalf("denials %+v", d)
	}
	if n := len(h.Requests()); n != 0 {
		t.Fatalf("the handler heard %d requests from unlisted places", n)
	}
}

func TestCommandsKeepTheirOrder(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	var want []string
	for i := range 20 {
		verb := []string{"lock", "deploy", "unlock", "status"}[i%4]
		b.fake.Push(t, "slash_commands", slackfake.SlashCommand(alice, channel, "/"+verb, "demo staging"))
		want = append(want, "/"+verb+" demo staging")
	}
	b.fake.Eventually(t, "twenty requests", func() bool { return len(h.Requests()) == 20 })
	for i, r := range h.Requests() {
		if r.Text != want[i] {
			t.Fatalf("request %d = %q, want %q (order lost)", i, r.Text, want[i])
		}
	}
}

func TestSocketModeReconnects(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	b.slash(alice, channel, "/status", "demo staging")
	b.fake.Disconnect()
	b.fake.Eventually(t, "a new connection", func() bool {
		return b.fake.Connected() == 1 && len(b.fake.Calls("apps.connections.open")) >= 2
	})
	b.slash(alice, channel, "/status", "demo production")
	b.fake.Eventually(t, "both requests", func() bool { return len(h.Requests()) == 2 })
}

func TestHTTPModeVerifiesEveryRequestBeforeParsing(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h, httpMode)
	b.run()
	routes := b.a.Routes("/slack")
	mux := mount(routes)
	now := time.Now()
	body := slackfake.Form(slackfake.SlashCommand(alice, channel, "/shipbot", "deploy demo staging"))
	flipped := append([]byte(nil), body...)
	flipped[len(flipped)/2] ^= 1
	wrong := slackfake.Signed("not-the-secret", now, body)
	cases := []struct {
		name   string
		header http.Header
		body   []byte
		status int
	}{
		{"valid", slackfake.Signed(signingSecret, now, body), body, http.StatusOK},
		{"stale timestamp", slackfake.Signed(signingSecret, now.Add(-6*time.Minute), body), body, http.StatusUnauthorized},
		{"future timestamp", slackfake.Signed(signingSecret, now.Add(6*time.Minute), body), body, http.StatusUnauthorized},
		{"one flipped byte", slackfake.Signed(signingSecret, now, body), flipped, http.StatusUnauthorized},
		{"wrong secret", wrong, body, http.StatusUnauthorized},
		{"missing headers", http.Header{}, body, http.StatusUnauthorized},
		{"signature only", http.Header{"X-Slack-Signature": slackfake.Signed(signingSecret, now, body)["X-Slack-Signature"]}, body, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		if rec := post(mux, "/slack/commands", tc.header, tc.body); rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.status)
		}
	}
	b.fake.Eventually(t, "the valid request", func() bool { return len(h.Requests()) >= 1 })
	if reqs := h.Requests(); len(reqs) != 1 || reqs[0].Text != "/deploy demo staging" || reqs[0].UserID != alice {
		t.Fatalf("only the valid request may run; ran %+v", reqs)
	}
	if !strings.Contains(b.log.String(), "unverified request refused") {
		t.Fatal("refusals not logged")
	}
}

func TestHTTPModeEventsAndInteractivity(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h, httpMode)
	b.run()
	mux := mount(b.a.Routes("/slack"))
	sign := func(body []byte) http.Header { return slackfake.Signed(signingSecret, time.Now(), body) }

	// Slack checks the URL with a challenge it expects echoed.
	challenge := []byte(`{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	if rec := post(mux, "/slack/events", sign(challenge), challenge); rec.Code != 200 ||
		rec.Body.String() != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("url_verification: %d %q", rec.Code, rec.Body.String())
	}
	// An unsigned challenge is not answered.
	if rec := post(mux, "/slack/events", nil, challenge); rec.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned challenge: %d", rec.Code)
	}

	ev, _ := json.Marshal(slackfake.Event(slackfake.AppMention(alice, channel, "<@U0SHIPBOT> status demo staging")))
	for attempt := range 3 { // the first delivery, then Slack's retries
		hdr := sign(ev)
		if attempt > 0 {
			hdr.Set("X-Slack-Retry-Num", "1")
			hdr.Set("X-Slack-Retry-Reason", "http_timeout")
		}
		if rec := post(mux, "/slack/events", hdr, ev); rec.Code != 200 {
			t.Fatalf("event attempt %d: %d", attempt, rec.Code)
		}
	}
	click := slackfake.InteractionForm(slackfake.BlockAction(bob, channel, "1700000000.000001", "shipbot:0", "approve:abc"))
	if rec := post(mux, "/slack/interactivity", sign(click), click); rec.Code != 200 {
		t.Fatalf("click: %d", rec.Code)
	}
	b.fake.Eventually(t, "two requests", func() bool { return len(h.Requests()) >= 2 })
	reqs := h.Requests()
	if len(reqs) != 2 || reqs[0].Text != "/status demo staging" || reqs[1].Action != "approve:abc" || reqs[1].UserID != bob {
		t.Fatalf("requests %+v", reqs)
	}
	bad := []byte("payload=%7Bnot-json")
	if rec := post(mux, "/slack/interactivity", sign(bad), bad); rec.Code != http.StatusBadRequest {
		t.Fatalf("malformed payload: %d", rec.Code)
	}
}

func TestHTTPRoutesAreOffInSocketMode(t *testing.T) {
	b := newBot(t, &chattest.Recorder{})
	body := slackfake.Form(slackfake.SlashCommand(alice, channel, "/shipbot", "deploy demo staging"))
	mux := mount(b.a.Routes("/slack"))
	if rec := post(mux, "/slack/commands", slackfake.Signed(signingSecret, time.Now(), body), body); rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	base := func() slack.Options {
		return slack.Options{BotToken: secret("xoxb-1"), AppToken: secret("xapp-1"), Dedupe: chattest.NewDedupe()}
	}
	cases := []struct {
		name string
		edit func(*slack.Options)
		want string
	}{
		{"no bot token", func(o *slack.Options) { o.BotToken = secret("") }, "bot token"},
		{"no dedupe", func(o *slack.Options) { o.Dedupe = nil }, "Dedupe"},
		{"socket without app token", func(o *slack.Options) { o.AppToken = secret("") }, "app_token"},
		{"http without signing secret", func(o *slack.Options) { o.Mode = slack.ModeHTTP }, "signing_secret"},
		{"bad mode", func(o *slack.Options) { o.Mode = "rtm" }, "mode"},
		{"api url without slash", func(o *slack.Options) { o.APIURL = "https://slack.example.com/api" }, "api_url"},
	}
	for _, tc := range cases {
		o := base()
		tc.edit(&o)
		if _, err := slack.New(o, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestWrongTokenFailsRunWithoutPrintingIt(t *testing.T) {
	fake := slackfake.Start(t)
	log := &chattest.Buffer{}
	a, err := slack.New(slack.Options{BotToken: secret("xoxb-wrong-secret-value"), AppToken: secret(fake.AppToken),
		APIURL: fake.URL, Dedupe: chattest.NewDedupe(), Log: slogTo(log)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || strings.Contains(err.Error(), "wrong-secret") ||
		strings.Contains(log.String(), "wrong-secret") {
		t.Fatalf("Run: %v\nlog: %s", err, log.String())
	}
}

func TestWrongAppTokenFailsRun(t *testing.T) {
	fake := slackfake.Start(t)
	a, err := slack.New(slack.Options{BotToken: secret(fake.BotToken), AppToken: secret("xapp-wrong-app-secret"),
		APIURL: fake.URL, Dedupe: chattest.NewDedupe(), Log: quietLog()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || strings.Contains(err.Error(), "wrong-app-secret") {
		t.Fatalf("Run: %v", err)
	}
}

func TestStartupSurvivesServerErrors(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.fake.FailNext("auth.test", 2, slackfake.Failure{Status: http.StatusBadGateway})
	b.run()
	b.slash(alice, channel, "/status", "demo staging")
	b.fake.Eventually(t, "the request", func() bool { return len(h.Requests()) == 1 })
	if n := len(b.fake.Calls("auth.test")); n != 3 {
		t.Fatalf("%d auth.test calls; want 2 failures and a success", n)
	}
}

// A click names the message its button is on (container.message_ts), which
// the dispatcher holds bound buttons to.
func TestClickCarriesItsMessage(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	b.click(alice, channel, "1700000000.000777", "b:abcdefghijklmnopqrstuvwx")
	b.fake.Eventually(t, "the click", func() bool { return len(h.Requests()) == 1 })
	if r := h.Requests()[0]; r.Message != "1700000000.000777" || r.Action != "b:abcdefghijklmnopqrstuvwx" || r.Chat.ID != channel {
		t.Fatalf("request %+v", r)
	}
}

// A redelivery from an unlisted channel is a duplicate first: Slack's retry
// of one refused mention is audited once, as in Telegram.
func TestRedeliveredRefusalIsAuditedOnce(t *testing.T) {
	h := &chattest.Recorder{}
	b := newBot(t, h)
	b.run()
	ev := slackfake.Event(slackfake.AppMention(alice, outside, "<@U0SHIPBOT> deploy demo staging"))
	first := b.fake.Push(t, "events_api", ev)
	second := b.fake.Push(t, "events_api", ev) // same event_id
	b.fake.Eventually(t, "both acks", func() bool {
		_, a := b.fake.Ack(first)
		_, c := b.fake.Ack(second)
		return a && c
	})
	b.fake.Eventually(t, "the dedupe check of both", func() bool { return b.dedupe.Asked("slack:event:"+ev["event_id"].(string)) == 2 })
	if d := b.denials.List(); len(d) != 1 {
		t.Fatalf("%d denials for one event: %+v", len(d), d)
	}
	if n := len(h.Requests()); n != 0 {
		t.Fatalf("the handler heard %d requests", n)
	}
}
