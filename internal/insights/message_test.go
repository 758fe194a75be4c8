package insights_test

import (
	"bytes"
	"context"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/insights/plot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The known history as the chat reads it, platform-neutral (each chat
// adapter golden-tests its own rendering of such a message), with the
// chart drawn by the real library.
func TestMessageOfTheKnownHistory(t *testing.T) {
	t.Parallel()
	h := seed(t)
	s := insights.New(insights.Options{Store: h.db, Projects: map[string]string{"helpdesk": "acme/helpdesk"},
		Chart: plot.Chart, Now: func() time.Time { return at("2026-12-02 12:00") }})
	m, _, err := s.Message(context.Background(), insights.Query{App: "helpdesk"}, "")
	if err != nil {
		t.Fatal(err)
	}
	got := m.Title + "\n" + m.Text + "\n" + strings.Join(m.Code, "\n") + "\n"
	path := filepath.Join("testdata", "helpdesk.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	a := m.Attachment
	if a == nil || a.Type != "image/png" || a.Name != "delivery-helpdesk-7d.png" {
		t.Fatalf("attachment %+v", a)
	}
	if dir := os.Getenv("SHIPBOT_CHART_DIR"); dir != "" { // to look at it
		_ = os.WriteFile(filepath.Join(dir, a.Name), a.Content, 0o644)
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(a.Content)); err != nil || cfg.Width != 1000 {
		t.Fatalf("chart: %+v %v", cfg, err)
	}
	// Nothing recorded: the message says so and carries no chart.
	m, _, err = s.Message(context.Background(), insights.Query{App: "nothing", Days: 30}, "")
	if err != nil || m.Attachment != nil || !strings.Contains(m.Text, "no deploy or rollback recorded in these 30 days or the 30 before") {
		t.Fatalf("empty: %+v %v", m, err)
	}
}
