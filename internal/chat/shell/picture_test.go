package shell

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/notify"
)

// A picture sent to the terminal is saved under FileDir and its path
// printed; the file holds the attachment's bytes.
func TestPictureIsSavedAndItsPathPrinted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "charts")
	var out bytes.Buffer
	s := New(Options{Out: &out, FileDir: dir})
	m := chattest.StatsMessage()
	m.Attachment.Name = "../../etc/delivery 7d.png" // never leaves dir
	if _, err := s.Send(context.Background(), notify.Channel{Platform: Platform, ID: "ops"}, m); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "1-delivery_7d.png")
	if !strings.Contains(out.String(), "  picture: "+want+"\n") {
		t.Fatalf("no path %s in:\n%s", want, out.String())
	}
	got, err := os.ReadFile(want)
	if err != nil || !bytes.Equal(got, m.Attachment.Content) {
		t.Fatalf("saved %q, %v", got, err)
	}
	// Without a directory the message says so and nothing is written.
	out.Reset()
	s = New(Options{Out: &out})
	if _, err := s.Send(context.Background(), notify.Channel{Platform: Platform, ID: "ops"}, m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(picture not saved: the terminal chat has no file directory)") {
		t.Fatalf("got:\n%s", out.String())
	}
}
