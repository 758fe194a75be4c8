package shell

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
	match := regexp.MustCompile(`  picture: (` + regexp.QuoteMeta(dir) + `/\d{8}-\d{6}-1-delivery_7d\.png)\n`).FindStringSubmatch(out.String())
	if match == nil {
		t.Fatalf("no path under %s in:\n%s", dir, out.String())
	}
	got, err := os.ReadFile(match[1])
	if err != nil || !bytes.Equal(got, m.Attachment.Content) {
		t.Fatalf("saved %q, %v", got, err)
	}
	// Old pictures go: the directory keeps the newest 100.
	for i := range 120 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("20200101-000000-%03d-old.png", i)), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Send(context.Background(), notify.Channel{Platform: Platform, ID: "ops"}, m); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 100 || entries[0].Name() != "20200101-000000-022-old.png" {
		t.Fatalf("%d pictures kept, oldest %s", len(entries), entries[0].Name())
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
