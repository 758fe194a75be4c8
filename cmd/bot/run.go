package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/shipbot/shipbot/internal/api"
	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/shell"
	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/config"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/httpcheck"
	"github.com/shipbot/shipbot/internal/deploy/local"
	sshdriver "github.com/shipbot/shipbot/internal/deploy/ssh"
	"github.com/shipbot/shipbot/internal/httpserver"
	"github.com/shipbot/shipbot/internal/mcp"
	"github.com/shipbot/shipbot/internal/metrics"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
	"github.com/shipbot/shipbot/internal/schedule"
	"github.com/shipbot/shipbot/internal/sqlite"
)

func cmdRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, name, err := flags("run", args, stderr)
	if err != nil || fs.NArg() != 0 {
		return 2
	}
	c, err := loadConfig(*name)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log, closeLog, err := logger(c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "log:", err)
		return 1
	}
	defer closeLog()
	if err := serve(ctx, c, log, stdin, stdout); err != nil {
		log.Error("shipbot stopped", "err", err)
		fmt.Fprintln(stderr, "shipbot:", err)
		return 1
	}
	return 0
}

// serve runs shipbot until the chat ends (shell EOF) or ctx is cancelled
// (SIGTERM): then it stops taking work, waits for running jobs up to the
// configured deadline, and closes the database.
func serve(ctx context.Context, c *config.Config, log *slog.Logger, stdin io.Reader, stdout io.Writer) error {
	db, err := sqlite.Open(ctx, c.Bot.Database)
	if err != nil {
		return err
	}
	defer db.Close()

	pc := c.Pipelines
	redact := audit.NewRedactor(c.Secrets()...)
	drivers, err := buildDrivers(c, db)
	if err != nil {
		return err
	}
	lv := &live{cfg: c, drivers: drivers} // SIGHUP replaces both

	router := notify.Router{}
	// Every button goes out bound to its chat and message (issue 16).
	bound := notify.NewBinder(router, db, log)
	stats := metrics.New(db, log)
	var alert notify.Channel
	if pc.AdminChat != "" {
		alert, _ = notify.ParseChannel(pc.AdminChat) // validated with the config
	}
	// One delivery path for everything the chats hear: job cards, job
	// notices, pipeline cards, reminders go through the outbox and this
	// relay. A card is edited at most once a second, ending on its newest state.
	relay := notify.NewRelay(notify.RelayOptions{Outbox: db, Sender: bound, MaxAttempts: pc.MaxAttempts, Alert: alert,
		MinEdit: time.Second, Observe: stats.Delivery, AfterSend: crashAfterSend(), Log: log})
	hooks := pipeline.New(pipelineOptions(c, db, relay, stats, log))
	// The API and auto-deploy rules drop cards (their clients read the
	// job); MCP forwards them to its approval chat, so it is not silent.
	jobPosts := notify.NewJobPosts(notify.JobPostsOptions{Routes: hooks, Doors: doors,
		Silent: []string{api.Platform, autoPlatform}, Log: log})
	door := newAPIDoor(lv, db, log) // HTTP API: a door beside the chats (api.go)
	router[api.Platform], router[autoPlatform] = door, door
	mcpDoor := newMCPDoor(lv, db, router, log) // MCP for AI assistants: a door like the API (mcp.go)
	router[mcp.Platform] = mcpDoor
	// A job's card and notices commit with the job change they report.
	if err := db.ReportJobs(ctx, jobPosts.Posts, relay.Wake); err != nil {
		return err
	}
	// The scheduler needs the engine and the engine its observers: the
	// observer is filled in once both exist, before any job can run.
	schedObserver := &lateObserver{}
	engine := deploy.NewEngine(deploy.Options{
		Store:        db,
		Drivers:      lv.driver,
		Observer:     observers{schedObserver, door, mcpDoor},
		JobTimeout:   c.Bot.JobTimeout.Duration,
		OutputLines:  c.Bot.OutputLines,
		Redactor:     redact,
		Log:          log,
		BackupPolicy: lv.backupPolicy,
		// Steps a kill -9 left running are stopped before recovery tells the chat.
		KillLeftovers: local.KillLeftovers,
	})
	sched, err := scheduler(c, engine, db, relay, log)
	if err != nil {
		return err
	}
	schedObserver.s = sched

	var sh *shell.Shell
	if c.Chat.Shell != nil && c.Chat.Shell.Enabled {
		sh = shell.New(shell.Options{
			In: stdin, Out: stdout, Users: shellUsers(c), User: c.Chat.Shell.User, Prompt: isTerminal(stdin),
			FileDir: pictureDir(c),
			WaitIdle: func(ctx context.Context) error {
				if err := engine.WaitIdle(ctx); err != nil {
					return err
				}
				return outboxDrained(ctx, func(ctx context.Context) (int, error) { return db.OutboxPendingIn(ctx, shell.Platform) })
			},
		})
		router[shell.Platform] = sh
	}

	var tg *telegram.Adapter
	if t := c.Chat.Telegram; t != nil && t.Enabled {
		tg, err = telegram.New(telegram.Options{Token: t.Token, APIURL: t.APIURL, Mode: t.Mode, WebhookURL: t.WebhookURL,
			WebhookSecret: t.WebhookSecret, AllowedChats: t.Chats, Dedupe: db, Log: log,
			Denied: chatDenial(db, log)}, nil)
		if err != nil {
			return err
		}
		router[telegram.Platform] = tg
	}

	var sl *slack.Adapter
	if s := c.Chat.Slack; s != nil && s.Enabled {
		sl, err = slack.New(slack.Options{Mode: s.Mode, BotToken: s.BotToken, AppToken: s.AppToken,
			SigningSecret: s.SigningSecret, APIURL: s.APIURL, AllowedChannels: s.Channels,
			DirectMessages: s.DirectMessages, Dedupe: db, Log: log, Denied: chatDenial(db, log)}, nil)
		if err != nil {
			return err
		}
		router[slack.Platform] = sl
	}

	// Jobs a crash left running are interrupted before anything else runs;
	// their cards (with Unlock / Rollback) go to the chats they came from.
	interrupted, err := engine.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	for _, j := range interrupted {
		log.Warn("job interrupted by a previous stop", "job", j.ID, "app", j.App, "env", j.Env)
	}

	delivery := insightsService(c, db)
	d := commands.New(commands.Options{Engine: engine, Policy: policy(c), Catalog: catalog(c), Sender: bound, Buttons: db, Audit: db, Log: log,
		Observe: stats.Command, Insights: delivery, AwaitCard: awaitCard(jobPosts, relay, log),
		Notices: queue(db, relay)})
	door.SetHandler(d)
	mcpDoor.SetHandler(d)
	if err := hooks.SetDeployer(ctx, ruleDeployer{h: d, db: db}); err != nil {
		return fmt.Errorf("auto-deploy: %w", err)
	}
	digest, err := digestScheduler(c, delivery, db, relay, log)
	if err != nil {
		return err
	}
	log.Info("shipbot started", "version", version, "config", c.Source, "database", c.Bot.Database)

	runCtx, stopChat := context.WithCancel(context.Background())
	defer stopChat()
	go expireLoop(runCtx, engine, log)
	go schedule.Every(runCtx, time.Second, "lock expiry", d.WatchLocks, log)
	watchReload(runCtx, &reloader{live: lv, d: d, db: db, wake: relay.Wake, log: log})
	sched.Start()
	defer sched.Stop()
	if digest != nil {
		digest.Start()
		defer digest.Stop()
	}
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relay.Run(runCtx) }()

	chatDone := make(chan error, 1)
	if sh != nil {
		sh.SetHandler(d)
		go func() { chatDone <- sh.Run(runCtx) }()
	}
	var background sync.WaitGroup
	// Stop the adapters first, then wait for them, on every way out.
	defer func() { stopChat(); background.Wait() }()
	if tg != nil {
		tg.SetHandler(d)
		background.Add(1)
		go func() {
			defer background.Done()
			if err := tg.Run(runCtx); err != nil {
				log.Error("telegram stopped", "err", err)
			}
		}()
	}
	if sl != nil {
		sl.SetHandler(d)
		background.Add(1)
		go func() {
			defer background.Done()
			if err := sl.Run(runCtx); err != nil {
				log.Error("slack stopped", "err", err)
			}
		}()
	}
	if c.HTTP.Listen != "" {
		var routes []httpserver.Route
		if tg != nil && c.Chat.Telegram.Mode == "webhook" {
			routes = append(routes, httpserver.Route{Path: tg.WebhookPath(), Handler: tg.WebhookHandler()})
		}
		for _, r := range hooks.Routes() {
			routes = append(routes, httpserver.Route{Path: r.Path, Handler: r.Handler})
		}
		routes = append(routes, httpserver.Route{Path: "/metrics", Method: http.MethodGet, Handler: stats.Handler()})
		if c.API.Enabled() {
			for _, r := range door.Routes() {
				routes = append(routes, httpserver.Route{Path: r.Path, Method: r.Method, Handler: r.Handler})
			}
			go func() { <-runCtx.Done(); door.Close() }() // event streams end before the server waits for them
		}
		routes = append(routes, mcpRoutes(c, mcpDoor)...)
		if sl != nil && sl.Mode() == slack.ModeHTTP {
			for _, r := range sl.Routes(c.Chat.Slack.Path) {
				routes = append(routes, httpserver.Route{Path: r.Path, Handler: r.Handler})
			}
		}
		srv, err := httpserver.Listen(c.HTTP.Listen, httpserver.NewRouter(db, log, routes...))
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		log.Info("http listening", "addr", srv.Addr())
		background.Add(1)
		go func() {
			defer background.Done()
			if err := srv.Serve(runCtx); err != nil {
				log.Error("http server stopped", "err", err)
			}
		}()
	}
	select {
	case err := <-chatDone:
		// stdin closed: the shell has already waited for running jobs.
		if err != nil {
			log.Warn("chat ended", "err", err)
		}
	case <-ctx.Done():
		log.Info("shutting down: no new work, waiting for running jobs", "deadline", c.Bot.ShutdownTimeout.Duration)
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), c.Bot.ShutdownTimeout.Duration)
	defer cancel()
	// While draining the chat stays up, so people get a clear refusal.
	engine.Drain(drainCtx)
	// The last cards are in the outbox either way; a short wait lets the
	// relay deliver them now rather than at the next start.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	_ = outboxDrained(flushCtx, func(ctx context.Context) (int, error) {
		pending, _, err := db.OutboxDepth(ctx)
		return pending, err
	})
	stopChat()
	<-relayDone
	log.Info("shipbot stopped")
	return nil
}

