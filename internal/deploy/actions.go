package deploy

import (
	"context"
	"fmt"
)

// actionSpec is one action, written once: what the engine checks before a
// job of it exists, how approval applies, what it targets, how it runs, how
// it reads on a card, and what recovery does with it. Adding an action is
// adding an entry to actions.
type actionSpec struct {
	// noun is how the action reads in a title: "Deploy", "Restore drill".
	noun string
	// approval says how the env's approval policy applies.
	approval approvalRule
	// switches: the job moves the env's live release (deploy, rollback);
	// recovery asks the target whether it did, and an interrupted card
	// offers to roll back.
	switches bool
	// onBackup: the job targets a backup (backup, drill, restore), not a
	// release.
	onBackup bool
	// target is the field of a job that names what it acts on; nil for an
	// action that targets nothing but the env (stop, start).
	target func(j *Job) *string
	// newRelease: the job's target is a new id made from the job once it
	// exists (a deploy's release, a backup's id).
	newRelease bool
	// resumable: a job of it left running may still be going on the target;
	// a driver that can (Resumer) follows it after a restart.
	resumable bool
	// prepare checks the request against the target and fills in what the
	// job targets, before it is stored; it may change the version an
	// approval is bound to and whether approval is required.
	prepare func(e *Engine, ctx context.Context, d Driver, r *JobRequest, j *Job, version *string) error
	// version is what an approval of a job of it is bound to; nil: its target.
	version func(j *Job) string
	// run is the job's body.
	run func(e *Engine, r runJob) (Result, error)
	// interrupted, if set, tidies after a job of it found interrupted at
	// start-up that had a target.
	interrupted func(e *Engine, ctx context.Context, j *Job)
}

// approvalRule is how an env's approval policy applies to an action.
type approvalRule int

const (
	approvalByEnv  approvalRule = iota // as the env's policy says
	approvalNever                      // changes nothing live (a backup, a drill)
	approvalAlways                     // discards data: always a second person
)

// runJob is what a job's body gets: ctx outlives the job's deadline (for
// records written after it), runCtx is bounded by it.
type runJob struct {
	ctx, runCtx context.Context
	j           *Job
	d           Driver
	tr          *tracker
	resume      bool
}

var actions = map[Action]*actionSpec{
	ActionDeploy: {noun: "Deploy", switches: true, newRelease: true, resumable: true,
		target:  func(j *Job) *string { return &j.Release },
		version: func(j *Job) string { return j.Ref },
		run:     (*Engine).runDeployJob,
		interrupted: func(e *Engine, ctx context.Context, j *Job) {
			e.failBuilding(ctx, j)
		}},
	ActionRollback: {noun: "Rollback", switches: true,
		target: func(j *Job) *string { return &j.RollbackTo },
		prepare: func(e *Engine, ctx context.Context, d Driver, r *JobRequest, j *Job, version *string) error {
			to, err := e.rollbackTarget(ctx, d, r.App, r.Env, j.FromRelease, r.RollbackTo)
			if err != nil {
				return err
			}
			j.RollbackTo, *version = to, to
			if r.WithDB {
				id, err := e.withDBBackup(ctx, r.App, r.Env, j.FromRelease)
				if err != nil {
					return err
				}
				j.BackupID, *version = id, to+"+db:"+id
				r.Approval.Required = true // putting a database back discards data
			}
			return nil
		},
		version: func(j *Job) string {
			if j.BackupID != "" {
				return j.RollbackTo + "+db:" + j.BackupID
			}
			return j.RollbackTo
		},
		run: (*Engine).runRollbackJob},
	ActionStop: {noun: "Stop", prepare: needStartStopper,
		run: func(e *Engine, r runJob) (Result, error) {
			ss, _ := As[StartStopper](r.d) // prepare checked it
			return ss.Stop(r.runCtx, r.tr)
		}},
	ActionStart: {noun: "Start", prepare: needStartStopper,
		run: func(e *Engine, r runJob) (Result, error) {
			ss, _ := As[StartStopper](r.d) // prepare checked it
			return ss.Start(r.runCtx, r.tr)
		}},
	ActionBackup: {noun: "Backup", approval: approvalNever, onBackup: true, newRelease: true,
		target: backupTarget,
		prepare: func(e *Engine, ctx context.Context, d Driver, r *JobRequest, j *Job, version *string) error {
			_, _, err := e.backuper(r.App, r.Env)
			return err
		},
		run: func(e *Engine, r runJob) (Result, error) { return e.runBackupJob(r.runCtx, r.j, r.tr) },
		interrupted: func(e *Engine, ctx context.Context, j *Job) {
			// Its files may be partial: never offer it for a restore.
			if bs, ok := e.store.(BackupStore); ok {
				_ = bs.PutBackup(ctx, Backup{App: j.App, Env: j.Env, ID: j.Backup, JobID: j.ID, By: j.RequestedBy.User,
					Reason: "interrupted", Created: j.Started, State: BackupFailed,
					Error: "shipbot stopped during the backup; partial files may remain on the host"})
			}
		}},
	// A drill touches only a scratch database.
	ActionVerify: {noun: "Restore drill", approval: approvalNever, onBackup: true, target: backupTarget,
		prepare: prepareOnBackup[BackupVerifier]("verified"),
		run:     func(e *Engine, r runJob) (Result, error) { return e.runVerifyJob(r.runCtx, r.j, r.tr) }},
	// A restore discards what was written since.
	ActionRestore: {noun: "Restore", approval: approvalAlways, onBackup: true, target: backupTarget,
		prepare: prepareOnBackup[Restorer]("restored"),
		run:     func(e *Engine, r runJob) (Result, error) { return e.runRestoreJob(r.runCtx, r.j, r.tr, false) }},
}

