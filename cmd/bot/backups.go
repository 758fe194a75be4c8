package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/shipbot/shipbot/internal/config"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/backup"
	"github.com/shipbot/shipbot/internal/deploy/local"
	"github.com/shipbot/shipbot/internal/deploy/release"
	sshdriver "github.com/shipbot/shipbot/internal/deploy/ssh"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/schedule"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// backedUp is a release driver that can also back up its env: the engine
// finds deploy.Backuper on it.
type backedUp struct {
	deploy.Driver
	*backup.Runner
}

// Unwrap lets the engine find the release driver's own capabilities.
func (b backedUp) Unwrap() deploy.Driver { return b.Driver }

var (
	_ deploy.Wrapper        = backedUp{}
	_ deploy.Backuper       = backedUp{}
	_ deploy.BackupVerifier = backedUp{}
	_ deploy.Restorer       = backedUp{}
	_ deploy.BackupPruner   = backedUp{}
)

// withBackups adds the env's backup block to a local or SSH driver. Backups
// live on the first host; its databases are reached from there.
func withBackups(d deploy.Driver, runner *release.Runner, b *config.Backup) deploy.Driver {
	if b == nil || runner == nil || len(runner.Hosts) == 0 {
		return d
	}
	// The local driver's relative paths are the bot's working directory's,
	// as for its releases (config validation allows them only there).
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil && !filepath.IsAbs(p) {
			return a
		}
		return p
	}
	spec := backup.Spec{Dir: abs(b.Dir), Timeout: b.Timeout.Duration}
	for _, p := range b.Paths {
		spec.Paths = append(spec.Paths, abs(p))
	}
	for _, db := range b.Databases {
		spec.Databases = append(spec.Databases, backup.Database{Name: db.Name, Engine: db.Engine, Host: db.Host,
			Port: db.Port, User: db.User, Password: db.Password, Database: db.Database})
	}
	return backedUp{Driver: d, Runner: &backup.Runner{Spec: spec, Host: runner.Hosts[0], Restart: runner.RestartCurrent}}
}

func releaseRunner(d deploy.Driver) *release.Runner {
	switch x := d.(type) {
	case *local.Driver:
		return x.Runner
	case *sshdriver.Driver:
		return x.Runner
	}
	return nil
}

// scheduler builds the cron schedule: every env's backup and drill specs,
// and housekeeping of the dedupe table.
func scheduler(c *config.Config, engine *deploy.Engine, db *sqlite.DB, relay *notify.Relay, log *slog.Logger) (*schedule.Scheduler, error) {
	var entries []schedule.Entry
	for _, app := range slices.Sorted(maps.Keys(c.Apps)) {
		for _, env := range slices.Sorted(maps.Keys(c.Apps[app].Envs)) {
			b := c.Apps[app].Envs[env].Backup
			if b == nil {
				continue
			}
			if b.Schedule != "" {
				entries = append(entries, schedule.Entry{Spec: b.Schedule, App: app, Env: env, Action: deploy.ActionBackup})
			}
			if b.DrillSchedule != "" {
				entries = append(entries, schedule.Entry{Spec: b.DrillSchedule, App: app, Env: env, Action: deploy.ActionVerify})
			}
		}
	}
	var admin *notify.Channel
	if c.Pipelines.AdminChat != "" {
		if ch, err := notify.ParseChannel(c.Pipelines.AdminChat); err == nil {
			admin = &ch
		}
	}
	alert := func(ctx context.Context, title, text string) {
		log.Error("alert", "title", title, "text", text)
		if admin == nil {
			return
		}
		post := notify.Post{Topic: fmt.Sprintf("alert:%d", time.Now().UnixNano()), Channel: *admin,
			Message: notify.Message{Title: title, Text: text, Style: notify.StyleDanger}}
		if err := queue(db, relay)(context.WithoutCancel(ctx), post); err != nil {
			log.Error("alert not queued", "err", err)
		}
	}
	return schedule.New(schedule.Options{Engine: engine, Entries: entries, Alert: alert, Log: log,
		Tasks: []schedule.Task{{Spec: "@hourly", Name: "forget old dedupe keys", Run: func(ctx context.Context) error {
			// Chat platforms and webhook sources retry for minutes to hours,
			// never for a week.
			_, err := db.ForgetSeenBefore(ctx, time.Now().Add(-7*24*time.Hour))
			return err
		}}, {Spec: "@daily", Name: "forget old buttons", Run: func(ctx context.Context) error {
			// Approvals expire in minutes, locks and jobs end; a card still
			// being edited rebinds its buttons and keeps them.
			_, err := db.ForgetButtonsBefore(ctx, time.Now().Add(-180*24*time.Hour))
			return err
		}}, {Spec: "@daily", Name: "forget old delivered messages", Run: func(ctx context.Context) error {
			// The same horizon as buttons: by then no card is edited again.
			_, err := db.ForgetDeliveredBefore(ctx, time.Now().Add(-180*24*time.Hour))
			return err
		}}}})
}
