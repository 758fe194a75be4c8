package release

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Step names as reported to deploy.Progress and listed by Plan.
const (
	StepPrepare    = "prepare"
	StepFetch      = "fetch"
	StepLinkShared = "link shared"
	StepBuild      = "build"
	StepMigrate    = "migrate"
	StepSwitch     = "switch"
	StepRestart    = "restart"
	StepHealth     = "health"
	StepPrune      = "prune"
	// StepSwitchBack appears only when a deploy's restart or health check
	// failed (or it was cancelled after the switch) and current goes back.
	StepSwitchBack = "switch back"
	// StepCheck is the first step of a rollback: the target release exists everywhere.
	StepCheck = "check"
)

// cleanupTimeout bounds work done after the job's context ended (removing an
// unswitched release, switching back), and recovery steps when the recipe
// sets no StepTimeout.
const cleanupTimeout = time.Minute

type discard struct{}

func (discard) Step(string, deploy.StepState, string) {}
func (discard) Output(string)                         {}

// tracker folds the progress of the same step on several hosts into one
// checklist line: running when the first host starts it, done when all
// hosts that run it finished, failed at the first failure.
type tracker struct {
	p   deploy.Progress
	now func() time.Time

	mu      sync.Mutex
	started map[string]time.Time
	ended   map[string]int
	failed  map[string]bool
}

func newTracker(p deploy.Progress, now func() time.Time) *tracker {
	return &tracker{p: p, now: now, started: map[string]time.Time{}, ended: map[string]int{}, failed: map[string]bool{}}
}

func (s *tracker) begin(name, detail string) {
	s.mu.Lock()
	_, seen := s.started[name]
	if !seen {
		s.started[name] = s.now()
	}
	s.mu.Unlock()
	if !seen {
		s.p.Step(name, deploy.StepRunning, detail)
	}
}

// end records that one of total hosts finished name.
func (s *tracker) end(name string, total int) {
	s.mu.Lock()
	s.ended[name]++
	complete := s.ended[name] == total && !s.failed[name]
	took := s.now().Sub(s.started[name])
	s.mu.Unlock()
	if complete {
		s.p.Step(name, deploy.StepDone, took.Round(100*time.Millisecond).String())
	}
}

func (s *tracker) fail(name, detail string) {
	s.mu.Lock()
	first := !s.failed[name]
	s.failed[name] = true
	s.mu.Unlock()
	if first {
		s.p.Step(name, deploy.StepFailed, detail)
	}
}

// stepContext bounds one step by Recipe.StepTimeout (none when zero).
func (r *Runner) stepContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.Recipe.StepTimeout > 0 {
		return context.WithTimeout(ctx, r.Recipe.StepTimeout)
	}
	return context.WithCancel(ctx)
}

// recoveryContext is for work that must happen even though the job's
// context has ended: it keeps ctx's values, drops its cancellation and is
// bounded by cleanupTimeout.
func recoveryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// explain turns the error of work run under sctx (derived from parent) into
// what happened: the parent ended (returned as is, so errors.Is finds
// context.Canceled), the step timed out, or the command's own error.
func explain(parent, sctx context.Context, timeout time.Duration, err error) error {
	switch {
	case parent.Err() != nil:
		return parent.Err()
	case sctx.Err() != nil && errors.Is(sctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("timed out after %s", timeout)
	}
	return err
}

// capture runs argv on t and returns its output lines.
func capture(ctx context.Context, t *target, argv ...string) ([]string, error) {
	var lines []string
	var mu sync.Mutex
	err := t.host.Run(ctx, "", argv, func(l string) {
		mu.Lock()
		lines = append(lines, l)
		mu.Unlock()
	})
	return lines, err
}

// errDetail is a one-line description of err for a step's detail: an exit
// error gets the last line the command printed, which usually says why.
func errDetail(err error) string {
	var ee *ExitError
	if errors.As(err, &ee) && ee.Output != "" {
		out := strings.TrimRight(ee.Output, "\n")
		if i := strings.LastIndexByte(out, '\n'); i >= 0 {
			out = out[i+1:]
		}
		return err.Error() + ": " + out
	}
	return err.Error()
}

// multiError is several hosts' errors on one line: step details and chat
// messages are single lines, which errors.Join's newlines would break.
type multiError []error

func (m multiError) Error() string {
	parts := make([]string, len(m))
	for i, err := range m {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}

func (m multiError) Unwrap() []error { return m }

// joinErrs drops nils and returns nil, the one error, or a multiError.
func joinErrs(errs ...error) error {
	var m multiError
	for _, err := range errs {
		if err != nil {
			m = append(m, err)
		}
	}
	switch len(m) {
	case 0:
		return nil
	case 1:
		return m[0]
	}
	return m
}
