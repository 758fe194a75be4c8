package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// runRestoreJob is the body of a restore. With a RestoreStager it is all
// or nothing: every part is checked and loaded aside first (a damaged or
// unloadable backup changes nothing and takes no safety backup), then the
// safety backup of what is there now, then the switch; if a part fails
// while switching, the parts already changed are put back from the safety
// backup before the job ends, and the job fails saying so.
func (e *Engine) runRestoreJob(ctx context.Context, j *Job, p Progress, dbOnly bool) (Result, error) {
	plan, err := e.prepareRestore(ctx, j, p, dbOnly)
	if err != nil {
		return Result{}, err
	}
	defer plan.discard(ctx)
	return e.applyRestore(ctx, plan, p)
}

// restorePlan is a restore checked and staged, with its safety backup taken.
type restorePlan struct {
	rs     Restorer
	st     RestoreStager // nil: the Restorer restores in one step
	staged StagedRestore
	rec    *Backup
	safety Backup
	dbOnly bool
}

func (pl *restorePlan) discard(ctx context.Context) {
	if pl.staged != nil {
		pl.staged.Discard(context.WithoutCancel(ctx))
	}
}

// prepareRestore stages the restore of j's backup and takes the safety
// backup; on error nothing live has changed.
func (e *Engine) prepareRestore(ctx context.Context, j *Job, p Progress, dbOnly bool) (*restorePlan, error) {
	bk, bs, err := e.backuper(j.App, j.Env)
	if err != nil {
		return nil, err
	}
	id := j.Backup
	if j.Action == ActionRollback {
		id = j.BackupID
	}
	rec, err := restorable(ctx, bs, j.App, j.Env, id)
	if err != nil {
		return nil, err
	}
	rs, err := backupsCan[Restorer](e, j.App, j.Env, rec.ID, "restored")
	if err != nil {
		return nil, err
	}
	pl := &restorePlan{rs: rs, rec: rec, dbOnly: dbOnly}
	if st, ok := rs.(RestoreStager); ok {
		pl.st = st
		pl.staged, err = st.StageRestore(ctx, *rec, RestoreOptions{DBOnly: dbOnly}, p)
		if err != nil {
			return nil, fmt.Errorf("restore of %s refused, nothing was changed: %w", rec.ID, err)
		}
	}
	safetyID := SafetyBackupID(e.now(), j.ID)
	pl.safety, err = e.takeBackup(ctx, bk, bs, j, safetyID, "safety", p)
	if err != nil {
		pl.discard(ctx)
		return nil, fmt.Errorf("safety backup failed, nothing was restored: %w", err)
	}
	if j.Action == ActionRestore {
		j.BackupID = pl.safety.ID
	}
	return pl, nil
}

// applyRestore switches the live env to the staged restore.
func (e *Engine) applyRestore(ctx context.Context, pl *restorePlan, p Progress) (Result, error) {
	var res Result
	var err error
	if pl.st != nil {
		res, err = pl.staged.Apply(ctx, p)
		if err != nil {
			return Result{}, e.undoRestore(ctx, pl.st, pl.rec, pl.safety, err, p)
		}
	} else {
		res, err = pl.rs.Restore(ctx, *pl.rec, pl.dbOnly, p)
		if err != nil {
			return res, fmt.Errorf("restore of %s failed (safety backup %s holds what was there before): %w", pl.rec.ID, pl.safety.ID, err)
		}
	}
	what := "files and databases"
	if pl.dbOnly {
		what = "databases"
	}
	msg := fmt.Sprintf("restored %s from backup %s (taken %s); safety backup %s holds what was there before",
		what, pl.rec.ID, pl.rec.Created.UTC().Format("2006-01-02 15:04 MST"), pl.safety.ID)
	if res.Message != "" {
		msg += "; " + res.Message
	}
	return Result{Release: res.Release, RolledBack: res.RolledBack, Message: msg}, nil
}

