package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

// Observer hears about every change of a job as it happens: state changes,
// steps, each output line (those reach the store at most once per
// OutputEvery). The engine calls it from the caller's goroutine and from
// job goroutines; implementations must not block. Chat cards do not hang
// on it: the store writes them with each stored change (notify.JobPosts);
// observers are for watchers in this process (API and MCP waits, the
// scheduler's results).
type Observer interface {
	JobChanged(j Job)
}

// ApprovalPolicy is an env's four-eyes rule.
type ApprovalPolicy struct {
	Required bool
	Roles    []string
	TTL      time.Duration
}

// Options configure an Engine.
type Options struct {
	Store    Store
	Drivers  func(app, env string) (Driver, bool)
	Observer Observer
	// JobTimeout bounds one job's driver work; 0 means 30 minutes.
	JobTimeout time.Duration
	// OutputLines is how many output lines a job keeps; 0 means 200.
	OutputLines int
	// OutputEvery is how often a running job's new output lines are
	// stored (and so reach its card); 0 means one second. Steps and
	// states are stored at once.
	OutputEvery time.Duration
	Redactor    *audit.Redactor
	Log         *slog.Logger
	Now         func() time.Time
	// BackupPolicy gives an env's retention and backup-before-deploy rule;
	// nil means no retention and no backup before deploys.
	BackupPolicy func(app, env string) BackupPolicy
	// KillLeftovers stops a step process group a previous run left behind
	// (local.KillLeftovers) and says how many processes it stopped; nil
	// means step processes are not looked for at start-up.
	KillLeftovers func(StepProcess) (int, error)
}

// Engine runs jobs. All methods are safe for concurrent use.
type Engine struct {
	store    Store
	drivers  func(app, env string) (Driver, bool)
	observer Observer
	timeout  time.Duration
	outLines int
	// outputEvery paces the stores of new output (Options.OutputEvery).
	outputEvery time.Duration
	redact      *audit.Redactor
	log         *slog.Logger
	now         func() time.Time

	backupPolicy  func(app, env string) BackupPolicy
	killLeftovers func(StepProcess) (int, error)

	mu       sync.Mutex
	draining bool
	running  map[int64]*run
	wg       sync.WaitGroup
	idle     chan struct{} // closed and replaced when the last job ends
}

type run struct {
	cancel context.CancelCauseFunc
}

// NewEngine returns an engine; call Recover before accepting commands.
func NewEngine(o Options) *Engine {
	e := &Engine{
		store: o.Store, drivers: o.Drivers, observer: o.Observer,
		timeout: o.JobTimeout, outLines: o.OutputLines, outputEvery: o.OutputEvery, redact: o.Redactor,
		log: o.Log, now: o.Now, running: map[int64]*run{}, idle: make(chan struct{}),
		backupPolicy: o.BackupPolicy, killLeftovers: o.KillLeftovers,
	}
	if e.timeout <= 0 {
		e.timeout = 30 * time.Minute
	}
	if e.outLines <= 0 {
		e.outLines = 200
	}
	if e.outputEvery <= 0 {
		e.outputEvery = time.Second
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.observer == nil {
		e.observer = nopObserver{}
	}
	return e
}

type nopObserver struct{}

func (nopObserver) JobChanged(Job) {}

// JobRequest asks for a deploy or rollback.
type JobRequest struct {
	Who      Who
	App, Env string
	Action   Action
	Ref      string // deploy: validated ref, "" = recipe default
	// RollbackTo names a rollback's release; "" = the previous good one.
	RollbackTo string
	// Backup names the backup a drill or restore reads.
	Backup string
	// WithDB asks a rollback to also restore the database backup taken
	// before the release being left was deployed. It always needs approval.
	WithDB bool
	// Redeploy: see Job.Redeploy.
	Redeploy bool
	Approval ApprovalPolicy
	Args     []string // as typed, for the audit row
	// TakesOver is the interrupted job whose lock the new job takes over
	// (see RollbackInterrupted); 0 for none.
	TakesOver int64
}

// errShutdown is the cause of cancelling jobs that outlive the drain deadline.
var errShutdown = errors.New("shipbot shut down")

// Draining reports whether the engine refuses new work.
func (e *Engine) Draining() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.draining
}

func (e *Engine) driver(app, env string) (Driver, error) {
	d, ok := e.drivers(app, env)
	if !ok {
		return nil, fmt.Errorf("%s/%s: %w", app, env, ErrNotFound)
	}
	return d, nil
}

