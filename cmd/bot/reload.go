package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/shipbot/shipbot/configs"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/config"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// live is the part of the configuration a SIGHUP replaces while the bot
// runs: the config itself and the drivers built from its apps. The engine
// asks it for a driver when a job starts, so a running job keeps the
// driver (the recipe) it started with.
type live struct {
	mu      sync.RWMutex
	cfg     *config.Config
	drivers map[string]deploy.Driver
}

func (l *live) driver(app, env string) (deploy.Driver, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	d, ok := l.drivers[app+"/"+env]
	return d, ok
}

func (l *live) backupPolicy(app, env string) deploy.BackupPolicy {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg.BackupPolicy(app, env)
}

func (l *live) config() *config.Config {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg
}

// reloader re-reads the config file on SIGHUP.
type reloader struct {
	live *live
	d    *commands.Dispatcher
	db   *sqlite.DB
	wake func()
	log  *slog.Logger
}

// watchReload starts listening for SIGHUP at once (before it returns, so no
// SIGHUP after start-up falls to the default action, which ends the
// process) and reloads on each until ctx ends.
func watchReload(ctx context.Context, r *reloader) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = r.reload(ctx)
			}
		}
	}()
}

// reload reads and validates the config file again. Only a config that
// is valid in full (its SSH keys and known_hosts load too) replaces the
// running one: users, roles and apps (recipes, approval and lock rules,
// backup settings) apply to the next request and the next job. Otherwise
// the running config stays, and the log and the admin chat say why.
func (r *reloader) reload(ctx context.Context) error {
	old := r.live.config()
	next, err := r.read(old.Source)
	if err == nil {
		err = newSecrets(old, next)
	}
	var drivers map[string]deploy.Driver
	if err == nil {
		drivers, err = buildDrivers(next, r.db)
	}
	if err != nil {
		r.log.Error("config reload refused: the running config stays", "config", old.Source, "err", err)
		r.notify(ctx, old, notify.StyleDanger, "Config reload refused",
			fmt.Sprintf("%s is not valid; shipbot keeps running with the config it had.\n%v", old.Source, err))
		return err
	}
	r.live.mu.Lock()
	r.live.cfg, r.live.drivers = next, drivers
	r.live.mu.Unlock()
	r.d.SetAccess(policy(next), catalog(next))
	text := "users, roles and apps apply from now on; running jobs keep the recipe they started with"
	if stale := restartOnly(old, next); len(stale) > 0 {
		text += fmt.Sprintf("; changes to %v apply only after a restart", stale)
	}
	r.log.Info("config reloaded", "config", next.Source, "note", text)
	r.notify(ctx, next, notify.StyleSuccess, "Config reloaded", text)
	return nil
}

func (r *reloader) read(source string) (*config.Config, error) {
	if source == configs.ExampleName {
		return config.Parse(configs.Example, configs.ExampleName, os.LookupEnv)
	}
	return config.Load(source)
}

// newSecrets refuses a config carrying a secret the running bot does not
// know: the redactor that keeps secrets out of chat, logs and audit was
// built at start-up, so a new one would not be hidden.
func newSecrets(old, next *config.Config) error {
	known := map[string]bool{}
	for _, s := range old.Secrets() {
		known[s.Reveal()] = true
	}
	for _, s := range next.Secrets() {
		if !known[s.Reveal()] {
			return fmt.Errorf("the new config holds a secret the running bot does not know (a new or rotated token or password): restart shipbot so that it is redacted everywhere")
		}
	}
	return nil
}

// restartOnly names the sections whose changes a reload does not apply:
// the chat adapters, the HTTP listener and webhooks, process settings, and
// the backup schedules are set up once at start.
func restartOnly(old, next *config.Config) []string {
	var out []string
	for _, s := range []struct {
		name string
		a, b any
	}{{"bot", old.Bot, next.Bot}, {"chat", old.Chat, next.Chat}, {"http", old.HTTP, next.HTTP},
		{"pipelines", old.Pipelines, next.Pipelines}, {"backup schedules", schedules(old), schedules(next)},
		// The MCP endpoint is mounted once; its tokens, origins, approval
		// chat and tool enums follow the reload.
		{"mcp.enabled/path", [2]any{old.MCP.Enabled, old.MCP.Path}, [2]any{next.MCP.Enabled, next.MCP.Path}}} {
		if !reflect.DeepEqual(s.a, s.b) {
			out = append(out, s.name)
		}
	}
	return out
}

func schedules(c *config.Config) []string {
	var out []string
	for app, a := range c.Apps {
		for env, e := range a.Envs {
			if e.Backup != nil {
				out = append(out, app+"/"+env+" "+e.Backup.Schedule+" "+e.Backup.DrillSchedule)
			}
		}
	}
	slices.Sort(out)
	return out
}

// notify tells the admin chat (pipelines.admin_chat) through the outbox.
func (r *reloader) notify(ctx context.Context, c *config.Config, style notify.Style, title, text string) {
	if c.Pipelines.AdminChat == "" {
		return
	}
	ch, err := notify.ParseChannel(c.Pipelines.AdminChat)
	if err != nil {
		return
	}
	post := notify.Post{Topic: fmt.Sprintf("reload:%d", time.Now().UnixNano()), Channel: ch,
		Message: notify.Message{Title: title, Text: text, Style: style}}
	if err := r.db.Enqueue(context.WithoutCancel(ctx), post); err != nil {
		r.log.Error("reload notice not queued", "err", err)
		return
	}
	r.wake()
}
