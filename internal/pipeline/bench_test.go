package pipeline_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// countingSender is a chat platform that accepts everything at once.
type countingSender struct{ sent, edits atomic.Int64 }

func (s *countingSender) Send(_ context.Context, ch notify.Channel, _ notify.Message) (notify.Ref, error) {
	return notify.Ref{Channel: ch, ID: fmt.Sprint(s.sent.Add(1))}, nil
}

func (s *countingSender) Edit(context.Context, notify.Ref, notify.Message) error {
	s.edits.Add(1)
	return nil
}

// BenchmarkWebhookToDelivery: a GitLab pipeline webhook through the real
// handler (verify, parse, route, one SQLite transaction with synchronous=FULL)
// until the relay has delivered it to the sender. Reports events/s over the
// whole run and the p99 of the HTTP answer; 8 senders per core, as a busy
// GitLab instance posts concurrently.
func BenchmarkWebhookToDelivery(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sender := &countingSender{}
	relay := notify.NewRelay(notify.RelayOptions{Outbox: db, Sender: sender, Workers: 8, Poll: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go relay.Run(ctx)
	svc := pipeline.New(pipeline.Options{Store: db, Secrets: pipeline.Secrets{GitLab: audit.NewSecret("t")}, Wake: relay.Wake,
		Routes: pipeline.Routes{{Chats: []notify.Channel{{Platform: "telegram", ID: "-100"}}}}})
	h := svc.Routes()[0].Handler
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			body := fmt.Sprintf(`{"object_kind":"pipeline","object_attributes":{"id":%d,"ref":"main","sha":"abc","status":"success","created_at":"2026-11-22 10:00:00 UTC"},"project":{"path_with_namespace":"acme/web"},"commit":{"message":"x"}}`, n)
			req := httptest.NewRequest(http.MethodPost, "/hooks/gitlab", strings.NewReader(body))
			req.Header.Set("X-Gitlab-Event", "Pipeline Hook")
			req.Header.Set("X-Gitlab-Token", "t")
			rec := httptest.NewRecorder()
			t0 := time.Now()
			h.ServeHTTP(rec, req)
			mine = append(mine, time.Since(t0))
			if rec.Code != http.StatusOK {
				b.Errorf("status %d: %s", rec.Code, rec.Body.String())
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	for sender.sent.Load() < seq.Load() {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(seq.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
