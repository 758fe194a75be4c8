package schedule_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/schedule"
)

type alerts struct {
	mu  sync.Mutex
	got []string
}

func (a *alerts) add(_ context.Context, title, text string) {
	a.mu.Lock()
	a.got = append(a.got, title+": "+text)
	a.mu.Unlock()
}

func (a *alerts) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

type rig struct {
	store  *deploytest.Store
	driver *deploytest.BackupDriver
	engine *deploy.Engine
	alerts *alerts
	sched  *schedule.Scheduler
}

func newRig(t *testing.T, entries ...schedule.Entry) *rig {
	t.Helper()
	r := &rig{store: deploytest.NewStore(), driver: deploytest.NewBackupDriver(), alerts: &alerts{}}
	obs := &observer{}
	r.engine = deploy.NewEngine(deploy.Options{Store: r.store, Observer: obs,
		Drivers: func(app, env string) (deploy.Driver, bool) { return r.driver, app == "demo" }})
	s, err := schedule.New(schedule.Options{Engine: r.engine, Entries: entries, Alert: r.alerts.add})
	if err != nil {
		t.Fatal(err)
	}
	obs.s = s
	r.sched = s
	t.Cleanup(func() {
		s.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.engine.Drain(ctx)
	})
	return r
}

type observer struct{ s *schedule.Scheduler }

func (o *observer) JobChanged(j deploy.Job) {
	if o.s != nil {
		o.s.JobChanged(j)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for state
	}
}

func jobs(t *testing.T, s *deploytest.Store, states ...deploy.State) []*deploy.Job {
	js, err := s.Jobs(context.Background(), deploy.JobFilter{States: states})
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestCronSpecRunsScheduledBackup(t *testing.T) {
	r := newRig(t, schedule.Entry{Spec: "@every 1s", App: "demo", Env: "prod", Action: deploy.ActionBackup})
	r.sched.Start()
	waitFor(t, "a scheduled backup to succeed", func() bool { return len(jobs(t, r.store, deploy.Succeeded)) > 0 })
	j := jobs(t, r.store, deploy.Succeeded)[0]
	if j.Action != deploy.ActionBackup || j.RequestedBy.User != deploy.SchedulerUser {
		t.Fatalf("job = %+v", j)
	}
	b, err := r.store.Backup(context.Background(), "demo", "prod", j.Backup)
	if err != nil || b.Reason != "scheduled" {
		t.Fatalf("record %+v %v", b, err)
	}
	if a := r.alerts.all(); len(a) != 0 {
		t.Errorf("alerts for a good backup: %v", a)
	}
}

func TestFailedScheduledBackupAlerts(t *testing.T) {
	r := newRig(t)
	r.driver.BackupErr = errors.New("mysqldump: Got error: 1045 Access denied")
	e := schedule.Entry{Spec: "@daily", App: "demo", Env: "prod", Action: deploy.ActionBackup}
	r.sched.Fire(context.Background(), e)
	waitFor(t, "an alert", func() bool { return len(r.alerts.all()) > 0 })
	a := r.alerts.all()[0]
	if !strings.Contains(a, "Scheduled backup of demo/prod failed") || !strings.Contains(a, "Access denied") {
		t.Errorf("alert = %q", a)
	}
}

func TestScheduledBackupThatCannotStartAlerts(t *testing.T) {
	r := newRig(t)
	if err := r.engine.Lock(context.Background(), "demo", "prod", "maintenance", deploy.Who{User: "ann"}); err != nil {
		t.Fatal(err)
	}
	r.sched.Fire(context.Background(), schedule.Entry{Spec: "@daily", App: "demo", Env: "prod", Action: deploy.ActionBackup})
	a := r.alerts.all()
	if len(a) != 1 || !strings.Contains(a[0], "did not start") || !strings.Contains(a[0], "locked by ann") {
		t.Fatalf("alerts = %v", a)
	}
}

func TestScheduledDrillVerifiesNewestGoodBackup(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	// Without any backup the drill cannot start, and says why.
	drill := schedule.Entry{Spec: "@weekly", App: "demo", Env: "prod", Action: deploy.ActionVerify}
	r.sched.Fire(ctx, drill)
	if a := r.alerts.all(); len(a) != 1 || !strings.Contains(a[0], "no good backup") {
		t.Fatalf("alerts = %v", a)
	}
	r.sched.Fire(ctx, schedule.Entry{Spec: "@daily", App: "demo", Env: "prod", Action: deploy.ActionBackup})
	waitFor(t, "the backup", func() bool { return len(jobs(t, r.store, deploy.Succeeded)) == 1 })
	newest := jobs(t, r.store, deploy.Succeeded)[0].Release
	r.sched.Fire(ctx, drill)
	waitFor(t, "the drill", func() bool { return len(jobs(t, r.store, deploy.Succeeded)) == 2 })
	j := jobs(t, r.store, deploy.Succeeded)[0]
	if j.Action != deploy.ActionVerify || j.Release != newest {
		t.Errorf("drill job %s of %q, want verify of %q", j.Action, j.Release, newest)
	}
}

func TestInvalidSpecIsRefused(t *testing.T) {
	_, err := schedule.New(schedule.Options{Entries: []schedule.Entry{{Spec: "every night", App: "a", Env: "b", Action: deploy.ActionBackup}}})
	if err == nil || !strings.Contains(err.Error(), "a/b") {
		t.Fatalf("err = %v", err)
	}
	_, err = schedule.New(schedule.Options{Entries: []schedule.Entry{{Spec: "@daily", App: "a", Env: "b", Action: deploy.ActionRestore}}})
	if err == nil || !strings.Contains(err.Error(), "cannot be scheduled") {
		t.Fatalf("a scheduled restore was accepted: %v", err)
	}
}
