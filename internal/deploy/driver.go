package deploy

import (
	"context"
	"time"
)

// Driver does the work for one (app, env). The wiring builds one per env from
// configuration; the engine calls it from one job at a time (the env lock
// guarantees that), so a Driver need not serialise Deploy and Rollback itself.
//
// Every method honours ctx: when it is cancelled (/cancel, job timeout,
// shutdown) the remote or local work is really stopped before the method
// returns, and the method returns ctx.Err() (wrapped is fine).
type Driver interface {
	// Plan says what Deploy would run; it executes nothing.
	Plan(ctx context.Context, req DeployRequest) (Plan, error)
	// Deploy builds req.Release from req.Ref, switches current to it, restarts
	// and health-checks. If the health check fails it switches back to the
	// previous release, restarts again and returns Result{RolledBack: true}.
	// A failure before the switch leaves current untouched and returns an error.
	Deploy(ctx context.Context, req DeployRequest, p Progress) (Result, error)
	// Rollback switches current to req.To (which must exist) and restarts.
	Rollback(ctx context.Context, req RollbackRequest, p Progress) (Result, error)
	// Releases lists the releases on the target, newest first.
	Releases(ctx context.Context) ([]ReleaseInfo, error)
	// Status reports what is live.
	Status(ctx context.Context) (Status, error)
	// Logs returns at most lines lines of the app's log, capped in bytes and time.
	Logs(ctx context.Context, lines int) (Logs, error)
}

// Resumer is implemented by a driver whose deploys run on the target after
// the request returns (Dokploy queues them). After a restart the engine
// calls Resume for a deploy job that was running instead of marking it
// interrupted: Resume finds the work req started and follows it to its end
// without starting it again.
type Resumer interface {
	Resume(ctx context.Context, req DeployRequest, p Progress) (Result, error)
}

// StartStopper is implemented by a driver that can stop and start the app
// without deploying (/stop, /start).
type StartStopper interface {
	Stop(ctx context.Context, p Progress) (Result, error)
	Start(ctx context.Context, p Progress) (Result, error)
}

// Progress receives a job's progress as it happens. Implementations must be
// safe for concurrent use (several hosts report at once) and must not block.
type Progress interface {
	// Step reports that the named step changed state; detail is optional.
	Step(name string, state StepState, detail string)
	// Output reports one line of output (without trailing newline).
	Output(line string)
}

// DeployRequest asks for release Release to be built from Ref.
type DeployRequest struct {
	JobID    int64
	App, Env string
	Ref      string // validated by ValidateRef; "" means the recipe's default
	Release  string // new release id, chosen by the engine, matches NamePattern
	Previous string // the release current points at, "" on a first deploy
	By       string // user name, for logs
	Redeploy bool   // rebuild without fetching new code, where the driver can
}

// RollbackRequest asks to switch current to To.
type RollbackRequest struct {
	JobID    int64
	App, Env string
	To       string
	From     string
	By       string
}

// Plan is what a deploy would do.
type Plan struct {
	Steps []string
	Hosts []string
	From  string
	To    string
}

// Result is how a Deploy or Rollback ended when it returned no error.
type Result struct {
	Release    string // what current points at now
	RolledBack bool   // the health check failed and current was switched back
	Message    string
}

// ReleaseInfo is a release found on the target.
type ReleaseInfo struct {
	ID      string
	Current bool
}

// Status is what a target reports as live.
type Status struct {
	Current string
	Healthy bool
	Detail  []string // one line per host or component
}

// Logs are bounded log lines.
type Logs struct {
	Lines     []string
	Truncated bool
}

// Recipe is the Capistrano-style description of how to release an app on an
// env, shared by the local and SSH drivers. Commands are argv templates whose
// only variables ({{release_path}} etc.) come from config and the engine.
type Recipe struct {
	App, Env     string
	Path         string // base dir holding releases/, shared/, current
	KeepReleases int
	Fetch        Fetch
	Shared       []string  // paths under shared/ linked into each release
	Build        []Command // run in the release dir
	Migrate      []Command
	Restart      []Command
	StepTimeout  time.Duration
	Health       Health
	Logs         LogSource
}

// Command is one argv template.
type Command []string

// Fetch says where a release's files come from: one of GitRepo, CopyFrom or Artifact.
type Fetch struct {
	GitRepo    string // cloned at the ref into the release dir
	DefaultRef string // used when a deploy names no ref
	CopyFrom   string // a directory on the target copied into the release dir
	// Artifact is a .tar.gz on the bot's machine (built by CI or by the
	// bot), uploaded to every host and unpacked into the release dir. It
	// may contain {{ref}}.
	Artifact string
}

// Health is how to tell a release is good after restart.
type Health struct {
	URL          string  // checked from the bot
	Command      Command // or run on each host; exit 0 = healthy
	ExpectStatus int     // default 200
	ExpectBody   string  // substring, optional
	Retries      int
	Interval     time.Duration
	Timeout      time.Duration // per attempt
}

// LogSource is where /logs reads from: a command on the host or a file tail.
type LogSource struct {
	Command  Command // may use {{lines}}
	File     string
	MaxLines int
	MaxBytes int
}

// Wrapper is a Driver that adds to or changes another (cmd/bot's backup
// and crash-point wrappers). Capability checks look through it (see As), so
// wrapping a driver never hides what it can do.
type Wrapper interface {
	Unwrap() Driver
}

// As finds capability T (Resumer, StartStopper, Backuper, ...) on d or on a
// driver d wraps, the outermost first.
func As[T any](d Driver) (T, bool) {
	for d != nil {
		if c, ok := any(d).(T); ok {
			return c, true
		}
		w, ok := d.(Wrapper)
		if !ok {
			break
		}
		d = w.Unwrap()
	}
	var zero T
	return zero, false
}
