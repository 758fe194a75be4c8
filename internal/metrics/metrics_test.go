package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

type fakeSource struct{ fail bool }

func (f fakeSource) OutboxDepth(context.Context) (int, int, error) {
	if f.fail {
		return 0, 0, errors.New("database is locked")
	}
	return 3, 1, nil
}

func (f fakeSource) JobCounts(context.Context) (map[string]int, error) {
	if f.fail {
		return nil, errors.New("database is locked")
	}
	return map[string]int{"succeeded": 7, "running": 1}, nil
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	return rec.Body.String()
}

func TestMetricsExposeWhatOperatorsWatch(t *testing.T) {
	m := New(fakeSource{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Command("deploy", false)
	m.Command("deploy", true)
	m.Command("deploy", true)
	m.Webhook("gitlab", "accepted")
	m.Webhook("github", "unverified")
	m.Delivery(notify.Delivery{}, 30*time.Millisecond, nil)
	m.Delivery(notify.Delivery{}, 2*time.Second, errors.New("429"))
	out := scrape(t, m)
	for _, want := range []string{
		`shipbot_commands_total{command="deploy",result="denied"} 2`,
		`shipbot_commands_total{command="deploy",result="ok"} 1`,
		`shipbot_webhook_events_total{result="accepted",source="gitlab"} 1`,
		`shipbot_webhook_events_total{result="unverified",source="github"} 1`,
		`shipbot_outbox_depth{state="pending"} 3`,
		`shipbot_outbox_depth{state="dead"} 1`,
		`shipbot_jobs{state="succeeded"} 7`,
		`shipbot_delivery_latency_seconds_bucket{result="ok",le="0.05"} 1`,
		`shipbot_delivery_latency_seconds_count{result="error"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
}

// A database that cannot answer leaves its gauges out; the rest still scrapes.
func TestScrapeSurvivesADatabaseError(t *testing.T) {
	m := New(fakeSource{fail: true}, nil)
	m.Command("status", false)
	out := scrape(t, m)
	if strings.Contains(out, "shipbot_outbox_depth{") || !strings.Contains(out, `shipbot_commands_total{command="status",result="ok"} 1`) {
		t.Fatalf("scrape:\n%s", out)
	}
}
