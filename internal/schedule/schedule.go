// Package schedule runs shipbot's timed work from cron specs (robfig/cron):
// scheduled backups and restore drills, submitted to the engine as jobs of
// the "scheduler" actor, and housekeeping. A scheduled job that cannot
// start or that fails raises an alert; its result reaches the env's
// notification routes like any job's.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Engine is what the scheduler needs of the deploy engine.
type Engine interface {
	Submit(ctx context.Context, r deploy.JobRequest) (*deploy.Job, error)
	Backups(ctx context.Context, app, env string) ([]deploy.Backup, error)
}

var _ Engine = (*deploy.Engine)(nil)

// Entry is one scheduled backup or drill.
type Entry struct {
	Spec     string // cron spec, 5 fields or a descriptor like @daily
	App, Env string
	Action   deploy.Action // ActionBackup or ActionVerify
}

// Task is housekeeping run on a schedule.
type Task struct {
	Spec string
	Name string
	Run  func(ctx context.Context) error
}

// Options configure a Scheduler.
type Options struct {
	Engine  Engine
	Entries []Entry
	Tasks   []Task
	// Alert tells people that scheduled work did not happen or failed
	// (the admin chat, through the outbox). It must not block for long.
	Alert func(ctx context.Context, title, text string)
	Log   *slog.Logger
	// Location is the time zone specs are read in; nil means local time.
	Location *time.Location
}

// Scheduler runs Entries and Tasks. Lifecycle: New, Start, then Stop once;
// Stop waits for runs in progress to return (jobs they submitted go on in
// the engine, which drains them).
type Scheduler struct {
	o    Options
	cron *cron.Cron
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running map[string]bool // app/env/action whose last run has not returned
}

// Who is the actor of scheduled jobs.
var Who = deploy.Who{User: deploy.SchedulerUser, Identity: "shipbot:scheduler"}

// New parses every spec; an invalid one is an error naming it.
func New(o Options) (*Scheduler, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	loc := o.Location
	if loc == nil {
		loc = time.Local
	}
	s := &Scheduler{o: o, log: o.Log, running: map[string]bool{},
		cron: cron.New(cron.WithLocation(loc), cron.WithChain(cron.Recover(cronLogger{o.Log})))}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, e := range o.Entries {
		e := e
		if e.Action != deploy.ActionBackup && e.Action != deploy.ActionVerify {
			return nil, fmt.Errorf("schedule %s/%s: action %q cannot be scheduled", e.App, e.Env, e.Action)
		}
		if _, err := s.cron.AddFunc(e.Spec, func() { s.Fire(s.ctx, e) }); err != nil {
			return nil, fmt.Errorf("schedule %s/%s %s %q: %w", e.App, e.Env, e.Action, e.Spec, err)
		}
	}
	for _, t := range o.Tasks {
		t := t
		if _, err := s.cron.AddFunc(t.Spec, func() {
			if err := t.Run(s.ctx); err != nil {
				s.log.Warn("scheduled task failed", "task", t.Name, "err", err)
			}
		}); err != nil {
			return nil, fmt.Errorf("schedule task %s %q: %w", t.Name, t.Spec, err)
		}
	}
	return s, nil
}

// Start runs the schedule in the background.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop ends the schedule and waits for runs in progress.
func (s *Scheduler) Stop() {
	s.cancel()
	<-s.cron.Stop().Done()
}

// Next is when each entry runs next, for /status-like listings and tests.
func (s *Scheduler) Next() []time.Time {
	var out []time.Time
	for _, e := range s.cron.Entries() {
		out = append(out, e.Next)
	}
	return out
}

// Fire submits one entry now. A drill verifies the newest good backup. If
// the job cannot be created (the env is locked, no backup exists) the
// alert says so: a silently skipped backup is how backups stop existing.
func (s *Scheduler) Fire(ctx context.Context, e Entry) {
	key := e.App + "/" + e.Env + "/" + string(e.Action)
	s.mu.Lock()
	if s.running[key] {
		s.mu.Unlock()
		s.log.Warn("scheduled run skipped: the previous one is still being submitted", "entry", key)
		return
	}
	s.running[key] = true
	s.mu.Unlock()
	defer func() { s.mu.Lock(); delete(s.running, key); s.mu.Unlock() }()

	req := deploy.JobRequest{Who: Who, App: e.App, Env: e.Env, Action: e.Action, Args: []string{"scheduled: " + e.Spec}}
	if e.Action == deploy.ActionVerify {
		id, err := s.newestBackup(ctx, e.App, e.Env)
		if err != nil {
			s.alert(ctx, e, err)
			return
		}
		req.Backup = id
		req.Args = append(req.Args, id)
	}
	j, err := s.o.Engine.Submit(ctx, req)
	if err != nil {
		s.alert(ctx, e, err)
		return
	}
	s.log.Info("scheduled job started", "job", j.ID, "app", e.App, "env", e.Env, "action", e.Action)
}

func (s *Scheduler) newestBackup(ctx context.Context, app, env string) (string, error) {
	bs, err := s.o.Engine.Backups(ctx, app, env)
	if err != nil {
		return "", err
	}
	for _, b := range bs {
		if b.State == deploy.BackupOK {
			return b.ID, nil
		}
	}
	return "", errors.New("there is no good backup to drill")
}

func (s *Scheduler) alert(ctx context.Context, e Entry, err error) {
	title := fmt.Sprintf("Scheduled %s of %s/%s did not start", what(e.Action), e.App, e.Env)
	s.log.Error("scheduled job not started", "app", e.App, "env", e.Env, "action", e.Action, "err", err)
	if s.o.Alert != nil {
		s.o.Alert(ctx, title, err.Error())
	}
}

func what(a deploy.Action) string {
	if a == deploy.ActionVerify {
		return "restore drill"
	}
	return "backup"
}

// JobChanged implements deploy.Observer: a scheduled job that ends badly
// raises an alert.
func (s *Scheduler) JobChanged(j deploy.Job) {
	if j.RequestedBy.User != deploy.SchedulerUser {
		return
	}
	switch j.State {
	case deploy.Failed, deploy.Interrupted, deploy.Cancelled:
	default:
		return
	}
	if s.o.Alert == nil {
		return
	}
	title := fmt.Sprintf("Scheduled %s of %s/%s %s (job #%d)", what(j.Action), j.App, j.Env, j.State, j.ID)
	s.o.Alert(context.Background(), title, j.Reason)
}

var _ deploy.Observer = (*Scheduler)(nil)

// cronLogger adapts slog to cron's logger for panics in runs.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