// observers fans job changes out to the watchers in this process (the
// scheduler, the API's and MCP's waits).
type observers []deploy.Observer

// lateObserver forwards to an observer created after the engine.
type lateObserver struct{ s deploy.Observer }

func (l *lateObserver) JobChanged(j deploy.Job) {
	if l.s != nil {
		l.s.JobChanged(j)
	}
}

func (o observers) JobChanged(j deploy.Job) {
	for _, x := range o {
		x.JobChanged(j)
	}
}

func pipelineOptions(c *config.Config, db *sqlite.DB, relay *notify.Relay, stats *metrics.Metrics, log *slog.Logger) pipeline.Options {
	pc := c.Pipelines
	o := pipeline.Options{Store: db, Wake: relay.Wake, Count: stats.Webhook, Log: log, Projects: map[string]string{},
		AutoDeploy: autoRules(c), Auto: db,
		Secrets: pipeline.Secrets{GitLab: pc.GitLabToken, GitHub: pc.GitHubSecret, Generic: pc.GenericSecret,
			Dokploy: pc.DokploySecret, DokployHeader: pc.DokployHeader}}
	for _, r := range pc.Routes {
		rule := pipeline.Rule{Sources: r.Sources, Projects: r.Projects, Refs: r.Refs, Statuses: r.Statuses, Workflows: r.Workflows}
		for _, ch := range r.Chats {
			if cp, err := notify.ParseChannel(ch); err == nil { // validated with the config
				rule.Chats = append(rule.Chats, cp)
			}
		}
		o.Routes = append(o.Routes, rule)
	}
	for _, b := range pc.DeployButtons {
		o.Offers = append(o.Offers, pipeline.DeployOffer{Project: b.Project, Ref: b.Ref, App: b.App, Env: b.Env, Workflows: b.Workflows,
			ByName: c.Apps[b.App].Envs[b.Env].Driver == "dokploy"})
	}
	for name, a := range c.Apps {
		if a.Project != "" {
			o.Projects[name] = a.Project
		}
	}
	return o
}

