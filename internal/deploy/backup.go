package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Backup actions. A backup and a drill take the env lock like a deploy, so a
// dump never races a migration; a restore always needs a second person.
const (
	ActionBackup  Action = "backup"
	ActionVerify  Action = "verify"
	ActionRestore Action = "restore"
)

// prefixed names a job's steps for a second pass over the same parts (the
// put-back after a failed restore), so its steps do not overwrite the first
// pass's on the card.
type prefixed struct {
	Progress
	prefix string
}

func (p prefixed) Step(name string, state StepState, detail string) {
	p.Progress.Step(p.prefix+name, state, detail)
}

const (
	BackupOK     BackupState = "ok"
	BackupFailed BackupState = "failed"
	BackupPruned BackupState = "pruned"
)

func (e *Engine) backuper(app, env string) (Backuper, BackupStore, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return nil, nil, err
	}
	b, ok := As[Backuper](d)
	if !ok {
		return nil, nil, refuse("%s/%s has no backup configured (add a backup: block to the env)", app, env)
	}
	bs, ok := e.store.(BackupStore)
	if !ok {
		return nil, nil, errors.New("the store keeps no backup records")
	}
	return b, bs, nil
}

// backupsCan returns the driver of app/env as capability T (BackupVerifier
// or Restorer), refusing with what the driver says of where its backups are
// when it lacks it; what is for the refusal ("verified", "restored").
func backupsCan[T any](e *Engine, app, env, id, what string) (T, error) {
	var zero T
	d, err := e.driver(app, env)
	if err != nil {
		return zero, err
	}
	if c, ok := As[T](d); ok {
		return c, nil
	}
	if el, ok := As[BackupsElsewhere](d); ok {
		return zero, refuse("backup %s is kept by %s", id, el.BackupsKeptBy())
	}
	return zero, refuse("backups of %s/%s cannot be %s by its driver", app, env, what)
}

func (e *Engine) policy(app, env string) BackupPolicy {
	if e.backupPolicy == nil {
		return BackupPolicy{}
	}
	return e.backupPolicy(app, env)
}

// Backups lists an env's backup records, newest first.
func (e *Engine) Backups(ctx context.Context, app, env string) ([]Backup, error) {
	_, bs, err := e.backuper(app, env)
	if err != nil {
		return nil, err
	}
	return bs.Backups(ctx, app, env)
}

// restorable returns the record of backup id, refusing one that cannot be
// restored or verified.
func restorable(ctx context.Context, bs BackupStore, app, env, id string) (*Backup, error) {
	b, err := bs.Backup(ctx, app, env, id)
	if errors.Is(err, ErrNotFound) {
		return nil, refuse("backup %s does not exist for %s/%s (see /backups %s %s)", id, app, env, app, env)
	}
	if err != nil {
		return nil, err
	}
	if b.State != BackupOK {
		return nil, refuse("backup %s is %s and cannot be used", id, b.State)
	}
	return b, nil
}

// takeBackup runs one backup inside job j and records it, failed or not.
func (e *Engine) takeBackup(ctx context.Context, bk Backuper, bs BackupStore, j *Job, id, reason string, p Progress) (Backup, error) {
	rec := Backup{App: j.App, Env: j.Env, ID: id, JobID: j.ID, By: j.RequestedBy.User, Reason: reason,
		Created: e.now(), State: BackupFailed}
	res, err := bk.Backup(ctx, BackupRequest{JobID: j.ID, App: j.App, Env: j.Env, ID: id, By: j.RequestedBy.User}, p)
	if err == nil {
		rec.State, rec.Location, rec.Files = BackupOK, res.Location, res.Files
	} else {
		rec.Error = e.redact.String(err.Error())
	}
	if perr := bs.PutBackup(context.WithoutCancel(ctx), rec); perr != nil {
		if err == nil {
			// A backup nobody can find is no backup: fail the job.
			err = fmt.Errorf("backup %s written but not recorded: %w", id, perr)
		}
		e.log.Error("backup record not stored", "job", j.ID, "backup", id, "err", perr)
	}
	return rec, err
}