// NewReleaseID names a release so ids sort by time: 20261122-203011-42.
func NewReleaseID(t time.Time, jobID int64) string {
	return t.UTC().Format("20060102-150405") + "-" + strconv.FormatInt(jobID, 10)
}

// Submit creates a job: awaiting approval when the policy requires it, else
// queued (taking the env lock) and started. The audit intent is written in the
// same transaction; if it cannot be written, nothing happens.
func (e *Engine) Submit(ctx context.Context, r JobRequest) (*Job, error) {
	if e.Draining() {
		return nil, ErrDraining
	}
	d, err := e.driver(r.App, r.Env)
	if err != nil {
		return nil, err
	}
	if l, err := e.store.Lock(ctx, r.App, r.Env); err == nil {
		if r.TakesOver == 0 || l.JobID != r.TakesOver {
			return nil, &LockedError{Lock: *l}
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	j := &Job{App: r.App, Env: r.Env, Action: r.Action, Ref: r.Ref, RequestedBy: r.Who, State: Queued,
		Redeploy: r.Redeploy && r.Action == ActionDeploy, TakesOver: r.TakesOver}
	current, err := e.currentRelease(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("reading releases on %s/%s: %w", r.App, r.Env, err)
	}
	j.FromRelease = current
	version := r.Ref
	spec, ok := actions[r.Action]
	if !ok {
		return nil, refuse("unknown action %q", r.Action)
	}
	switch spec.approval {
	case approvalNever:
		r.Approval.Required = false
	case approvalAlways:
		r.Approval.Required = true
	}
	if spec.prepare != nil {
		if err := spec.prepare(e, ctx, d, &r, j, &version); err != nil {
			return nil, err
		}
	}
	var a *Approval
	if r.Approval.Required {
		id, err := newApprovalID()
		if err != nil {
			return nil, err
		}
		ttl := r.Approval.TTL
		if ttl <= 0 {
			ttl = 30 * time.Minute
		}
		now := e.now()
		a = &Approval{ID: id, App: r.App, Env: r.Env, Action: r.Action, Version: version,
			RequestedBy: r.Who.User, Roles: r.Approval.Roles, State: ApprovalPending, Created: now, Expires: now.Add(ttl)}
		j.State = AwaitingApproval
		j.ApprovalID, j.ApproverRoles = id, append([]string(nil), r.Approval.Roles...)
	}
	in := audit.Intent(r.Who, string(r.Action), r.App, r.Env, r.Args)
	e.redact.Event(in)
	if err := e.store.CreateJob(ctx, j, a, in); err != nil {
		return nil, err
	}
	j.IntentSeq = in.Seq
	if j.IntentSeq == 0 {
		return nil, fmt.Errorf("audit intent for job %d was not recorded", j.ID)
	}
	if spec.newRelease {
		*spec.target(j) = NewReleaseID(j.Created, j.ID)
	}
	// The job id and intent seq are known only now; store them with the job.
	if err := e.store.UpdateJob(ctx, j, []State{j.State}); err != nil {
		return nil, err
	}
	e.observer.JobChanged(*j)
	if j.State == Queued {
		e.tookOver(ctx, j)
		if err := e.start(j); err != nil {
			return j, err
		}
	}
	return j, nil
}

// tookOver tells the watchers of the interrupted job whose lock j took
// over that it changed (its card was rewritten by the store in the
// same transaction as the handover).
func (e *Engine) tookOver(ctx context.Context, j *Job) {
	if j.TakesOver == 0 {
		return
	}
	if old, err := e.store.Job(ctx, j.TakesOver); err == nil && old.LockReleasedBy != "" {
		e.observer.JobChanged(*old)
	}
}

func newApprovalID() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:])), nil
}

func (e *Engine) currentRelease(ctx context.Context, d Driver) (string, error) {
	rs, err := d.Releases(ctx)
	if err != nil {
		return "", err
	}
	for _, r := range rs {
		if r.Current {
			return r.ID, nil
		}
	}
	return "", nil
}

// rollbackTarget picks the release a rollback switches to: the named one if it
// exists on the target, else the newest release older than current that went
// live and was not rolled back or failed.
func (e *Engine) rollbackTarget(ctx context.Context, d Driver, app, env, current, named string) (string, error) {
	onDisk, err := d.Releases(ctx)
	if err != nil {
		return "", err
	}
	present := map[string]bool{}
	for _, r := range onDisk {
		present[r.ID] = true
	}
	if named != "" {
		if !present[named] {
			return "", refuse("release %s is not on %s/%s (see /releases %s %s)", named, app, env, app, env)
		}
		if named == current {
			return "", refuse("release %s is already current on %s/%s", named, app, env)
		}
		return named, nil
	}
	if current == "" {
		return "", refuse("%s/%s has no current release to roll back from", app, env)
	}
	recs, err := e.store.Releases(ctx, app, env)
	if err != nil {
		return "", err
	}
	sort.Slice(recs, func(i, k int) bool { return recs[i].ID > recs[k].ID })
	for _, r := range recs {
		if r.ID < current && r.State == ReleaseActive && present[r.ID] {
			return r.ID, nil
		}
	}
	return "", refuse("%s/%s has no earlier good release to roll back to (failed and rolled-back releases are skipped; name one to force)", app, env)
}

