package commands_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// One chat's requests keep their order; another chat is served while the
// first is blocked; idle lanes leave no goroutine behind.
func TestLanesOrderPerChatAndNobodyWaitsOnAnotherChat(t *testing.T) {
	l := commands.NewLanes(4, 0)
	block := make(chan struct{})
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	l.Do("chat-a", func() { <-block; note("a1") })
	for i := 2; i <= 5; i++ {
		l.Do("chat-a", func() { note(fmt.Sprint("a", i)) })
	}
	select {
	case <-l.Do("chat-b", func() { note("b1") }):
	case <-time.After(10 * time.Second):
		t.Fatal("chat-b waited on chat-a's blocked request")
	}
	mu.Lock()
	if !slices.Equal(order, []string{"b1"}) {
		t.Fatalf("order %v: chat-a ran before its first request ended", order)
	}
	mu.Unlock()
	close(block)
	l.Wait()
	if !slices.Equal(order, []string{"b1", "a1", "a2", "a3", "a4", "a5"}) {
		t.Fatalf("order %v", order)
	}
	if n := l.Active(); n != 0 {
		t.Fatalf("%d lanes still active after the work ended", n)
	}
}

// At most Workers requests run at once, whatever the number of chats.
func TestLanesBoundTheWorkers(t *testing.T) {
	l := commands.NewLanes(3, 0)
	var mu sync.Mutex
	running, peak := 0, 0
	for i := range 30 {
		l.Do(fmt.Sprint("chat-", i), func() {
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			time.Sleep(time.Millisecond) // holding the slot, as a command would
			mu.Lock()
			running--
			mu.Unlock()
		})
	}
	l.Wait()
	if peak > 3 || peak == 0 {
		t.Fatalf("peak %d concurrent requests, want 1..3", peak)
	}
}

// slowStatus is a driver whose /status health check takes a while, as a
// target behind a slow network does.
type slowStatus struct {
	*deploytest.Driver
	d time.Duration
}

func (s slowStatus) Status(ctx context.Context) (deploy.Status, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
	}
	return deploy.Status{Current: "r1", Healthy: true}, nil
}

// BenchmarkChatLatency: 50 chats; chat 0 runs a /status whose health check
// takes 500 ms, the 49 others each send /whoami (real dispatcher, durable
// SQLite audit). Reported: the p50 and p99 latency of the /whoami requests
// from arrival to reply. "per-chat" is Lanes keyed by chat; "single" is the
// old behaviour, one worker for the whole bot (every chat on one key);
// "no-slow" is per-chat without the slow /status, the floor to compare with.
func BenchmarkChatLatency(b *testing.B) {
	for _, mode := range []string{"no-slow", "per-chat", "single"} {
		b.Run(mode, func(b *testing.B) {
			db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			drv := slowStatus{Driver: deploytest.NewDriver(), d: 500 * time.Millisecond}
			engine := deploy.NewEngine(deploy.Options{Store: db, Drivers: func(string, string) (deploy.Driver, bool) { return drv, true }})
			policy := commands.NewPolicy(map[string]commands.UserSpec{
				"alice": {Identities: []string{"shell:alice"}, Roles: []string{"developer"}},
			}, map[string][]string{"developer": {"status:*"}})
			d := commands.New(commands.Options{Engine: engine, Policy: policy, Sender: nopSender{}, Audit: db,
				Catalog: commands.Catalog{"demo": {"staging": {}}}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			ctx := context.Background()
			var lat []time.Duration
			var mu sync.Mutex
			b.ResetTimer()
			for range b.N {
				l := commands.NewLanes(0, 0)
				key := func(chat int) string {
					if mode == "single" {
						return "bot"
					}
					return fmt.Sprint(chat)
				}
				l.Do(key(0), func() {
					if mode == "no-slow" {
						return
					}
					d.Handle(ctx, commands.Request{Platform: "shell", UserID: "alice", Text: "/status demo staging",
						Chat: notify.Channel{Platform: "shell", ID: "0"}})
				})
				for chat := 1; chat < 50; chat++ {
					sent := time.Now()
					l.Do(key(chat), func() {
						d.Handle(ctx, commands.Request{Platform: "shell", UserID: "alice", Text: "/whoami",
							Chat: notify.Channel{Platform: "shell", ID: fmt.Sprint(chat)}})
						mu.Lock()
						lat = append(lat, time.Since(sent))
						mu.Unlock()
					})
				}
				l.Wait()
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
