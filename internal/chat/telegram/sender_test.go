package telegram_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/notify/notifytest"
)

var topicChannel = notify.Channel{Platform: telegram.Platform, ID: "-1001234567890", Thread: "7"}

func TestSendAndEditSpeakTheBotAPI(t *testing.T) {
	b := newBot(t, nil)
	ctx := context.Background()
	card := notify.Message{Title: "Deploy <x> & y", Buttons: []notify.Button{
		{Label: "Approve", Data: "approve:abc", Style: notify.StyleSuccess}, {Label: "Deny", Data: "deny:abc", Style: notify.StyleDanger}}}
	ref, err := b.a.Send(ctx, topicChannel, card)
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID != "1" || ref.Channel != topicChannel {
		t.Fatalf("ref %+v", ref)
	}
	f := b.fake.Calls("sendMessage")[0].Fields
	if f["chat_id"] != "-1001234567890" || f["message_thread_id"] != "7" || f["parse_mode"] != "HTML" ||
		f["text"] != "<b>Deploy &lt;x&gt; &amp; y</b>" || !strings.Contains(f["link_preview_options"], `"is_disabled":true`) {
		t.Fatalf("sendMessage fields %v", f)
	}
	// Exactly text, callback_data and style on the wire: the library's own
	// button type adds an empty copy_text that Telegram refuses.
	if want := `{"inline_keyboard":[[{"text":"Approve","callback_data":"approve:abc","style":"success"},{"text":"Deny","callback_data":"deny:abc","style":"danger"}]]}`; f["reply_markup"] != want {
		t.Fatalf("reply_markup\n got %s\nwant %s", f["reply_markup"], want)
	}
	// The same content again: Telegram says "not modified", which is fine.
	if err := b.a.Edit(ctx, ref, card); err != nil {
		t.Fatalf("identical edit: %v", err)
	}
	if c := b.fake.Calls("editMessageText"); len(c) != 1 || c[0].Status != 400 {
		t.Fatalf("the identical edit should have reached Telegram and been refused there: %+v", c)
	}
	// An edit without buttons removes them.
	if err := b.a.Edit(ctx, ref, notify.Message{Title: "Deploy done", Style: notify.StyleSuccess}); err != nil {
		t.Fatal(err)
	}
	m, _ := b.fake.Message(-1001234567890, 1)
	if m.Markup != "" || m.Text != "<b>✅ Deploy done</b>" || m.Edits != 1 {
		t.Fatalf("message now %+v", m)
	}
}

func TestAttachmentIsSentOncePerMessage(t *testing.T) {
	b := newBot(t, nil)
	ctx := context.Background()
	log := &notify.Attachment{Name: "job-12-demo-staging.log", Content: []byte("full log\n")}
	ref, err := b.a.Send(ctx, topicChannel, notify.Message{Title: "running"})
	if err != nil {
		t.Fatal(err)
	}
	// The first end-state edit fails to attach: the edit itself stands,
	// and the next edit (then "not modified") sends the file.
	b.fake.FailNext("sendDocument", 1, 500, 0)
	done := notify.Message{Title: "succeeded", Attachment: log}
	if err := b.a.Edit(ctx, ref, done); err != nil {
		t.Fatalf("a failed attachment failed the edit: %v", err)
	}
	for range 3 {
		if err := b.a.Edit(ctx, ref, done); err != nil {
			t.Fatal(err)
		}
	}
	docs := b.fake.Calls("sendDocument")
	if len(docs) != 2 || docs[1].Status != 200 {
		t.Fatalf("sendDocument calls %+v", docs)
	}
	d := docs[1]
	if string(d.Files["document"]) != "full log\n" || d.Fields["document.filename"] != log.Name || d.Fields["message_thread_id"] != "7" ||
		!strings.Contains(d.Fields["reply_parameters"], `"message_id":1`) || d.Fields["caption"] != "succeeded" {
		t.Fatalf("document %+v", d.Fields)
	}
	// A new message with an attachment gets its own copy.
	if _, err := b.a.Send(ctx, topicChannel, done); err != nil {
		t.Fatal(err)
	}
	if n := len(b.fake.Calls("sendDocument")); n != 3 {
		t.Fatalf("%d sendDocument calls", n)
	}
}

