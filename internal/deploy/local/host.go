package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

const (
	defaultMaxLine = 8 << 10
	// outputGrace is how long Run waits for output after the command exited.
	// A restart command may leave a daemon holding the output pipe; without
	// a bound Run would wait for that daemon to exit.
	outputGrace = time.Second
)

// Host runs argv on this machine with os/exec: no shell is involved, each
// word reaches the program exactly as given. It is its own Opener.
type Host struct {
	// MaxLine caps one output line in bytes; the rest of a longer line is
	// dropped. 0 means 8 KiB.
	MaxLine int
	// Env is added to the environment commands get ("KEY=value").
	Env []string
}

// passedEnv is the part of the bot's environment commands inherit. The bot's
// environment holds its secrets (chat tokens, API keys expanded into the
// config), and a build script from a repository must not be able to print
// them into the chat, so everything else is left out.
var passedEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
	"SSH_AUTH_SOCK", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

func (h *Host) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(passedEnv, k) || strings.HasPrefix(k, "LC_") {
			env = append(env, kv)
		}
	}
	return append(env, h.Env...)
}

var (
	_ release.Host   = (*Host)(nil)
	_ release.Opener = (*Host)(nil)
)

// NewHost returns a Host with default limits.
func NewHost() *Host { return &Host{} }

func (h *Host) Name() string { return "local" }

// Open returns h itself: there is no connection to make.
func (h *Host) Open(context.Context) (release.Host, error) { return h, nil }

func (h *Host) Close() error { return nil }

// stepEnv names the environment variable that marks a step's processes
// with a random token, so a leftover group can be told from one that reused
// its id (see KillLeftovers).
const stepEnv = "SHIPBOT_STEP"

// Run starts argv in its own process group so that cancelling ctx kills
// everything the command started (a shell's children too), not only argv[0].
// When the command exits, what it left running in its group is killed too:
// a step is over when Run returns (a daemon a restart starts must detach,
// as systemd or setsid do). The group is recorded with the job (see
// deploy.ProcessRecorder) while it runs, so a restart after a crash finds
// and stops what is left of it.
func (h *Host) Run(ctx context.Context, dir string, argv []string, out func(line string)) error {
	return h.run(ctx, dir, argv, false, out)
}

// run is Run; script says argv is a phase script (see stepAttr).
func (h *Host) run(ctx context.Context, dir string, argv []string, script bool, out func(line string)) error {
	if len(argv) == 0 || argv[0] == "" {
		return errors.New("empty command")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	limit := h.MaxLine
	if limit <= 0 {
		limit = defaultMaxLine
	}
	token, err := newToken()
	if err != nil {
		return err
	}
	lw := release.NewLineWriter(limit, out)

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(h.environ(), stepEnv+"="+token)
	cmd.SysProcAttr = stepAttr(script)
	cmd.Cancel = func() error {
		// The negative pid addresses the whole group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = outputGrace
	// The same writer for both makes exec share one pipe, so lines keep the
	// order the command wrote them in.
	cmd.Stdout = lw
	cmd.Stderr = lw

	// The token is recorded before the start and the group right after:
	// a crash in between leaves a record without a group, and recovery
	// then looks for the token alone.
	rec := deploy.ProcessRecorderFrom(ctx)
	proc := deploy.StepProcess{Token: token, Started: time.Now()}
	if rec != nil {
		if err := rec.Started(proc); err != nil {
			lw.Close()
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		lw.Close()
		if rec != nil {
			rec.Ended(proc)
		}
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	pgid := cmd.Process.Pid
	proc.PGID = pgid
	if r := rec; r != nil {
		if err := r.Started(proc); err != nil {
			// Unrecorded, a crash could leave it running unseen: stop it.
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			_ = cmd.Wait()
			lw.Close()
			return err
		}
	}
	err = cmd.Wait()
	// Whatever the command left in its group (a backgrounded child) ends
	// with the step. ESRCH: nothing was left.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if rec != nil {
		rec.Ended(proc)
	}
	lw.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited 0; only a child kept the output open.
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &release.ExitError{Argv: append([]string(nil), argv...), Code: ee.ExitCode(), Output: lw.Tail()}
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	return nil
}

func newToken() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
