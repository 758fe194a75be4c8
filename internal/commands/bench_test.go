package commands_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/sqlite"
)

type nopSender struct{}

func (nopSender) Send(context.Context, notify.Channel, notify.Message) (notify.Ref, error) {
	return notify.Ref{}, nil
}
func (nopSender) Edit(context.Context, notify.Ref, notify.Message) error { return nil }

// benchDispatcher is the real dispatch path on the real SQLite store
// (WAL, synchronous=FULL): parse, resolve identity, authorize, write the
// audit rows durably, render the reply.
func benchDispatcher(b *testing.B) *commands.Dispatcher {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	drv := deploytest.NewDriver()
	engine := deploy.NewEngine(deploy.Options{Store: db, Drivers: func(string, string) (deploy.Driver, bool) { return drv, true }})
	policy := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"shell:alice"}, Roles: []string{"developer"}},
	}, map[string][]string{"developer": {"deploy:staging", "status:*"}})
	return commands.New(commands.Options{Engine: engine, Policy: policy, Sender: nopSender{}, Audit: db,
		Catalog: commands.Catalog{"demo": {"staging": {}, "production": {}}},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func benchCommand(b *testing.B, text string, parallel bool) {
	d := benchDispatcher(b)
	req := commands.Request{Platform: "shell", UserID: "alice", Text: text, Chat: notify.Channel{Platform: "shell", ID: "terminal"}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for i := 0; i < b.N; i++ {
			if r := d.Handle(ctx, req); r.Refused != (text != "/whoami") {
				b.Fatalf("unexpected reply %+v", r)
			}
		}
	} else {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Handle(ctx, req)
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
}

// /whoami: allowed, intent+outcome in one durable transaction.
func BenchmarkDispatchAllowed(b *testing.B)         { benchCommand(b, "/whoami", false) }
func BenchmarkDispatchAllowedParallel(b *testing.B) { benchCommand(b, "/whoami", true) }

// /deploy demo production without the permission: one durable denial row.
func BenchmarkDispatchDenied(b *testing.B)         { benchCommand(b, "/deploy demo production", false) }
func BenchmarkDispatchDeniedParallel(b *testing.B) { benchCommand(b, "/deploy demo production", true) }