// A group where the bot may not send files: the card's final edit lands
// once, and the document is tried twice, not once per retry.
func TestForbiddenDocumentLeavesTheCardEditIntact(t *testing.T) {
	b := newBot(t, nil)
	b.fake.FailNextWith("sendDocument", 100, 400, "Bad Request: not enough rights to send documents to the chat")
	cards := notifytest.NewJobCards(t, b.a, 0)
	job := jobIn(topicChannel)
	cards.JobChanged(job("running"))
	end := job("succeeded")
	for i := range 20 {
		end.Output = append(end.Output, fmt.Sprint("line ", i)) // long enough to attach
	}
	cards.JobChanged(end)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cards.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	edits := b.fake.Calls("editMessageText")
	if len(edits) != 1 || edits[0].Status != 200 || !strings.Contains(edits[0].Fields["text"], "succeeded") {
		t.Fatalf("edits %+v: want the one final edit, delivered", edits)
	}
	// Later edits of the same card (a restart re-showing it) do not try
	// the file again and again.
	ref := notify.Ref{Channel: topicChannel, ID: "1"}
	for range 5 {
		if err := b.a.Edit(ctx, ref, notify.JobCard(end)); err != nil {
			t.Fatal(err)
		}
	}
	if docs := b.fake.Calls("sendDocument"); len(docs) != 2 || docs[0].Status != 400 {
		t.Fatalf("%d sendDocument calls, want 2 (the first and one retry)", len(docs))
	}
}

