// Package deploy is shipbot's engine: jobs and their state machine, locks,
// approvals bound to jobs, releases, the Driver seam, recovery after a crash
// and draining on shutdown. It imports no adapter: drivers, the database and
// chat reach it through the small interfaces declared here.
package deploy

import (
	"github.com/shipbot/shipbot/internal/audit"

	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// State is where a job is in its lifecycle:
//
//	awaiting_approval -> queued -> running -> succeeded | failed | rolled_back | cancelled | interrupted
//
// awaiting_approval may also end in cancelled (denied or expired).
type State string

const (
	AwaitingApproval State = "awaiting_approval"
	Queued           State = "queued"
	Running          State = "running"
	Succeeded        State = "succeeded"
	Failed           State = "failed"
	RolledBack       State = "rolled_back"
	Cancelled        State = "cancelled"
	Interrupted      State = "interrupted"
)

// Terminal reports whether no further transition happens on its own.
// Interrupted is terminal for the job but keeps its lock until a person acts.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, RolledBack, Cancelled, Interrupted:
		return true
	}
	return false
}

// HoldsLock reports whether a job in state s holds its (app, env) lock.
func (s State) HoldsLock() bool { return s == Queued || s == Running || s == Interrupted }

// Action is what a job does.
type Action string

const (
	ActionDeploy   Action = "deploy"
	ActionRollback Action = "rollback"
	ActionStop     Action = "stop"
	ActionStart    Action = "start"
)

// Who is who asked, for jobs and their audit rows.
type Who = audit.Who

// Job is one deploy or rollback.
type Job struct {
	ID         int64
	App, Env   string
	Action     Action
	Ref        string // deploy: the validated ref asked for
	Release    string // deploy: the release it builds
	RollbackTo string // rollback: the release it switches back to
	// Backup is the backup a backup job takes, or a drill or restore reads.
	Backup      string
	FromRelease string // the release current pointed at when the job started
	State       State
	Reason      string // why it failed, was cancelled, was rolled back
	RequestedBy Who
	ApprovalID  string // "" when the env needs none
	ApprovedBy  string
	// ApproverRoles are the roles one of which the approver must hold, so
	// the approval card can say who may approve.
	ApproverRoles []string
	// BackupID is a backup a job takes or restores beside what it targets:
	// a deploy's pre-deploy backup, a restore's safety backup, the backup a
	// --with-db rollback puts back.
	BackupID string
	// Redeploy asks the driver to rebuild without fetching new code
	// (Dokploy's *.redeploy); drivers without the notion deploy as usual.
	Redeploy bool
	// Switch says, for an interrupted deploy or rollback, whether current
	// still pointed at FromRelease when shipbot restarted.
	Switch SwitchState
	// LockReleasedBy is who released an interrupted job's lock (with the
	// job that took it over, if one did); "" while the job holds it.
	LockReleasedBy string
	// TakesOver is the interrupted job whose lock this job takes over when
	// it is queued (a rollback from that job's card); 0 for none.
	TakesOver int64
	IntentSeq int64 // the audit intent this job's outcome closes
	Steps     []Step
	Output    []string // last lines of output, capped
	Created   time.Time
	Started   time.Time
	Ended     time.Time
}

// SwitchState is what recovery found of an interrupted job's switch.
type SwitchState string

const (
	SwitchUnknown SwitchState = ""         // not a switching job, or the target could not say
	SwitchNever   SwitchState = "never"    // current still pointed at the job's FromRelease
	SwitchDone    SwitchState = "switched" // current pointed elsewhere: the job switched (maybe partly)
)

