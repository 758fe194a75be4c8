package deploy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
)

type backupRig struct {
	*rig
	bd     *deploytest.BackupDriver
	policy deploy.BackupPolicy
}

func newBackupRig(t *testing.T, pol deploy.BackupPolicy) *backupRig {
	t.Helper()
	r := &rig{store: deploytest.NewStore(), obs: &recorder{}, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	br := &backupRig{rig: r, bd: deploytest.NewBackupDriver(), policy: pol}
	r.driver = br.bd.Driver
	r.engine = deploy.NewEngine(deploy.Options{
		Store:        r.store,
		Drivers:      func(app, env string) (deploy.Driver, bool) { return br.bd, app == "demo" },
		Observer:     r.obs,
		Now:          r.clock,
		Redactor:     audit.NewRedactor(audit.NewSecret("hunter22")),
		BackupPolicy: func(app, env string) deploy.BackupPolicy { return br.policy },
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.engine.Drain(ctx)
	})
	return br
}

func (r *backupRig) submit(t *testing.T, req deploy.JobRequest) *deploy.Job {
	t.Helper()
	if req.App == "" {
		req.App, req.Env = "demo", "prod"
	}
	j, err := r.engine.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("submit %s: %v", req.Action, err)
	}
	return j
}

func (r *backupRig) backupOK(t *testing.T) deploy.Backup {
	t.Helper()
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionBackup})
	if j.State != deploy.Queued {
		t.Fatalf("backup job state = %s; a backup needs no approval", j.State)
	}
	waitState(t, r.store, j.ID, deploy.Succeeded)
	b, err := r.store.Backup(context.Background(), "demo", "prod", j.Backup)
	if err != nil {
		t.Fatal(err)
	}
	return *b
}

func TestBackupJobRecordsAndPrunesByAgeAndCount(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{MaxAge: 30 * 24 * time.Hour, Keep: 3})
	ctx := context.Background()
	first := r.backupOK(t)
	if first.State != deploy.BackupOK || first.By != "alice" || first.Reason != "manual" || len(first.Files) != 2 || first.Files[0].SHA256 == "" {
		t.Fatalf("record = %+v", first)
	}
	// A failed backup is recorded failed and never counts or gets pruned.
	r.bd.BackupErr = errors.New("disk full")
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionBackup})
	failed := waitState(t, r.store, j.ID, deploy.Failed)
	if !strings.Contains(failed.Reason, "disk full") {
		t.Errorf("reason = %q", failed.Reason)
	}
	r.bd.BackupErr = nil

	r.advance(31 * 24 * time.Hour) // first is now too old
	second := r.backupOK(t)
	if r.bd.Has(first.ID) || !r.bd.Has(second.ID) {
		t.Fatalf("age pruning: first on target %v, second %v", r.bd.Has(first.ID), r.bd.Has(second.ID))
	}
	third, fourth := r.backupOK(t), r.backupOK(t)
	if !r.bd.Has(second.ID) {
		t.Fatal("count pruning removed a backup while 3 were kept")
	}
	fifth := r.backupOK(t) // 4 good ones now: the oldest (second) goes
	if r.bd.Has(second.ID) {
		t.Error("count pruning kept the oldest of 4 with keep=3")
	}
	for _, b := range []deploy.Backup{third, fourth, fifth} {
		if !r.bd.Has(b.ID) {
			t.Errorf("backup %s was pruned but is within retention", b.ID)
		}
	}
	if got := strings.Join(r.bd.Deleted(), ","); got != first.ID+","+second.ID {
		t.Errorf("deleted %s, want exactly %s,%s", got, first.ID, second.ID)
	}
	all, _ := r.store.Backups(ctx, "demo", "prod")
	states := map[deploy.BackupState]int{}
	for _, b := range all {
		states[b.State]++
	}
	if states[deploy.BackupOK] != 3 || states[deploy.BackupPruned] != 2 || states[deploy.BackupFailed] != 1 {
		t.Errorf("record states = %v", states)
	}
	last, _ := r.store.Job(ctx, j.ID+4)
	if last == nil || !strings.Contains(last.Reason, "pruned "+second.ID) {
		t.Errorf("the job that pruned does not say so: %+v", last)
	}
	// Restoring a pruned backup is refused with a clear message.
	_, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "prod", Action: deploy.ActionRestore, Backup: first.ID})
	var ref *deploy.Refusal
	if !errors.As(err, &ref) || !strings.Contains(err.Error(), "pruned") {
		t.Errorf("restore of a pruned backup = %v", err)
	}
}