// chatDenial records a request a chat adapter refused before it reached the
// dispatcher (a chat or channel not allowed) as an audit denial.
func chatDenial(db *sqlite.DB, log *slog.Logger) func(ctx context.Context, identity, chat, reason string) {
	return func(ctx context.Context, identity, chat, reason string) {
		ev := audit.Denial(audit.Who{Identity: identity, Chat: chat}, "message", nil, "", "", reason)
		if err := db.Append(ctx, ev); err != nil {
			log.Error("denial not recorded", "identity", identity, "err", err)
		}
	}
}

func expireLoop(ctx context.Context, e *deploy.Engine, log *slog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.ExpireApprovals(ctx); err != nil {
				log.Warn("approval expiry", "err", err)
			}
		}
	}
}

func buildDrivers(c *config.Config, db *sqlite.DB) (map[string]deploy.Driver, error) {
	out := map[string]deploy.Driver{}
	health := httpcheck.New(&http.Client{Timeout: time.Minute})
	keys := &sshKeys{signers: map[string]gossh.Signer{}, knownHosts: map[string]gossh.HostKeyCallback{}}
	for app, a := range c.Apps {
		for env, e := range a.Envs {
			r := c.Recipe(app, env)
			var d deploy.Driver
			switch e.Driver {
			case "local":
				d = local.New(r, local.Options{Health: health})
			case "ssh":
				hosts, err := keys.hosts(e.SSH)
				if err != nil {
					return nil, fmt.Errorf("%s/%s: %w", app, env, err)
				}
				d = sshdriver.New(r, hosts, e.SSH.Parallel, health)
			case "dokploy":
				dd, err := dokployDriver(app, env, e, r, health, db)
				if err != nil {
					return nil, fmt.Errorf("%s/%s: %w", app, env, err)
				}
				out[app+"/"+env] = withCrashPoint(dd)
				continue
			default:
				return nil, fmt.Errorf("%s/%s: driver %q is not available in this build", app, env, e.Driver)
			}
			out[app+"/"+env] = withBackups(withCrashPoint(d), releaseRunner(d), e.Backup)
		}
	}
	return out, nil
}

