package schedule

import (
	"context"
	"log/slog"
	"time"
)

// Every runs fn every interval until ctx ends: for work that must happen
// within seconds of its moment (a lock's expiry), finer than cron's minute.
// A failed run is logged and the next one tries again.
func Every(ctx context.Context, interval time.Duration, name string, fn func(ctx context.Context) error, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				log.Warn("periodic task failed", "task", name, "err", err)
			}
		}
	}
}
