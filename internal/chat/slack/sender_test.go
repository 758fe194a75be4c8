package slack_test

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/chat/slack/slackfake"
	"github.com/shipbot/shipbot/internal/notify"
)

func secret(s string) audit.Secret { return audit.NewSecret(s) }

func slogTo(b *chattest.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func TestSendAndEditSpeakTheWebAPI(t *testing.T) {
	b := newBot(t, nil)
	ch := notify.Channel{Platform: slack.Platform, ID: channel, Thread: "1700000000.000042"}
	ref, err := b.a.Send(t.Context(), ch, notify.Message{Title: "Deploy <demo> & co", Style: notify.StyleInfo,
		Fields:  []notify.Field{{Name: "state", Value: "running"}},
		Buttons: []notify.Button{{Label: "Cancel", Data: "cancel:7", Style: notify.StyleDanger}}})
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID == "" || ref.Channel != ch {
		t.Fatalf("ref %+v", ref)
	}
	m := b.message(ref.ID)
	if m.ThreadTS != ch.Thread || m.Text != "Deploy &lt;demo&gt; &amp; co — running" {
		t.Fatalf("posted %+v", m)
	}
	post := b.fake.Calls("chat.postMessage")[0].Params
	if post.Get("unfurl_links") != "false" {
		t.Fatalf("links unfurl: %v", post)
	}
	if err := b.a.Edit(t.Context(), ref, notify.Message{Title: "Deploy demo", Style: notify.StyleSuccess,
		Fields: []notify.Field{{Name: "state", Value: "succeeded"}}}); err != nil {
		t.Fatal(err)
	}
	m = b.message(ref.ID)
	if len(m.Versions) != 2 || strings.Contains(string(m.Blocks), "actions") || !strings.Contains(m.Text, "succeeded") {
		t.Fatalf("edited %+v", m)
	}
	// Editing a message Slack does not have is an error, not a repost.
	err = b.a.Edit(t.Context(), notify.Ref{Channel: ch, ID: "1.2"}, notify.Message{Title: "x"})
	if err == nil || !strings.Contains(err.Error(), "message_not_found") || len(b.fake.Messages()) != 1 {
		t.Fatalf("edit of a missing message: %v", err)
	}
}

func TestAttachmentIsUploadedOncePerMessage(t *testing.T) {
	b := newBot(t, nil)
	ch := notify.Channel{Platform: slack.Platform, ID: channel}
	ref, err := b.a.Send(t.Context(), ch, notify.Message{Title: "running"})
	if err != nil {
		t.Fatal(err)
	}
	done := notify.Message{Title: "done", Attachment: &notify.Attachment{Name: "job-1.log", Content: []byte("line 1\nline 2\n")}}
	for range 3 {
		if err := b.a.Edit(t.Context(), ref, done); err != nil {
			t.Fatal(err)
		}
	}
	files := b.fake.Files()
	if len(files) != 1 || string(files[0].Content) != "line 1\nline 2\n" || files[0].ThreadTS != ref.ID || files[0].Name != "job-1.log" {
		t.Fatalf("files %+v", files)
	}
}

func TestRateLimitCarriesRetryAfter(t *testing.T) {
	b := newBot(t, nil)
	b.fake.FailNext("chat.postMessage", 1, slackfake.Failure{Status: http.StatusTooManyRequests, RetryAfter: 7})
	_, err := b.a.Send(t.Context(), notify.Channel{Platform: slack.Platform, ID: channel}, notify.Message{Title: "x"})
	var ra notify.RetryAfterError
	if !errors.As(err, &ra) || ra.RetryAfter() != 7*time.Second {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), b.fake.BotToken) {
		t.Fatal("the token is in the error")
	}
}

func TestBadAddressesAndButtonsAreRefusedLocally(t *testing.T) {
	b := newBot(t, nil)
	if _, err := b.a.Send(t.Context(), notify.Channel{Platform: slack.Platform}, notify.Message{Title: "x"}); err == nil {
		t.Fatal("no channel accepted")
	}
	if _, err := b.a.Send(t.Context(), notify.Channel{Platform: slack.Platform, ID: channel},
		notify.Message{Title: "x", Buttons: []notify.Button{{Label: "empty"}}}); err == nil {
		t.Fatal("a button without a value accepted")
	}
	if err := b.a.Edit(t.Context(), notify.Ref{}, notify.Message{Title: "x"}); err == nil {
		t.Fatal("an empty ref accepted")
	}
	if n := len(b.fake.Calls("")); n != 0 {
		t.Fatalf("%d calls reached Slack", n)
	}
}

// A deleted message: chat.update answers message_not_found, which the card
// updater must see as "post a new card", not as a passing failure.
func TestEditOfADeletedMessageIsGone(t *testing.T) {
	b := newBot(t, nil)
	err := b.a.Edit(t.Context(), notify.Ref{Channel: notify.Channel{Platform: slack.Platform, ID: channel}, ID: "1700000000.999999"},
		notify.Message{Title: "x"})
	if !errors.Is(err, notify.ErrMessageGone) || !strings.Contains(err.Error(), "message_not_found") {
		t.Fatalf("edit of a missing message: %v", err)
	}
}