// Someone deleted the card: every edit answers "message to edit not
// found", so the outcome goes out as a new card, which becomes the job's.
func TestDeletedCardIsPostedAgainWithTheOutcome(t *testing.T) {
	b := newBot(t, nil)
	cards := notifytest.NewJobCards(t, b.a, 0)
	card := func() string {
		ref, err := cards.Outbox.SentRef(context.Background(), notify.CardTopic(12), topicChannel)
		if err != nil || ref == nil {
			return fmt.Sprint(err)
		}
		return ref.ID
	}
	job := jobIn(topicChannel)
	cards.JobChanged(job("running"))
	if got := card(); got != "1" {
		t.Fatalf("first card ref %q", got)
	}
	b.fake.DeleteMessage(group, 1)
	cards.JobChanged(job("succeeded"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cards.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	edits := b.fake.Calls("editMessageText")
	if len(edits) != 1 || edits[0].Status != 400 {
		t.Fatalf("edits %+v: want one refused edit, not ten", edits)
	}
	sends := b.fake.Calls("sendMessage")
	if len(sends) != 2 || !strings.Contains(sends[1].Fields["text"], "succeeded") || sends[1].Fields["message_thread_id"] != "7" {
		t.Fatalf("sends %+v: want the outcome posted as a new card", sends)
	}
	if got := card(); got != "2" {
		t.Fatalf("the job's card is %q, want the new message 2", got)
	}
	// The next change edits the new card.
	cards.JobChanged(job("failed"))
	if err := cards.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if m, ok := b.fake.Message(group, 2); !ok || m.Edits != 1 {
		t.Fatalf("new card %+v: want it edited", m)
	}
}

func TestTooManyRequestsCarriesRetryAfter(t *testing.T) {
	b := newBot(t, nil)
	ref, err := b.a.Send(context.Background(), topicChannel, notify.Message{Title: "x"})
	if err != nil {
		t.Fatal(err)
	}
	b.fake.FailNext("editMessageText", 1, 429, 7)
	err = b.a.Edit(context.Background(), ref, notify.Message{Title: "y"})
	var ra notify.RetryAfterError
	if !errors.As(err, &ra) || ra.RetryAfter() != 7*time.Second || !strings.Contains(err.Error(), "editMessageText") {
		t.Fatalf("429: %v", err)
	}
	b.fake.FailNext("sendMessage", 1, 502, 0)
	if _, err := b.a.Send(context.Background(), topicChannel, notify.Message{Title: "x"}); err == nil || errors.As(err, &ra) {
		t.Fatalf("502 must be a plain error: %v", err)
	}
	if err := b.a.Edit(context.Background(), notify.Ref{Channel: topicChannel, ID: "99"}, notify.Message{Title: "x"}); err == nil ||
		!strings.Contains(err.Error(), "message to edit not found") {
		t.Fatalf("edit of a missing message: %v", err)
	}
}

func TestBadAddressesAndButtonsAreRefusedLocally(t *testing.T) {
	b := newBot(t, nil)
	ctx := context.Background()
	bad := []struct {
		ch notify.Channel
		m  notify.Message
	}{
		{notify.Channel{Platform: "telegram", ID: "ops-chat"}, notify.Message{Title: "x"}},
		{notify.Channel{Platform: "telegram", ID: "42", Thread: "general"}, notify.Message{Title: "x"}},
		{notify.Channel{Platform: "telegram", ID: "42"}, notify.Message{Title: "x", Buttons: []notify.Button{{Label: "b", Data: strings.Repeat("x", 65)}}}},
		{notify.Channel{Platform: "telegram", ID: "42"}, notify.Message{Title: "x", Buttons: []notify.Button{{Label: "b"}}}},
	}
	for _, c := range bad {
		if _, err := b.a.Send(ctx, c.ch, c.m); err == nil {
			t.Errorf("Send to %+v with %+v accepted", c.ch, c.m.Buttons)
		}
		if err := b.a.Edit(ctx, notify.Ref{Channel: c.ch, ID: "1"}, c.m); err == nil {
			t.Errorf("Edit in %+v accepted", c.ch)
		}
	}
	if err := b.a.Edit(ctx, notify.Ref{Channel: topicChannel, ID: "first"}, notify.Message{}); err == nil {
		t.Error("non-numeric message id accepted")
	}
	if n := len(b.fake.Calls("")); n != 0 {
		t.Fatalf("%d requests went out for bad input", n)
	}
	// 64 bytes is the limit, not over it.
	if _, err := b.a.Send(ctx, topicChannel, notify.Message{Title: "x", Buttons: []notify.Button{{Label: "b", Data: strings.Repeat("x", 64)}}}); err != nil {
		t.Fatal(err)
	}
}

// The outbox relay and the adapter together: 429s delay the final state
// but never lose it.
func TestCardsDeliverFinalStateThrough429(t *testing.T) {
	b := newBot(t, nil)
	b.fake.FailNext("editMessageText", 2, 429, 1)
	cards := notifytest.NewJobCards(t, b.a, 0)
	job := jobIn(topicChannel)
	cards.JobChanged(job("running"))
	cards.JobChanged(job("succeeded"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cards.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	edits := b.fake.Calls("editMessageText")
	if len(edits) != 3 || edits[2].Status != 200 || !strings.Contains(edits[2].Fields["text"], "succeeded") {
		t.Fatalf("%d edits: %+v", len(edits), edits)
	}
}

func TestSendRepliesWhenAsked(t *testing.T) {
	b := newBot(t, nil)
	ctx := context.Background()
	first, err := b.a.Send(ctx, topicChannel, notify.Message{Title: "Pipeline passed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.a.Send(ctx, topicChannel, notify.Message{Title: "Deploy started", ReplyTo: first.ID}); err != nil {
		t.Fatal(err)
	}
	msgs := b.fake.Messages(-1001234567890)
	if len(msgs) != 2 || msgs[1].ReplyTo != 1 || msgs[0].ReplyTo != 0 {
		t.Fatalf("messages %+v: the notice must reply to message 1", msgs)
	}
	// A reply to a message that is gone is sent as a plain message.
	if _, err := b.a.Send(ctx, topicChannel, notify.Message{Title: "late", ReplyTo: "999"}); err != nil {
		t.Fatalf("reply to a deleted message: %v", err)
	}
}
