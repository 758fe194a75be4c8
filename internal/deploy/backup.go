package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Backup actions. A backup and a drill take the env lock like a deploy, so a
// dump never races a migration; a restore always needs a second person.
const (
	ActionBackup  Action = "backup"
	ActionVerify  Action = "verify"
	ActionRestore Action = "restore"
)

// Noun is how a job's action reads in a title: "Deploy", "Backup", ...
func (a Action) Noun() string {
	switch a {
	case ActionRollback:
		return "Rollback"
	case ActionBackup:
		return "Backup"
	case ActionVerify:
		return "Restore drill"
	case ActionRestore:
		return "Restore"
	case ActionStop:
		return "Stop"
	case ActionStart:
		return "Start"
	}
	return "Deploy"
}

// Backuper is implemented by a Driver that can back up its env: archives of
// configured paths and dumps of configured databases, kept on the target.
// The engine owns the records (who, when, checksums) and retention; the
// driver owns the files.
type Backuper interface {
	// Backup writes backup req.ID and returns where it is and what it holds,
	// with sizes and SHA-256 checksums. On error it removes what it wrote.
	Backup(ctx context.Context, req BackupRequest, p Progress) (BackupResult, error)
	// VerifyBackup recomputes the checksums of b's files, failing on any
	// difference, then restores each dump into a scratch database that it
	// creates and drops, reporting table and row counts.
	VerifyBackup(ctx context.Context, b Backup, p Progress) (VerifyResult, error)
	// Restore puts b's files and databases back (only the databases when
	// dbOnly), then restarts and health-checks the app like a deploy.
	Restore(ctx context.Context, b Backup, dbOnly bool, p Progress) (Result, error)
	// DeleteBackups removes exactly the named backups from the target.
	DeleteBackups(ctx context.Context, ids []string) error
}

// RestoreStager is implemented by a Backuper that can prepare a restore
// completely before changing anything live: the engine then verifies every
// part, takes the safety backup, and only then applies. A Backuper without
// it restores in one step through Restore.
type RestoreStager interface {
	// StageRestore checks the checksums of b's selected parts, unpacks the
	// files beside the live paths and loads every dump into a scratch
	// database, checked against the dump's manifest. Nothing live changes;
	// on error nothing is left behind.
	StageRestore(ctx context.Context, b Backup, opts RestoreOptions, p Progress) (StagedRestore, error)
}

// RestoreOptions select what a restore puts back.
type RestoreOptions struct {
	DBOnly bool     // only the database dumps
	Parts  []string // only these files of the backup (by name); nil = all
}

// Wants reports whether the options select file f.
func (o RestoreOptions) Wants(f BackupFile) bool {
	if o.DBOnly && f.Kind == "files" {
		return false
	}
	if o.Parts == nil {
		return true
	}
	for _, p := range o.Parts {
		if p == f.Name {
			return true
		}
	}
	return false
}

// StagedRestore is a restore whose parts are all verified and loaded
// aside, waiting to replace the live ones.
type StagedRestore interface {
	// Apply replaces the live parts with the staged ones, one by one, then
	// restarts the app. A failure while a part is applied is an
	// *ApplyError naming the parts already changed.
	Apply(ctx context.Context, p Progress) (Result, error)
	// Discard removes whatever was staged and not applied. It is safe to
	// call after Apply and more than once.
	Discard(ctx context.Context)
}