func TestRestoreAlwaysNeedsApprovalAndTakesSafetyBackup(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{})
	ctx := context.Background()
	b := r.backupOK(t)
	// Even on an env without an approval policy.
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRestore, Backup: b.ID})
	if j.State != deploy.AwaitingApproval || j.ApprovalID == "" {
		t.Fatalf("restore job = %s, want awaiting approval", j.State)
	}
	if _, err := r.engine.Decide(ctx, j.ApprovalID, alice, true); !errors.Is(err, deploy.ErrSelfApprove) {
		t.Fatalf("self-approval = %v", err)
	}
	if len(r.bd.Restored()) != 0 {
		t.Fatal("restore ran without approval")
	}
	if _, err := r.engine.Decide(ctx, j.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	done := waitState(t, r.store, j.ID, deploy.Succeeded)
	if got := r.bd.Restored(); len(got) != 1 || got[0] != b.ID {
		t.Fatalf("restored %v", got)
	}
	if done.BackupID == "" || !strings.HasSuffix(done.BackupID, "-safety") || !r.bd.Has(done.BackupID) {
		t.Fatalf("safety backup %q not taken", done.BackupID)
	}
	if !strings.Contains(done.Reason, "safety backup "+done.BackupID) {
		t.Errorf("reason = %q", done.Reason)
	}
	// A restore whose safety backup fails restores nothing.
	r.bd.BackupErr = errors.New("no space")
	j2 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRestore, Backup: b.ID})
	if _, err := r.engine.Decide(ctx, j2.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	failed := waitState(t, r.store, j2.ID, deploy.Failed)
	if !strings.Contains(failed.Reason, "nothing was restored") || len(r.bd.Restored()) != 1 {
		t.Errorf("reason %q, restores %v", failed.Reason, r.bd.Restored())
	}
}

func TestBackupBeforeDeployGatesTheDeploy(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{BeforeDeploy: true})
	ctx := context.Background()
	r.bd.BackupErr = errors.New("mysqldump: access denied")
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionDeploy, Ref: "v1"})
	failed := waitState(t, r.store, j.ID, deploy.Failed)
	if r.bd.Deploys.Load() != 0 {
		t.Fatal("the deploy ran although its backup failed")
	}
	if !strings.Contains(failed.Reason, "pre-deploy backup failed") || !strings.Contains(failed.Reason, "access denied") {
		t.Errorf("reason = %q", failed.Reason)
	}
	if _, err := r.store.Lock(ctx, "demo", "prod"); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("lock after the refused deploy: %v", err)
	}

	r.bd.BackupErr = nil
	j1 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionDeploy, Ref: "v1"})
	waitState(t, r.store, j1.ID, deploy.Succeeded)
	j2 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionDeploy, Ref: "v2"})
	d2 := waitState(t, r.store, j2.ID, deploy.Succeeded)
	rels, _ := r.store.Releases(ctx, "demo", "prod")
	var rec deploy.Release
	for _, x := range rels {
		if x.ID == d2.Release {
			rec = x
		}
	}
	if rec.BackupID == "" || rec.BackupID != d2.BackupID || !r.bd.Has(rec.BackupID) {
		t.Fatalf("release %s records backup %q (job says %q)", rec.ID, rec.BackupID, d2.BackupID)
	}

	// /rollback --with-db: always approval, bound to release + backup.
	rb := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRollback, WithDB: true})
	if rb.State != deploy.AwaitingApproval || rb.BackupID != rec.BackupID {
		t.Fatalf("with-db rollback = %s backup %q", rb.State, rb.BackupID)
	}
	a, _ := r.store.Approval(ctx, rb.ApprovalID)
	if a.Version != rb.RollbackTo+"+db:"+rec.BackupID {
		t.Errorf("approval bound to %q", a.Version)
	}
	if _, err := r.engine.Decide(ctx, rb.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	done := waitState(t, r.store, rb.ID, deploy.Succeeded)
	if got := r.bd.Restored(); len(got) != 1 || got[0] != rec.BackupID+" (db)" {
		t.Errorf("restores = %v, want the database of %s", got, rec.BackupID)
	}
	if r.bd.Current() != d2.FromRelease {
		t.Errorf("current = %s, want %s", r.bd.Current(), d2.FromRelease)
	}
	if !strings.Contains(done.Reason, "restored databases from backup "+rec.BackupID) {
		t.Errorf("reason = %q", done.Reason)
	}
	// Without a pre-deploy backup --with-db is refused, and says why.
	r.policy.BeforeDeploy = false
	j3 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionDeploy, Ref: "v3"})
	waitState(t, r.store, j3.ID, deploy.Succeeded)
	_, err := r.engine.Submit(ctx, deploy.JobRequest{Who: alice, App: "demo", Env: "prod", Action: deploy.ActionRollback, WithDB: true})
	if err == nil || !strings.Contains(err.Error(), "without a backup") {
		t.Errorf("with-db rollback without a backup = %v", err)
	}
}