// prune applies the env's retention after a good backup: by age, then by
// count, never the backup just taken and never a failed or pruned one.
func (e *Engine) prune(ctx context.Context, bk Backuper, bs BackupStore, app, env, keepID string) (string, error) {
	pol := e.policy(app, env)
	if pol.MaxAge <= 0 && pol.Keep <= 0 {
		return "", nil
	}
	all, err := bs.Backups(ctx, app, env)
	if err != nil {
		return "", err
	}
	sort.SliceStable(all, func(i, k int) bool { return all[i].Created.After(all[k].Created) })
	now := e.now()
	var doomed []Backup
	kept := 0
	for _, b := range all {
		if b.State != BackupOK {
			continue
		}
		tooOld := pol.MaxAge > 0 && now.Sub(b.Created) > pol.MaxAge
		tooMany := pol.Keep > 0 && kept >= pol.Keep
		if b.ID != keepID && (tooOld || tooMany) {
			doomed = append(doomed, b)
			continue
		}
		kept++
	}
	if len(doomed) == 0 {
		return "", nil
	}
	ids := make([]string, len(doomed))
	for i, b := range doomed {
		ids[i] = b.ID
	}
	pr, ok := bk.(BackupPruner)
	if !ok {
		pr = keptByDriver{}
	}
	if err := pr.DeleteBackups(ctx, ids); err != nil {
		return "", fmt.Errorf("pruning %s: %w", strings.Join(ids, ", "), err)
	}
	for _, b := range doomed {
		b.State = BackupPruned
		if err := bs.PutBackup(context.WithoutCancel(ctx), b); err != nil {
			return "", err
		}
	}
	return "pruned " + strings.Join(ids, ", "), nil
}

// FormatSize renders n bytes for a chat line.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// runBackupJob is the body of a backup job.
func (e *Engine) runBackupJob(ctx context.Context, j *Job, p Progress) (Result, error) {
	bk, bs, err := e.backuper(j.App, j.Env)
	if err != nil {
		return Result{}, err
	}
	reason := "manual"
	if j.RequestedBy.User == SchedulerUser {
		reason = "scheduled"
	}
	rec, err := e.takeBackup(ctx, bk, bs, j, j.Backup, reason, p)
	if err != nil {
		return Result{}, err
	}
	msg := fmt.Sprintf("backup %s: %d files, %s", rec.ID, len(rec.Files), FormatSize(rec.Size()))
	p.Step("prune", StepRunning, "")
	pruned, err := e.prune(ctx, bk, bs, j.App, j.Env, rec.ID)
	switch {
	case err != nil:
		p.Step("prune", StepFailed, err.Error())
		msg += "; retention failed: " + err.Error()
	case pruned == "":
		p.Step("prune", StepDone, "nothing to prune")
	default:
		p.Step("prune", StepDone, pruned)
		msg += "; " + pruned
	}
	return Result{Release: rec.ID, Message: msg}, nil
}

// runVerifyJob is the body of a restore drill.
func (e *Engine) runVerifyJob(ctx context.Context, j *Job, p Progress) (Result, error) {
	_, bs, err := e.backuper(j.App, j.Env)
	if err != nil {
		return Result{}, err
	}
	rec, err := restorable(ctx, bs, j.App, j.Env, j.Backup)
	if err != nil {
		return Result{}, err
	}
	v, err := backupsCan[BackupVerifier](e, j.App, j.Env, rec.ID, "verified")
	if err != nil {
		return Result{}, err
	}
	res, err := v.VerifyBackup(ctx, *rec, p)
	if err != nil {
		// A drill that could not finish proves nothing either way; one
		// that ran and failed is recorded, so /backups shows it.
		if ctx.Err() == nil {
			rec.Verified, rec.Drill = e.now(), DrillFailedPrefix+clip(e.redact.String(err.Error()), 300)
			if perr := bs.PutBackup(context.WithoutCancel(ctx), *rec); perr != nil {
				e.log.Error("drill result not recorded", "backup", rec.ID, "err", perr)
			}
		}
		return Result{}, err
	}
	for _, l := range res.Lines {
		p.Output(l)
	}
	rec.Verified, rec.Drill = e.now(), res.Message
	if err := bs.PutBackup(context.WithoutCancel(ctx), *rec); err != nil {
		e.log.Error("drill result not recorded", "backup", rec.ID, "err", err)
	}
	return Result{Release: rec.ID, Message: "backup " + rec.ID + " verified: " + res.Message}, nil
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// SchedulerUser is the actor of scheduled jobs.
const SchedulerUser = "scheduler"

// preDeployBackup takes the backup a gated deploy needs; an error stops the
// deploy before anything changes.
func (e *Engine) preDeployBackup(ctx context.Context, j *Job, p Progress) (string, error) {
	bk, bs, err := e.backuper(j.App, j.Env)
	if err != nil {
		return "", fmt.Errorf("backup_before_deploy is set but %w", err)
	}
	p.Step("backup", StepRunning, "")
	rec, err := e.takeBackup(ctx, bk, bs, j, NewReleaseID(e.now(), j.ID)+"-predeploy", "pre-deploy", p)
	if err != nil {
		p.Step("backup", StepFailed, e.redact.String(err.Error()))
		return "", fmt.Errorf("pre-deploy backup failed, so the deploy did not start (current unchanged): %w", err)
	}
	j.BackupID = rec.ID
	p.Step("backup", StepDone, fmt.Sprintf("%s (%s)", rec.ID, FormatSize(rec.Size())))
	return rec.ID, nil
}

// keptByDriver prunes nothing: the driver keeps its own retention.
type keptByDriver struct{}

func (keptByDriver) DeleteBackups(context.Context, []string) error { return nil }
