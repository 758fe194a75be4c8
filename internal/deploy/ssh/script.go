package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/shipbot/shipbot/internal/deploy/release"
)

var _ release.ScriptHost = (*Host)(nil)

// outputGrace is how long RunScript waits for the session to close after
// the script's last line: a daemon a restart step started may keep the
// output open as long as it runs.
const outputGrace = time.Second

// scriptCommand is the whole command line a script session sends. The
// script itself follows on stdin (len bytes) and is run by /bin/sh: the
// command line is the same for every script, plain enough for any login
// shell (bash, zsh, even csh), and the script's text, with its marker nonce,
// never shows in the host's process list.
func scriptCommand(n int) string {
	return fmt.Sprintf(`exec /bin/sh -c 'eval "$(head -c %d)"'`, n)
}

// Remote is true: scripts receive the artifact on stdin and watch it for
// the bot going away.
func (h *Host) Remote() bool { return true }

// RunScript runs s in one session without a PTY: stdin carries the script,
// then s.Stdin, and then stays open. Closing it is how a cancel reaches the
// host: the script's watchdog sees EOF and stops the running step (SIGTERM,
// SIGKILL KillAfter later, through timeout(1)); sshd closes it the same way
// when the bot's connection drops, so a killed bot stops its steps too.
// Without a PTY stdout and stderr stay apart and a binary artifact passes
// untouched; the script merges its own output.
func (h *Host) RunScript(ctx context.Context, s release.Script, out func(line string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := h.conn(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	sess, err := c.client.NewSession()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.explain(h.Name(), err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := sess.StderrPipe()
	if err != nil {
		return err
	}

	finished := make(chan struct{})
	var finishOnce sync.Once
	wo := release.NewLineWriter(h.cfg.MaxLine, func(l string) {
		out(l)
		if s.Done != "" && strings.HasPrefix(l, s.Done) {
			finishOnce.Do(func() { close(finished) })
		}
	})
	// The script sends its own stderr to stdout before anything else, so
	// what arrives on the session's stderr is the login shell's (a banner,
	// a profile's complaints) or a shell that could not start the script.
	// sshd's two channels are not ordered with each other: such a line may
	// arrive after the script's first markers and would pass for step
	// output. It is kept aside, and shown only if the script never said it
	// finished, where it may be the reason.
	var (
		errMu    sync.Mutex
		errLines []string
	)
	we := release.NewLineWriter(h.cfg.MaxLine, func(l string) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errLines) == maxLoginLines {
			errLines = errLines[1:]
		}
		errLines = append(errLines, l)
	})
	defer wo.Close()
	defer we.Close()

	if err := sess.Start(scriptCommand(len(s.Text))); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.explain(h.Name(), fmt.Errorf("start script: %w", err))
	}
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); _, _ = io.Copy(wo, stdout) }()
	go func() { defer copiers.Done(); _, _ = io.Copy(we, stderr) }()
	go func() {
		if _, err := io.WriteString(stdin, s.Text); err != nil || s.Stdin == nil {
			return
		}
		_, _ = io.Copy(stdin, s.Stdin)
	}()
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()

	// hangUp ends the session from this side; a host that does not
	// confirm within the grace loses the connection.
	hangUp := func() {
		_ = sess.Close()
		select {
		case <-waited:
		case <-time.After(h.cfg.cancelGrace):
			_ = c.close(fmt.Errorf("the host did not confirm the end of a script within %s", h.cfg.cancelGrace))
			<-waited
		}
	}
	var werr error
	select {
	case werr = <-waited:
	case <-finished:
		select {
		case werr = <-waited:
		case <-time.After(outputGrace):
			hangUp()
			werr = nil
		}
	case <-ctx.Done():
		_ = stdin.Close()
		select {
		case <-waited:
		case <-time.After(h.cfg.cancelGrace):
			_ = c.close(fmt.Errorf("the host did not confirm a cancelled script within %s", h.cfg.cancelGrace))
			<-waited
		}
		copiers.Wait()
		return ctx.Err()
	}
	copiers.Wait()
	wo.Close()
	we.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	select {
	case <-finished:
	default:
		errMu.Lock()
		for _, l := range errLines {
			out(l)
		}
		errMu.Unlock()
	}
	var ee *gossh.ExitError
	switch {
	case werr == nil:
		return nil
	case errors.As(werr, &ee):
		return &release.ExitError{Argv: []string{"sh"}, Code: ee.ExitStatus(), Output: wo.Tail()}
	}
	return c.explain(h.Name(), werr)
}

// maxLoginLines bounds what is kept of a session's stderr (see RunScript).
const maxLoginLines = 20
