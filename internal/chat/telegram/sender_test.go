package telegram_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-telegram/bot"

	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
	"github.com/shipbot/shipbot/internal/notify"
)

const token = "123456:TEST-token"

func newSender(t *testing.T) (*telegram.Sender, *telegramtest.Server) {
	t.Helper()
	fake := telegramtest.Start(t, token)
	b, err := bot.New(token, bot.WithServerURL(fake.URL), bot.WithSkipGetMe())
	if err != nil {
		t.Fatal(err)
	}
	return telegram.NewSender(b), fake
}

var group = notify.Channel{Platform: telegram.Platform, ID: "-1001234567890", Thread: "7"}

func TestSendAndEditSpeakTheBotAPI(t *testing.T) {
	s, fake := newSender(t)
	ctx := context.Background()
	card := notify.Message{Title: "Deploy <x> & y", Buttons: []notify.Button{{Label: "Approve", Data: "approve:abc"}}}
	ref, err := s.Send(ctx, group, card)
	if err != nil {
		t.Fatal(err)
	}
	sent := fake.Calls("sendMessage")
	if len(sent) != 1 || ref.ID != "1" {
		t.Fatalf("sendMessage calls %d, ref %+v", len(sent), ref)
	}
	f := sent[0].Fields
	if f["chat_id"] != "-1001234567890" || f["message_thread_id"] != "7" || f["parse_mode"] != "HTML" ||
		!strings.Contains(f["text"], "Deploy &lt;x&gt; &amp; y") {
		t.Fatalf("sendMessage fields %v", f)
	}
	var kb struct {
		InlineKeyboard [][]struct {
			Text         string `json:"text"`
			CallbackData string `json:"callback_data"`
		} `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(f["reply_markup"]), &kb); err != nil || kb.InlineKeyboard[0][0].CallbackData != "approve:abc" {
		t.Fatalf("reply_markup %q: %v", f["reply_markup"], err)
	}
	// The same content again: Telegram says "not modified", which is fine.
	if err := s.Edit(ctx, ref, card); err != nil {
		t.Fatalf("identical edit: %v", err)
	}
	done := notify.Message{Title: "Deploy done", Attachment: &notify.Attachment{Name: "job-12.log", Content: []byte("full log\n")}}
	if err := s.Edit(ctx, ref, done); err != nil {
		t.Fatal(err)
	}
	edits := fake.Calls("editMessageText")
	if len(edits) != 2 || edits[1].Fields["message_id"] != "1" || strings.Contains(edits[1].Fields["reply_markup"], "approve") {
		t.Fatalf("edits %+v", edits)
	}
	docs := fake.Calls("sendDocument")
	if len(docs) != 1 || string(docs[0].Files["document"]) != "full log\n" {
		t.Fatalf("document %+v", docs)
	}
}

func TestTooManyRequestsCarriesRetryAfter(t *testing.T) {
	s, fake := newSender(t)
	fake.FailNext("editMessageText", 1, 429, 7)
	err := s.Edit(context.Background(), notify.Ref{Channel: group, ID: "5"}, notify.Message{Title: "x"})
	var ra notify.RetryAfterError
	if !errors.As(err, &ra) || ra.RetryAfter() != 7*time.Second {
		t.Fatalf("429: %v", err)
	}
	fake.FailNext("sendMessage", 1, 502, 0)
	if _, err := s.Send(context.Background(), group, notify.Message{Title: "x"}); err == nil || errors.As(err, &ra) {
		t.Fatalf("502 must be a plain error: %v", err)
	}
}

func TestBadChannelIDsAreRefusedLocally(t *testing.T) {
	s, fake := newSender(t)
	if _, err := s.Send(context.Background(), notify.Channel{Platform: "telegram", ID: "ops-chat"}, notify.Message{}); err == nil {
		t.Fatal("non-numeric chat id accepted")
	}
	if len(fake.Calls("")) != 0 {
		t.Fatal("a request went out for a bad chat id")
	}
}

// The card updater and the sender together: 429s delay the final state but never lose it.
func TestCardsDeliverFinalStateThrough429(t *testing.T) {
	s, fake := newSender(t)
	fake.FailNext("editMessageText", 2, 429, 1)
	cards := notify.NewCards(s, 10*time.Millisecond, nil)
	job := jobIn(group)
	cards.JobChanged(job("running"))
	cards.JobChanged(job("succeeded"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cards.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	edits := fake.Calls("editMessageText")
	if len(edits) != 3 || !strings.Contains(edits[2].Fields["text"], "succeeded") {
		t.Fatalf("%d edits; last %v", len(edits), edits[len(edits)-1].Fields["text"])
	}
}
