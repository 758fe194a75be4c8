package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shipbot/shipbot/internal/deploy/release"
)

const (
	defaultMaxLine = 8 << 10
	// outputGrace is how long Run waits for output after the command exited.
	// A restart command may leave a daemon holding the output pipe; without
	// a bound Run would wait for that daemon to exit.
	outputGrace = time.Second
	// exitTail is how many last lines an *ExitError carries.
	exitTail = 5
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

// Run starts argv in its own process group so that cancelling ctx kills
// everything the command started (a shell's children too), not only argv[0].
func (h *Host) Run(ctx context.Context, dir string, argv []string, out func(line string)) error {
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
	lw := &lineWriter{max: limit, out: out}

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = h.environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid addresses the whole group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = outputGrace
	// The same writer for both makes exec share one pipe, so lines keep the
	// order the command wrote them in.
	cmd.Stdout = lw
	cmd.Stderr = lw

	err := cmd.Run()
	lw.close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited 0; only a child kept the output open.
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &release.ExitError{Argv: append([]string(nil), argv...), Code: ee.ExitCode(), Output: lw.tail()}
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	return nil
}

// lineWriter splits output into lines for out, cutting long ones, and keeps
// the last few for an *ExitError.
type lineWriter struct {
	max int
	out func(string)

	mu     sync.Mutex
	cur    []byte
	cut    bool
	last   []string
	closed bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		i := indexNewline(p)
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := w.max - len(w.cur); len(chunk) > room {
			w.cur = append(w.cur, chunk[:max(room, 0)]...)
			w.cut = true
		} else {
			w.cur = append(w.cur, chunk...)
		}
		if i < 0 {
			break
		}
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func indexNewline(p []byte) int {
	for i, c := range p {
		if c == '\n' {
			return i
		}
	}
	return -1
}

func (w *lineWriter) emit() {
	line := strings.TrimSuffix(string(w.cur), "\r")
	if w.cut {
		line += " …"
	}
	w.cur, w.cut = w.cur[:0], false
	w.last = append(w.last, line)
	if len(w.last) > exitTail {
		w.last = w.last[1:]
	}
	if w.out != nil {
		w.out(line)
	}
}

// close flushes a last line without newline; later writes are dropped so out
// is never called after Run returned.
func (w *lineWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.cur) > 0 || w.cut {
		w.emit()
	}
	w.closed = true
}

func (w *lineWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, "\n")
}