func policy(c *config.Config) *commands.Policy {
	users := map[string]commands.UserSpec{}
	for name, u := range c.Users {
		users[name] = commands.UserSpec{Identities: u.Identities, Roles: u.Roles}
	}
	roles := map[string][]string{}
	for name, r := range c.Roles {
		roles[name] = r.Permissions
	}
	return commands.NewPolicy(users, roles)
}

func catalog(c *config.Config) commands.Catalog {
	cat := commands.Catalog{}
	for app, a := range c.Apps {
		cat[app] = map[string]commands.EnvInfo{}
		for env, e := range a.Envs {
			cat[app][env] = commands.EnvInfo{Driver: e.Driver, DefaultRef: e.Fetch.Ref, Approval: deploy.ApprovalPolicy{
				Required: e.Approval.Required, Roles: e.Approval.ApproverRoles, TTL: e.Approval.TTL.Duration},
				LockTTL: e.Lock.DefaultTTL.Duration}
		}
	}
	return cat
}

// shellUsers are the users /as may switch to: those with a shell identity.
func shellUsers(c *config.Config) []string {
	var out []string
	for _, u := range c.Users {
		for _, id := range u.Identities {
			if name, ok := strings.CutPrefix(id, "shell:"); ok {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// sshKeys loads each key file and known_hosts file once, at start-up, so a
// missing or badly protected key stops the bot naming the file instead of
// failing the first deploy.
type sshKeys struct {
	signers    map[string]gossh.Signer
	knownHosts map[string]gossh.HostKeyCallback
}

func (k *sshKeys) hosts(c *config.SSH) ([]sshdriver.HostConfig, error) {
	signer, ok := k.signers[c.KeyFile]
	if !ok {
		var err error
		if signer, err = sshdriver.LoadSigner(c.KeyFile); err != nil {
			return nil, fmt.Errorf("ssh.key_file: %w", err)
		}
		k.signers[c.KeyFile] = signer
	}
	cb, ok := k.knownHosts[c.KnownHosts]
	if !ok {
		var err error
		if cb, err = sshdriver.HostKeyCallback(c.KnownHosts); err != nil {
			return nil, fmt.Errorf("ssh.known_hosts: %w", err)
		}
		k.knownHosts[c.KnownHosts] = cb
	}
	out := make([]sshdriver.HostConfig, 0, len(c.Hosts))
	for _, h := range c.Hosts {
		addr, err := sshdriver.NormalizeAddr(h)
		if err != nil {
			return nil, fmt.Errorf("ssh.hosts: %w", err)
		}
		out = append(out, sshdriver.HostConfig{Name: h, Addr: addr, User: c.User, Signer: signer, HostKeys: cb,
			ConnectTimeout: c.ConnectTimeout.Duration, Keepalive: c.Keepalive.Duration})
	}
	return out, nil
}

// queue writes posts to the outbox and wakes the relay: how the messages
// shipbot says on its own (alerts, digests, lock notices) reach the chats.
func queue(db *sqlite.DB, relay *notify.Relay) func(ctx context.Context, posts ...notify.Post) error {
	return func(ctx context.Context, posts ...notify.Post) error {
		if err := db.Enqueue(ctx, posts...); err != nil {
			return err
		}
		relay.Wake()
		return nil
	}
}

// awaitCard waits until a new job's card is in its chat, up to a few
// seconds: a chat that does not answer (a 429, an outage) delays the
// command's end, never the job, and the relay keeps trying.
func awaitCard(posts *notify.JobPosts, relay *notify.Relay, log *slog.Logger) func(context.Context, *deploy.Job) {
	return func(ctx context.Context, j *deploy.Job) {
		ch, ok := posts.CardChannel(*j)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := relay.WaitPosted(ctx, notify.CardTopic(j.ID), ch); err != nil {
			log.Info("job card not in the chat yet; the relay keeps trying", "job", j.ID, "err", err)
		}
	}
}

// outboxDrained returns once pending counts no row waiting for delivery,
// or when ctx ends: the shell's end of input waits for the last cards to
// be printed, a shutdown briefly for the rest.
func outboxDrained(ctx context.Context, pendingRows func(context.Context) (int, error)) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pending, err := pendingRows(ctx)
		if err != nil || pending == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