// Decide approves or denies approval id as who. The caller has checked that
// who holds approve permission and one of the approval's roles; the engine
// enforces the rest: it exists, is pending, unexpired, bound to its job's
// (app, env, action, version), and who is not the requester. Two presses never
// run a job twice: the second finds the approval decided.
func (e *Engine) Decide(ctx context.Context, id string, who Who, approve bool) (*Job, error) {
	if approve && e.Draining() {
		return nil, ErrDraining
	}
	a, err := e.store.Approval(ctx, id)
	if err != nil {
		return nil, err
	}
	j, err := e.store.Job(ctx, a.JobID)
	if err != nil {
		return nil, err
	}
	if a.State != ApprovalPending {
		by := ""
		if a.DecidedBy != "" {
			by = " by " + a.DecidedBy
		}
		return j, refuse("approval %s was already %s%s", id, a.State, by)
	}
	now := e.now()
	if !now.Before(a.Expires) {
		if err := e.expire(ctx, a, j); err != nil {
			return nil, err
		}
		return j, refuse("approval %s expired at %s; ask again", id, a.Expires.UTC().Format("15:04 MST"))
	}
	if approve && (who.User == a.RequestedBy || who.User == j.RequestedBy.User) {
		return j, ErrSelfApprove
	}
	if !bound(a, j) {
		return j, refuse("approval %s does not match job #%d", id, j.ID)
	}
	verb := "approve"
	a.DecidedBy, a.Decided = who.User, now
	in := audit.Intent(who, verb, j.App, j.Env, []string{id})
	var events []*audit.Event
	if approve {
		a.State = ApprovalApproved
		j.State, j.ApprovedBy = Queued, who.User
		events = []*audit.Event{in, audit.Closing(in, j.ID, fmt.Sprintf("approved job #%d", j.ID))}
	} else {
		verb = "deny"
		in.Command = verb
		a.State = ApprovalDenied
		j.State, j.Reason, j.Ended = Cancelled, "denied by "+who.User, now
		events = []*audit.Event{in, audit.Closing(in, j.ID, fmt.Sprintf("denied job #%d", j.ID)),
			audit.Outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, "cancelled: denied by "+who.User)}
	}
	if err := e.store.DecideApproval(ctx, a, j, events...); err != nil {
		return nil, err
	}
	e.observer.JobChanged(*j)
	if approve {
		e.tookOver(ctx, j)
		return j, e.start(j)
	}
	return j, nil
}

func bound(a *Approval, j *Job) bool {
	return a.JobID == j.ID && a.App == j.App && a.Env == j.Env && a.Action == j.Action && a.Version == approvalVersion(j)
}

// approvalVersion is what an approval of j is bound to: the ref of a deploy,
// the release of a rollback (and the backup it restores), the backup of a
// restore.
func approvalVersion(j *Job) string {
	if v := actionOf(j.Action).version; v != nil {
		return v(j)
	}
	return j.Target()
}

func (e *Engine) expire(ctx context.Context, a *Approval, j *Job) error {
	a.State, a.Decided = ApprovalExpired, e.now()
	j.State, j.Reason, j.Ended = Cancelled, "approval expired", e.now()
	err := e.store.DecideApproval(ctx, a, j,
		audit.Outcome(j.RequestedBy, string(j.Action), j.App, j.Env, j.ID, j.IntentSeq, "cancelled: approval expired"))
	if err != nil {
		return err
	}
	e.observer.JobChanged(*j)
	return nil
}

// ExpireApprovals cancels jobs whose approval ran out. Run it periodically.
func (e *Engine) ExpireApprovals(ctx context.Context) (int, error) {
	as, err := e.store.PendingApprovals(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range as {
		if e.now().Before(a.Expires) {
			continue
		}
		j, err := e.store.Job(ctx, a.JobID)
		if err != nil {
			return n, err
		}
		if err := e.expire(ctx, a, j); err != nil && !errors.Is(err, ErrConflict) {
			return n, err
		}
		n++
	}
	return n, nil
}