// runRollbackWithDB is a /rollback --with-db: the database restore is
// staged and checked, and the safety backup taken, before the code is
// switched back, so a backup that cannot be restored stops the rollback
// with nothing changed; then the code goes back, then the database.
func (e *Engine) runRollbackWithDB(ctx context.Context, j *Job, d Driver, p Progress) (Result, error) {
	plan, err := e.prepareRestore(ctx, j, p, true)
	if err != nil {
		return Result{}, fmt.Errorf("rollback refused, code and database unchanged: %w", err)
	}
	defer plan.discard(ctx)
	res, err := d.Rollback(ctx, RollbackRequest{JobID: j.ID, App: j.App, Env: j.Env, To: j.RollbackTo,
		From: j.FromRelease, By: j.RequestedBy.User}, p)
	if err == nil && j.FromRelease != "" {
		e.markRolledBack(context.WithoutCancel(ctx), j)
	}
	if err != nil || res.RolledBack {
		// The code switch did not happen (or was undone): the database stays.
		return res, err
	}
	db, err := e.applyRestore(ctx, plan, p)
	if err != nil {
		return Result{}, fmt.Errorf("the code was rolled back to %s, but the database was not: %w", j.RollbackTo, err)
	}
	res.Message = strings.TrimSpace(res.Message + "; " + db.Message)
	return res, nil
}

// undoRestore answers a staged restore that failed while switching: the
// parts it already changed go back from the safety backup, through the
// same checked path, so the env ends as it was before the restore. The
// returned error always fails the job: a partial restore is never a success.
func (e *Engine) undoRestore(ctx context.Context, st RestoreStager, rec *Backup, safety Backup, applyErr error, p Progress) error {
	var ae *ApplyError
	if !errors.As(applyErr, &ae) {
		return fmt.Errorf("restore of %s: %w (safety backup %s holds what was there before)", rec.ID, applyErr, safety.ID)
	}
	if len(ae.Touched) == 0 {
		return fmt.Errorf("restore of %s failed before changing anything live: %w", rec.ID, applyErr)
	}
	// Even a cancelled job puts back what it changed.
	uctx := context.WithoutCancel(ctx)
	touched := strings.Join(ae.Touched, ", ")
	p.Step("put back", StepRunning, touched)
	pp := prefixed{p, "put back: "}
	staged, err := st.StageRestore(uctx, safety, RestoreOptions{Parts: ae.Touched}, pp)
	if err == nil {
		_, err = staged.Apply(uctx, pp)
		staged.Discard(uctx)
	}
	var re *RestartError
	if errors.As(err, &re) {
		p.Step("put back", StepDone, touched+" from "+safety.ID+"; the app restart after it failed")
		return fmt.Errorf("restore of %s failed: %w; the parts already changed (%s) were put back from safety backup %s, so the env is as it was before the restore, but restarting the app afterwards failed: %v",
			rec.ID, applyErr, touched, safety.ID, re.Err)
	}
	if err != nil {
		p.Step("put back", StepFailed, e.redact.String(err.Error()))
		return fmt.Errorf("restore of %s failed: %w; putting back %s from safety backup %s ALSO failed: %v; the env is PARTLY restored: restore backup %s to go back",
			rec.ID, applyErr, touched, safety.ID, err, safety.ID)
	}
	p.Step("put back", StepDone, touched+" from "+safety.ID)
	return fmt.Errorf("restore of %s failed: %w; the parts already changed (%s) were put back from safety backup %s, so the env is as it was before the restore",
		rec.ID, applyErr, touched, safety.ID)
}

// SafetyBackupID names the backup a restore takes first.
func SafetyBackupID(t time.Time, jobID int64) string {
	return NewReleaseID(t, jobID) + "-safety"
}

// withDBBackup finds the backup a /rollback --with-db restores: the one
// taken before the current release was deployed.
func (e *Engine) withDBBackup(ctx context.Context, app, env, current string) (string, error) {
	_, bs, err := e.backuper(app, env)
	if err != nil {
		return "", err
	}
	recs, err := e.store.Releases(ctx, app, env)
	if err != nil {
		return "", err
	}
	for _, r := range recs {
		if r.ID != current {
			continue
		}
		if r.BackupID == "" {
			return "", refuse("release %s was deployed without a backup (set backup_before_deploy on %s/%s); roll back without --with-db or /restore a backup", current, app, env)
		}
		b, err := restorable(ctx, bs, app, env, r.BackupID)
		if err != nil {
			return "", err
		}
		dumps := 0
		for _, f := range b.Files {
			if f.Kind == "mysql" || f.Kind == "postgres" {
				dumps++
			}
		}
		if dumps == 0 {
			return "", refuse("backup %s holds no database dump shipbot can restore; roll back without --with-db", b.ID)
		}
		if _, err := backupsCan[Restorer](e, app, env, b.ID, "restored"); err != nil {
			return "", err
		}
		return r.BackupID, nil
	}
	return "", refuse("shipbot has no record of release %s, so it knows no backup taken before it", current)
}
