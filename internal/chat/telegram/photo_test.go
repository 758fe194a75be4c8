package telegram_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
)

func tinyPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	img.Set(3, 3, color.Black)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A picture goes as a photo (shown inline), not a document, replying to
// its message; a file that is no image is refused by Telegram (and the fake).
func TestPictureIsSentAsAPhoto(t *testing.T) {
	b := newBot(t, nil)
	ctx := context.Background()
	m := chattest.StatsMessage()
	m.Attachment.Content = tinyPNG(t)
	ref, err := b.a.Send(ctx, topicChannel, m)
	if err != nil {
		t.Fatal(err)
	}
	photos := b.fake.Calls("sendPhoto")
	if len(photos) != 1 || photos[0].Status != 200 || len(b.fake.Calls("sendDocument")) != 0 {
		t.Fatalf("sendPhoto calls %+v", photos)
	}
	p := photos[0]
	if !bytes.Equal(p.Files["photo"], m.Attachment.Content) || p.Fields["photo.filename"] != "delivery-helpdesk-7d.png" ||
		p.Fields["caption"] != m.Title || p.Fields["message_thread_id"] != "7" {
		t.Fatalf("photo %+v", p.Fields)
	}
	sent, ok := b.fake.Message(-1001234567890, 2)
	if !ok || sent.Document == nil || !sent.Document.Photo || fmt.Sprint(sent.Document.ReplyTo) != ref.ID {
		t.Fatalf("photo message %+v", sent)
	}
	// Not an image: Telegram answers IMAGE_PROCESS_FAILED; Send has
	// posted the text and logs the failure, the next edit retries.
	m.Attachment.Content = []byte("not a png")
	if _, err := b.a.Send(ctx, topicChannel, m); err != nil {
		t.Fatal(err)
	}
	if c := b.fake.Calls("sendPhoto"); len(c) != 2 || c[1].Status != 400 {
		t.Fatalf("a non-image was accepted: %+v", c)
	}
}
