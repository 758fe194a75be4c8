package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// defaultInterval separates health attempts when the recipe sets none.
const defaultInterval = time.Second

// stepError is a failure of one step of a script.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// failedStep is the step err failed in, "" if none.
func failedStep(err error) string {
	var se *stepError
	if errors.As(err, &se) {
		return se.step
	}
	return ""
}

// scriptRun follows one script's output: marker lines drive the card and
// the target's state, every other line is the steps' output.
type scriptRun struct {
	j      *job
	t      *target
	s      *script
	report bool // steps go to the card (not for clean-up scripts)
	cancel context.CancelFunc

	mu           sync.Mutex
	started      bool
	exited       bool
	exitOK       bool   // the script reported it did everything
	step         string // begun and not ended
	last         string // the step begun last
	failStep     string
	failCode     int
	failK        int
	failTail     string
	reason       []string
	tries        int
	timedOut     string // the step that ran past StepTimeout
	timer        *time.Timer
	tail         []string // last lines of the running step
	noise        []string // last lines before the script started, for errors
	pendingEmpty bool
	badCurrent   error
}

// runScript runs s on t, reporting its steps (if report) and returning the
// first failure as a *stepError naming the step.
func (j *job) runScript(ctx context.Context, t *target, s *script, report bool) error {
	if s.err != nil {
		return j.scriptFailed(ctx, t, s, report, s.first, s.err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sr := &scriptRun{j: j, t: t, s: s, report: report, cancel: cancel}
	if report {
		// The script's first step counts as started from now, before the
		// host could have done any of it: a bot that dies as the switch is
		// reported running has not switched anything.
		j.steps.begin(s.first, "")
	}
	sc := s.out
	sc.Stdin = s.input
	if s.artifact != "" {
		f, err := os.Open(s.artifact)
		if err != nil {
			return j.scriptFailed(ctx, t, s, report, s.first, fmt.Errorf("artifact: %w", err))
		}
		defer f.Close()
		sc.Stdin = f
	}
	hostErr := t.host.(ScriptHost).RunScript(sctx, sc, sr.line)
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.timer != nil {
		sr.timer.Stop()
	}
	if sr.pendingEmpty && !sr.exited {
		sr.emit("")
	}
	sr.pendingEmpty = false
	step, err := sr.outcome(ctx, hostErr)
	if err == nil {
		return nil
	}
	if step == "" {
		step = s.first
	}
	return j.scriptFailed(ctx, t, s, report, step, err)
}

// scriptFailed reports err as the failure of step on t.
func (j *job) scriptFailed(ctx context.Context, t *target, s *script, report bool, step string, err error) error {
	if report && step != "" {
		detail := errDetail(err)
		switch {
		case j.ctx.Err() != nil:
			detail = "cancelled"
		case ctx.Err() != nil:
			detail = "stopped: another host failed"
		}
		j.steps.fail(step, t.prefix+detail)
	}
	if step == "" {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	return &stepError{step: step, err: fmt.Errorf("%s on %s: %w", step, t.name, err)}
}

func (sr *scriptRun) line(l string) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	token := sr.s.token + " "
	if rest, ok := strings.CutPrefix(l, token); ok {
		sr.pendingEmpty = false
		sr.marker(rest)
		return
	}
	if !sr.started {
		// A login shell's banner or profile output, before the script ran.
		if i := strings.Index(l, token+"start"); i >= 0 {
			sr.started = true
			return
		}
		sr.noise = appendTail(sr.noise, l)
		return
	}
	if sr.exited {
		return
	}
	if sr.pendingEmpty {
		sr.emit("")
		sr.pendingEmpty = false
	}
	// Every marker is printed after a newline of its own; if the line
	// before it ends up empty, that newline made it.
	if l == "" {
		sr.pendingEmpty = true
		return
	}
	sr.emit(l)
}

func (sr *scriptRun) emit(l string) {
	sr.tail = appendTail(sr.tail, l)
	sr.j.p.Output(sr.t.prefix + l)
}

func appendTail(tail []string, l string) []string {
	tail = append(tail, l)
	if len(tail) > exitTail {
		tail = tail[1:]
	}
	return tail
}

func stepName(id string) string { return strings.ReplaceAll(id, "-", " ") }

func (sr *scriptRun) marker(rest string) {
	kind, arg, _ := strings.Cut(rest, " ")
	f := strings.Fields(arg)
	j, t := sr.j, sr.t
	switch kind {
	case "start":
		sr.started = true
	case "cur":
		t.before, sr.badCurrent = "", nil
		if arg != "" {
			id := path.Base(arg)
			if !deploy.ValidName(id) {
				sr.badCurrent = fmt.Errorf("current on %s points at %q, which is not a release", t.name, arg)
			} else {
				t.before = id
			}
		}
	case "rel":
		if len(f) == 1 && deploy.ValidName(f[0]) {
			t.releases = append(t.releases, f[0])
		}
	case "made":
		t.created = true
	case "begin":
		if len(f) != 1 {
			return
		}
		name := stepName(f[0])
		sr.step, sr.last, sr.tail, sr.reason = name, name, nil, nil
		if name == StepRestart {
			t.restartBegun = true
		}
		if sr.report {
			j.steps.begin(name, "")
		}
		if d := j.r.Recipe.StepTimeout; d > 0 {
			sr.timer = time.AfterFunc(d, func() {
				sr.mu.Lock()
				late := sr.step != name
				if !late {
					sr.timedOut = name
				}
				sr.mu.Unlock()
				if !late {
					sr.cancel()
				}
			})
		}
	case "end":
		if sr.timer != nil {
			sr.timer.Stop()
			sr.timer = nil
		}
		if len(f) != 3 {
			return
		}
		name := stepName(f[0])
		code, _ := strconv.Atoi(f[1])
		k, _ := strconv.Atoi(f[2])
		sr.step = ""
		if code == 0 {
			if name == StepSwitch {
				t.switched = true
			}
			if sr.report {
				j.steps.end(name, j.total(name))
			}
			return
		}
		sr.failStep, sr.failCode, sr.failK = name, code, k
		sr.failTail = strings.Join(sr.tail, "\n")
	case "fail":
		sr.reason = f
	case "tries":
		if len(f) == 1 {
			sr.tries, _ = strconv.Atoi(f[0])
		}
	case "ready":
		if sr.s.onReady != nil {
			sr.s.onReady()
		}
	case "exit":
		sr.exited = true
		sr.exitOK = len(f) == 1 && f[0] == "0"
	}
}

// outcome is the step that failed and why, or "", nil if the script did
// everything. ctx is the one the script ran under, before the step timer.
func (sr *scriptRun) outcome(ctx context.Context, hostErr error) (string, error) {
	step := sr.failStep
	if step == "" {
		step = sr.step
	}
	if step == "" {
		step = sr.last
	}
	switch {
	case sr.timedOut != "":
		return sr.timedOut, fmt.Errorf("timed out after %s", sr.j.r.Recipe.StepTimeout)
	case sr.exitOK && sr.failStep == "" && sr.badCurrent == nil:
		return "", nil
	case ctx.Err() != nil:
		return step, ctx.Err()
	case sr.badCurrent != nil:
		return step, sr.badCurrent
	case sr.failStep != "":
		return step, sr.stepErr()
	case !sr.started:
		if hostErr == nil {
			hostErr = errors.New("no output from the script")
		}
		if len(sr.noise) > 0 {
			return step, fmt.Errorf("the deploy script did not start: %w: %s", hostErr, sr.noise[len(sr.noise)-1])
		}
		return step, fmt.Errorf("the deploy script did not start: %w", hostErr)
	case hostErr != nil:
		return step, hostErr
	}
	return step, errors.New("the deploy script stopped before it finished")
}

// stepErr explains a step that exited non-zero.
func (sr *scriptRun) stepErr() error {
	var argv []string
	if sr.failK >= 0 && sr.failK < len(sr.s.cmds) {
		argv = sr.s.cmds[sr.failK]
	}
	ee := &ExitError{Argv: argv, Code: sr.failCode, Output: sr.failTail}
	j, t := sr.j, sr.t
	reason := ""
	if len(sr.reason) > 0 {
		reason = sr.reason[0]
	}
	switch reason {
	case "exists":
		return fmt.Errorf("cannot create release %s (does it exist already?): %w", j.release, ee)
	case "noref":
		return fmt.Errorf("ref %q not found in the repository", j.ref)
	case "norelease":
		id := j.release
		if len(sr.reason) > 1 {
			id = sr.reason[1]
		}
		return fmt.Errorf("release %s does not exist on %s", id, t.name)
	case "checksum":
		got := ""
		if len(sr.reason) > 1 {
			got = sr.reason[1]
		}
		return fmt.Errorf("the artifact reached %s damaged: sha256 %s on the host, %s sent", t.name, got, j.artifactSum)
	}
	if sr.failStep == StepHealth {
		h := j.r.Recipe.Health
		var err error = ee
		if sr.failCode == 124 && h.Timeout > 0 {
			err = fmt.Errorf("attempt timed out after %s", h.Timeout)
		}
		if sr.tries > 1 {
			err = fmt.Errorf("%w (after %d attempts)", err, sr.tries)
		}
		return err
	}
	return ee
}