// ApplyError is a staged restore that failed while changing live parts.
type ApplyError struct {
	Part    string   // the part that failed
	Touched []string // file names of the parts changed live, the failed one included if it was touched
	Err     error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("applying %s: %v", e.Part, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// RestartError is a staged restore whose parts were all applied, but whose
// app restart or health check afterwards failed.
type RestartError struct{ Err error }

func (e *RestartError) Error() string {
	return "every part was restored, but the app did not come back: " + e.Err.Error()
}

func (e *RestartError) Unwrap() error { return e.Err }

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

// BackupRequest asks for backup ID.
type BackupRequest struct {
	JobID    int64
	App, Env string
	ID       string
	By       string
}

// BackupResult is what a backup wrote.
type BackupResult struct {
	Location string // directory on the target
	Files    []BackupFile
}

// VerifyResult is a passed drill: one line per checked file and table.
type VerifyResult struct {
	Lines   []string
	Message string
}

// BackupFile is one file of a backup.
type BackupFile struct {
	Name   string `json:"name"`   // file name inside the backup's directory
	Kind   string `json:"kind"`   // "files", "mysql", "postgres", "dokploy"
	Source string `json:"source"` // the path list or database it holds
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Manifest describes a database dump as it was taken; a restore or a
	// drill checks the loaded copy against it. Nil for files and for
	// dumps taken before manifests were recorded.
	Manifest *DBManifest `json:"manifest,omitempty"`
}

// DBManifest is what a database held when it was dumped.
type DBManifest struct {
	// Rows is every table's row count as the dump holds it; a table
	// without rows is listed with 0.
	Rows map[string]int64 `json:"rows"`
	// Objects counts the non-table objects by kind ("views", "triggers",
	// "routines", "events"; PostgreSQL also "sequences", "indexes", ...).
	Objects map[string]int `json:"objects"`
	// Database-level properties a restore recreates: MySQL/MariaDB
	// charset and collation; PostgreSQL owner, encoding, locale and ACL.
	Charset   string `json:"charset,omitempty"`
	Collation string `json:"collation,omitempty"`
	Owner     string `json:"owner,omitempty"`
	Encoding  string `json:"encoding,omitempty"`
	Ctype     string `json:"ctype,omitempty"`
	ACL       string `json:"acl,omitempty"`
}

// BackupState is whether a backup can be restored.
type BackupState string

const (
	BackupOK     BackupState = "ok"
	BackupFailed BackupState = "failed"
	BackupPruned BackupState = "pruned"
)

// Backup is the engine's record of one backup.
type Backup struct {
	App, Env string
	ID       string
	JobID    int64
	By       string
	Reason   string // manual, scheduled, pre-deploy, safety
	Created  time.Time
	State    BackupState
	Location string
	Files    []BackupFile
	Error    string
	Verified time.Time // last drill, passed or failed
	Drill    string    // its summary; a failed drill's starts with DrillFailedPrefix
}

// DrillFailedPrefix starts the Drill summary of a backup whose last drill
// failed (kept in the summary so the record needs no new column).
const DrillFailedPrefix = "FAILED: "

// DrillFailed reports whether b's last drill failed.
func (b Backup) DrillFailed() bool { return strings.HasPrefix(b.Drill, DrillFailedPrefix) }

// Size is the total size of b's files.
func (b Backup) Size() int64 {
	var n int64
	for _, f := range b.Files {
		n += f.Size
	}
	return n
}

// BackupPolicy is an env's backup configuration as the engine needs it.
type BackupPolicy struct {
	MaxAge       time.Duration // older backups are pruned; 0 keeps all
	Keep         int           // at most this many are kept; 0 = no count limit
	BeforeDeploy bool          // a deploy takes a backup first and stops if it fails
}

// BackupStore keeps backup records. The sqlite store implements it.
type BackupStore interface {
	PutBackup(ctx context.Context, b Backup) error
	Backups(ctx context.Context, app, env string) ([]Backup, error) // newest first
	Backup(ctx context.Context, app, env, id string) (*Backup, error)
}

func (e *Engine) backuper(app, env string) (Backuper, BackupStore, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return nil, nil, err
	}
	b, ok := d.(Backuper)
	if !ok {
		return nil, nil, refuse("%s/%s has no backup configured (add a backup: block to the env)", app, env)
	}
	bs, ok := e.store.(BackupStore)
	if !ok {
		return nil, nil, errors.New("the store keeps no backup records")
	}
	return b, bs, nil
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
	if err := bk.DeleteBackups(ctx, ids); err != nil {
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
	rec, err := e.takeBackup(ctx, bk, bs, j, j.Release, reason, p)
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
	bk, bs, err := e.backuper(j.App, j.Env)
	if err != nil {
		return Result{}, err
	}
	rec, err := restorable(ctx, bs, j.App, j.Env, j.Release)
	if err != nil {
		return Result{}, err
	}
	res, err := bk.VerifyBackup(ctx, *rec, p)
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
	bk     Backuper
	st     RestoreStager // nil: the Backuper restores in one step
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
	id := j.Release
	if j.Action == ActionRollback {
		id = j.BackupID
	}
	rec, err := restorable(ctx, bs, j.App, j.Env, id)
	if err != nil {
		return nil, err
	}
	pl := &restorePlan{bk: bk, rec: rec, dbOnly: dbOnly}
	if st, ok := bk.(RestoreStager); ok {
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
		res, err = pl.bk.Restore(ctx, *pl.rec, pl.dbOnly, p)
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
	res, err := d.Rollback(ctx, RollbackRequest{JobID: j.ID, App: j.App, Env: j.Env, To: j.Release,
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
		return Result{}, fmt.Errorf("the code was rolled back to %s, but the database was not: %w", j.Release, err)
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

// SchedulerUser is the actor of scheduled jobs.
const SchedulerUser = "scheduler"

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
		return r.BackupID, nil
	}
	return "", refuse("shipbot has no record of release %s, so it knows no backup taken before it", current)
}

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

// BackupStat sums up an env's backup records, for monitoring: the time of
// the newest good backup, and how many backups are in each state.
type BackupStat struct {
	App, Env string
	LastOK   time.Time // zero when there is none
	States   map[BackupState]int
}