func TestBackupOnEnvWithoutBackupsIsRefused(t *testing.T) {
	r := newRig(t)
	_, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "prod", Action: deploy.ActionBackup})
	var ref *deploy.Refusal
	if !errors.As(err, &ref) || !strings.Contains(err.Error(), "no backup configured") {
		t.Fatalf("err = %v", err)
	}
	if n := len(r.store.Events()); n != 0 {
		t.Errorf("a refused request wrote %d audit rows", n)
	}
}

func TestVerifyRecordsDrill(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{})
	b := r.backupOK(t)
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionVerify, Backup: b.ID})
	if j.State != deploy.Queued {
		t.Fatalf("drill state %s", j.State)
	}
	done := waitState(t, r.store, j.ID, deploy.Succeeded)
	got, _ := r.store.Backup(context.Background(), "demo", "prod", b.ID)
	if got.Verified.IsZero() || got.Drill != "1 file ok" || !strings.Contains(done.Reason, "verified") {
		t.Errorf("record %+v, reason %q", got, done.Reason)
	}
	r.bd.VerifyErr = errors.New("checksum mismatch, the backup is damaged: files.tar.gz")
	j2 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionVerify, Backup: b.ID})
	if f := waitState(t, r.store, j2.ID, deploy.Failed); !strings.Contains(f.Reason, "checksum mismatch") {
		t.Errorf("reason = %q", f.Reason)
	}
}

func TestWithDBNeedsADatabaseDump(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{BeforeDeploy: true})
	r.bd.FilesOnly = true
	for _, ref := range []string{"v1", "v2"} {
		j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionDeploy, Ref: ref})
		waitState(t, r.store, j.ID, deploy.Succeeded)
	}
	_, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "prod", Action: deploy.ActionRollback, WithDB: true})
	var ref *deploy.Refusal
	if !errors.As(err, &ref) || !strings.Contains(err.Error(), "holds no database dump") {
		t.Fatalf("with-db rollback over a files-only backup: %v", err)
	}
}

func TestRestoreRefusedBeforeSafetyBackupWhenStagingFails(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{})
	ctx := context.Background()
	b := r.backupOK(t)
	r.bd.StageErr = errors.New("checksum mismatch, the backup is damaged: db-main.sql.gz")
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRestore, Backup: b.ID})
	if _, err := r.engine.Decide(ctx, j.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	failed := waitState(t, r.store, j.ID, deploy.Failed)
	if !strings.Contains(failed.Reason, "nothing was changed") || !strings.Contains(failed.Reason, "checksum mismatch") {
		t.Errorf("reason = %q", failed.Reason)
	}
	all, _ := r.store.Backups(ctx, "demo", "prod")
	for _, x := range all {
		if x.Reason == "safety" {
			t.Errorf("a safety backup %s was taken although the restore was refused while staging", x.ID)
		}
	}
	if got := r.bd.Restored(); len(got) != 0 {
		t.Errorf("applied %v", got)
	}
}

func TestRestorePutsBackChangedPartsWhenALaterPartFails(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{})
	ctx := context.Background()
	b := r.backupOK(t)
	failSafety := false
	r.bd.ApplyErr = func(id string) error {
		if id == b.ID || failSafety {
			return &deploy.ApplyError{Part: "db-main.sql.gz", Touched: []string{"files.tar.gz", "db-main.sql.gz"},
				Err: errors.New("DROP command denied")}
		}
		return nil
	}
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRestore, Backup: b.ID})
	if _, err := r.engine.Decide(ctx, j.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	failed := waitState(t, r.store, j.ID, deploy.Failed)
	safety := failed.BackupID
	if !strings.HasSuffix(safety, "-safety") {
		t.Fatalf("safety backup = %q", safety)
	}
	// The restore was staged (checked) before the safety backup existed,
	// and the undo staged only the parts that were changed.
	stages := r.bd.Stages()
	if len(stages) != 2 || stages[0] != b.ID || stages[1] != safety+" [files.tar.gz,db-main.sql.gz]" {
		t.Fatalf("stages = %v", stages)
	}
	if got := r.bd.Restored(); len(got) != 1 || got[0] != stages[1] {
		t.Fatalf("applied %v, want only the put-back", got)
	}
	for _, want := range []string{"DROP command denied", "files.tar.gz, db-main.sql.gz", "were put back from safety backup " + safety, "as it was before"} {
		if !strings.Contains(failed.Reason, want) {
			t.Errorf("reason lacks %q: %s", want, failed.Reason)
		}
	}

	// When putting back fails too, the job says the env is partly restored.
	failSafety = true
	j2 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRestore, Backup: b.ID})
	if _, err := r.engine.Decide(ctx, j2.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	f2 := waitState(t, r.store, j2.ID, deploy.Failed)
	if !strings.Contains(f2.Reason, "PARTLY restored") || !strings.Contains(f2.Reason, "ALSO failed") {
		t.Errorf("reason = %q", f2.Reason)
	}

	// Put back, but the app does not come up after it: the data is as it
	// was, and the reason says the restart failed, not the put-back.
	r.bd.ApplyErr = func(id string) error {
		if id == b.ID {
			return &deploy.ApplyError{Part: "db-main.sql.gz", Touched: []string{"files.tar.gz"}, Err: errors.New("DROP command denied")}
		}
		return &deploy.RestartError{Err: errors.New("health check failed")}
	}
	j3 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRestore, Backup: b.ID})
	if _, err := r.engine.Decide(ctx, j3.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	f3 := waitState(t, r.store, j3.ID, deploy.Failed)
	if !strings.Contains(f3.Reason, "as it was before the restore, but restarting the app afterwards failed: health check failed") ||
		strings.Contains(f3.Reason, "PARTLY") {
		t.Errorf("reason = %q", f3.Reason)
	}
}