// Step is one line of a job's checklist.
type Step struct {
	Name   string    `json:"name"`
	State  StepState `json:"state"`
	Detail string    `json:"detail,omitempty"`
	// Started and Ended are when the step began running and finished,
	// for the HTTP API's job view; zero until then.
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

// StepState is the state of one step.
type StepState string

const (
	StepPending StepState = "pending"
	StepRunning StepState = "running"
	StepDone    StepState = "done"
	StepFailed  StepState = "failed"
	StepSkipped StepState = "skipped"
)

// Approval is a four-eyes grant bound to one job's (app, env, action, version).
// Its ID is random and is the only thing a chat button carries.
type Approval struct {
	ID          string
	JobID       int64
	App, Env    string
	Action      Action
	Version     string // the ref (deploy) or release (rollback) approved
	RequestedBy string // user name; may never approve
	Roles       []string
	State       ApprovalState
	DecidedBy   string
	Created     time.Time
	Expires     time.Time
	Decided     time.Time
}

// ApprovalState is pending until decided once.
type ApprovalState string

const (
	ApprovalPending  ApprovalState = "pending"
	ApprovalApproved ApprovalState = "approved"
	ApprovalDenied   ApprovalState = "denied"
	ApprovalExpired  ApprovalState = "expired"
)

// Lock serialises work on one (app, env). JobID is 0 for a manual lock.
type Lock struct {
	App, Env string
	Owner    string // user name
	Reason   string
	JobID    int64
	Since    time.Time
	// Expires is when a manual lock is released on its own; zero: never.
	// Job locks never expire: they end with their job.
	Expires time.Time
	// Chat is where the lock was taken; its reminder and expiry notice go there.
	Chat string
	// Reminded is set once the holder was told the lock is about to expire.
	Reminded bool
}

// Release is the engine's record of a release, beside what the driver finds on disk.
type Release struct {
	App, Env string
	ID       string
	Ref      string
	JobID    int64
	By       string
	Created  time.Time
	State    ReleaseState
	BackupID string // the backup taken just before this release was deployed
}

// ReleaseState says whether a plain rollback may pick a release.
type ReleaseState string

const (
	ReleaseBuilding   ReleaseState = "building"
	ReleaseActive     ReleaseState = "active"      // went live and stayed (may since be superseded)
	ReleaseFailed     ReleaseState = "failed"      // never went live, or failed its health check
	ReleaseRolledBack ReleaseState = "rolled_back" // went live, was switched away from by a rollback
)

// Errors the engine returns; adapters map them to a one-line chat reply.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("state changed concurrently")
	ErrDraining    = errors.New("shipbot is shutting down and takes no new work")
	ErrSelfApprove = errors.New("you requested this; someone else must approve it")
)

// Refusal is a request the engine will not carry out, explained for the
// person who asked (no earlier release, approval already used, job ended).
type Refusal struct{ Msg string }

func (e *Refusal) Error() string { return e.Msg }

func refuse(format string, a ...any) error { return &Refusal{Msg: fmt.Sprintf(format, a...)} }

// DeniedError is a driver refusing to act for a security reason, such as
// an unknown or changed SSH host key. The job fails, and the refusal is also
// recorded as an audit denial so it stands out from ordinary failures.
type DeniedError struct{ Err error }

func (e *DeniedError) Error() string { return e.Err.Error() }
func (e *DeniedError) Unwrap() error { return e.Err }

// TargetError is a failure of the target (Dokploy refused the API key, a
// service does not exist, the API is unreachable) whose message is written
// for the person who asked and holds no secret, so the chat shows it
// instead of "internal error".
type TargetError struct{ Err error }

func (e *TargetError) Error() string { return e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

// LockedError says who holds a lock, why and since when.
type LockedError struct{ Lock Lock }

func (e *LockedError) Error() string {
	l := e.Lock
	what := "manual lock"
	if l.JobID != 0 {
		what = fmt.Sprintf("job #%d", l.JobID)
	}
	msg := fmt.Sprintf("%s/%s is locked by %s since %s (%s): %s", l.App, l.Env, l.Owner,
		l.Since.UTC().Format("2006-01-02 15:04 MST"), what, l.Reason)
	if !l.Expires.IsZero() {
		msg += "; expires " + l.Expires.UTC().Format("2006-01-02 15:04 MST")
	}
	return msg
}

// NamePattern is what app, env and release names must match.
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// refPattern: git branch/tag/sha-like names. No leading '-', no "..", no
// whitespace, no shell metacharacters.
var refPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,127}$`)

// ValidName reports whether s is a safe app, env or release name.
func ValidName(s string) bool { return NamePattern.MatchString(s) }

// ValidateRef returns nil if ref is safe to hand to a driver.
func ValidateRef(ref string) error {
	switch {
	case !refPattern.MatchString(ref):
		return fmt.Errorf("ref %q is not allowed: use letters, digits and . _ / + - (no leading -, no spaces or shell characters)", ref)
	case strings.Contains(ref, ".."), strings.Contains(ref, "//"), strings.HasSuffix(ref, "/"), strings.HasSuffix(ref, ".lock"):
		return fmt.Errorf("ref %q is not allowed: no '..', '//', trailing '/' or '.lock'", ref)
	}
	return nil
}