// unknownAction is what a job of an action this engine does not know gets.
var unknownAction = &actionSpec{noun: "Job", run: func(e *Engine, r runJob) (Result, error) {
	return Result{}, fmt.Errorf("unknown action %q", r.j.Action)
}}

func actionOf(a Action) *actionSpec {
	if s, ok := actions[a]; ok {
		return s
	}
	return unknownAction
}

func backupTarget(j *Job) *string { return &j.Backup }

// Target is what job j acts on: a deploy's new release, a rollback's target
// release, the backup a backup job takes or a drill or restore reads; "" for
// an action that targets only the env (stop, start).
func (j *Job) Target() string {
	if t := actionOf(j.Action).target; t != nil {
		return *t(j)
	}
	return ""
}

// LeftLive is the release finished job j left live: a deploy's release, or
// the one before it when the deploy was rolled back; a rollback's target;
// "" for a job that does not switch (a backup, a stop) or did not finish
// well.
func (j *Job) LeftLive() string {
	switch {
	case !j.Action.Switches():
		return ""
	case j.State == RolledBack:
		return j.FromRelease
	case j.State == Succeeded:
		return j.Target()
	}
	return ""
}

// Noun is how a job's action reads in a title: "Deploy", "Backup", ...
func (a Action) Noun() string { return actionOf(a).noun }

// Switches reports whether a job of a moves the env's live release.
func (a Action) Switches() bool { return actionOf(a).switches }

// OnBackup reports whether a job of a targets a backup, not a release.
func (a Action) OnBackup() bool { return actionOf(a).onBackup }

func needStartStopper(e *Engine, ctx context.Context, d Driver, r *JobRequest, j *Job, version *string) error {
	if _, ok := As[StartStopper](d); !ok {
		return refuse("%s/%s cannot be stopped or started by its driver", r.App, r.Env)
	}
	return nil
}

// prepareOnBackup checks that the backup a drill or restore names exists,
// is good, and that the driver can do with it what the action needs (T).
func prepareOnBackup[T any](what string) func(e *Engine, ctx context.Context, d Driver, r *JobRequest, j *Job, version *string) error {
	return func(e *Engine, ctx context.Context, d Driver, r *JobRequest, j *Job, version *string) error {
		_, bs, err := e.backuper(r.App, r.Env)
		if err != nil {
			return err
		}
		b, err := restorable(ctx, bs, r.App, r.Env, r.Backup)
		if err != nil {
			return err
		}
		if _, err := backupsCan[T](e, r.App, r.Env, b.ID, what); err != nil {
			return err
		}
		j.Backup, *version = r.Backup, r.Backup
		return nil
	}
}

// runDeployJob records the new release as building, takes the pre-deploy
// backup where the env wants one, deploys (or follows a deploy the target
// is still running), and records how the release ended.
func (e *Engine) runDeployJob(r runJob) (Result, error) {
	j, tr := r.j, r.tr
	var err error
	var res Result
	rel := Release{App: j.App, Env: j.Env, ID: j.Release, Ref: j.Ref, JobID: j.ID, By: j.RequestedBy.User, Created: e.now(), State: ReleaseBuilding}
	if e.policy(j.App, j.Env).BeforeDeploy && !r.resume {
		rel.BackupID, err = e.preDeployBackup(r.runCtx, j, tr)
	} else if r.resume {
		rel.BackupID = j.BackupID
	}
	if err == nil {
		err = e.store.PutRelease(r.ctx, rel)
	}
	if err != nil {
		return res, err
	}
	req := DeployRequest{JobID: j.ID, App: j.App, Env: j.Env, Ref: j.Ref,
		Release: j.Release, Previous: j.FromRelease, By: j.RequestedBy.User, Redeploy: j.Redeploy}
	if rs, ok := As[Resumer](r.d); ok && r.resume {
		tr.Output("shipbot restarted: following the deploy the target is still running")
		res, err = rs.Resume(r.runCtx, req, tr)
	} else {
		res, err = r.d.Deploy(r.runCtx, req, tr)
	}
	rel.State = ReleaseActive
	if err != nil || res.RolledBack {
		rel.State = ReleaseFailed
	}
	if perr := e.store.PutRelease(context.WithoutCancel(r.ctx), rel); perr != nil {
		e.log.Error("release record not updated", "job", j.ID, "release", rel.ID, "err", perr)
	}
	return res, err
}

// runRollbackJob switches back to the job's release, restoring the
// database too when the job names a backup.
func (e *Engine) runRollbackJob(r runJob) (Result, error) {
	j := r.j
	if j.BackupID != "" {
		return e.runRollbackWithDB(r.runCtx, j, r.d, r.tr)
	}
	res, err := r.d.Rollback(r.runCtx, RollbackRequest{JobID: j.ID, App: j.App, Env: j.Env, To: j.RollbackTo,
		From: j.FromRelease, By: j.RequestedBy.User}, r.tr)
	if err == nil && j.FromRelease != "" {
		e.markRolledBack(context.WithoutCancel(r.ctx), j)
	}
	return res, err
}
