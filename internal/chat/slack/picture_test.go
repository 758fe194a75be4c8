package slack_test

import (
	"bytes"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/notify"
)

// A picture is uploaded byte for byte as a file in the message's thread,
// without the text snippet type a job log gets.
func TestPictureIsUploadedAsAnImageFile(t *testing.T) {
	b := newBot(t, nil)
	ch := notify.Channel{Platform: slack.Platform, ID: channel}
	m := chattest.StatsMessage()
	m.Attachment.Content = append([]byte("\x89PNG\r\n\x1a\n"), 0, 0xff, 0xfe, 0x80, '\n') // not valid UTF-8
	ref, err := b.a.Send(t.Context(), ch, m)
	if err != nil {
		t.Fatal(err)
	}
	files := b.fake.Files()
	if len(files) != 1 || !bytes.Equal(files[0].Content, m.Attachment.Content) || files[0].ThreadTS != ref.ID ||
		files[0].Name != "delivery-helpdesk-7d.png" {
		t.Fatalf("files %+v", files)
	}
	up := b.fake.Calls("files.getUploadURLExternal")
	if len(up) != 1 || up[0].Params.Get("snippet_type") != "" || up[0].Params.Get("length") != "13" {
		t.Fatalf("getUploadURLExternal %+v", up)
	}
}
