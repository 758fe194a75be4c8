package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/shipbot/shipbot/internal/config"
	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/insights/plot"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/schedule"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// insightsService computes delivery figures from the database, with the
// chart drawn by gonum plot.
func insightsService(c *config.Config, db *sqlite.DB) *insights.Service {
	projects := map[string]string{}
	for name, a := range c.Apps {
		if a.Project != "" {
			projects[name] = a.Project
		}
	}
	return insights.New(insights.Options{Store: db, Projects: projects, Chart: plot.Chart})
}

// pictureDir is where the terminal chat saves pictures (charts).
func pictureDir(c *config.Config) string { return filepath.Join(c.Bot.DataDir, "pictures") }

// digestScheduler posts the weekly delivery digest (insights.digest) to its
// chats through the outbox, so a chat that is down gets it once it is back.
// nil when no digest is configured.
func digestScheduler(c *config.Config, svc *insights.Service, db *sqlite.DB, relay *notify.Relay, log *slog.Logger) (*schedule.Scheduler, error) {
	g := c.Insights.Digest
	if g == nil {
		return nil, nil
	}
	var chats []notify.Channel
	for _, s := range g.Chats {
		if ch, err := notify.ParseChannel(s); err == nil { // validated with the config
			chats = append(chats, ch)
		}
	}
	post := func(ctx context.Context) error {
		// The 7 whole days (UTC) before today: a Monday digest is last week.
		end := time.Now().UTC().Truncate(24 * time.Hour)
		m, r, err := svc.Message(ctx, insights.Query{Days: 7, End: end}, "Weekly delivery digest")
		if err != nil {
			return fmt.Errorf("delivery digest: %w", err)
		}
		// One topic per week: a second firing for the same week (a restart,
		// a retry) edits the message instead of posting it again.
		topic := "insights-digest:" + r.From.Format("2006-01-02")
		var posts []notify.Post
		for _, ch := range chats {
			posts = append(posts, notify.Post{Topic: topic, Channel: ch, Message: m})
		}
		if err := queue(db, relay)(ctx, posts...); err != nil {
			return fmt.Errorf("delivery digest: %w", err)
		}
		log.Info("delivery digest queued", "from", r.From, "envs", len(r.Envs), "chats", len(chats))
		return nil
	}
	return schedule.New(schedule.Options{Log: log, Location: time.UTC,
		Tasks: []schedule.Task{{Spec: g.Schedule, Name: "delivery digest", Run: post}}})
}