func TestFailedDrillIsRecordedOnTheBackup(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{})
	b := r.backupOK(t)
	r.bd.VerifyErr = errors.New("loading db-main.sql.gz into scratch database failed: ERROR 1227 (42000) at line 40")
	j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionVerify, Backup: b.ID})
	waitState(t, r.store, j.ID, deploy.Failed)
	got, _ := r.store.Backup(context.Background(), "demo", "prod", b.ID)
	if !got.DrillFailed() || got.Verified.IsZero() || !strings.Contains(got.Drill, "ERROR 1227") {
		t.Errorf("record after a failed drill: %+v", got)
	}
	r.bd.VerifyErr = nil
	j2 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionVerify, Backup: b.ID})
	waitState(t, r.store, j2.ID, deploy.Succeeded)
	if got, _ := r.store.Backup(context.Background(), "demo", "prod", b.ID); got.DrillFailed() {
		t.Errorf("a passed drill left the record failed: %+v", got)
	}
}

func TestRollbackWithDBStagesTheDatabaseBeforeSwitchingCode(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{BeforeDeploy: true})
	ctx := context.Background()
	for _, ref := range []string{"v1", "v2"} {
		j := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionDeploy, Ref: ref})
		waitState(t, r.store, j.ID, deploy.Succeeded)
	}
	cur := r.bd.Current()
	r.bd.StageErr = errors.New("loading db-main.sql.gz into a scratch database failed: ERROR 1227 (42000) at line 40")
	rb := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRollback, WithDB: true})
	if _, err := r.engine.Decide(ctx, rb.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	failed := waitState(t, r.store, rb.ID, deploy.Failed)
	if r.bd.Current() != cur {
		t.Errorf("the code was rolled back (%s -> %s) although the database could not be restored", cur, r.bd.Current())
	}
	if !strings.Contains(failed.Reason, "code and database unchanged") || !strings.Contains(failed.Reason, "ERROR 1227") {
		t.Errorf("reason = %q", failed.Reason)
	}
	all, _ := r.store.Backups(ctx, "demo", "prod")
	for _, b := range all {
		if b.Reason == "safety" {
			t.Errorf("safety backup %s taken for a refused rollback", b.ID)
		}
	}

	// The database part fails while switching: it is put back, and the
	// job fails saying the code went back but the database did not.
	r.bd.StageErr = nil
	r.bd.ApplyErr = func(id string) error {
		if id == rb.BackupID {
			return &deploy.ApplyError{Part: "db-main.sql.gz", Touched: []string{"db-main.sql.gz"}, Err: errors.New("connection lost")}
		}
		return nil
	}
	rb2 := r.submit(t, deploy.JobRequest{Who: alice, Action: deploy.ActionRollback, WithDB: true})
	if _, err := r.engine.Decide(ctx, rb2.ApprovalID, bob, true); err != nil {
		t.Fatal(err)
	}
	f2 := waitState(t, r.store, rb2.ID, deploy.Failed)
	for _, want := range []string{"the code was rolled back to " + rb2.RollbackTo, "connection lost", "were put back from safety backup"} {
		if !strings.Contains(f2.Reason, want) {
			t.Errorf("reason lacks %q: %s", want, f2.Reason)
		}
	}
	if got := r.bd.Restored(); len(got) != 1 || !strings.HasSuffix(got[0], "-safety [db-main.sql.gz]") {
		t.Errorf("applied %v, want only the put-back of the database", got)
	}
}
