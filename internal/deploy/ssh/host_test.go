package ssh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy/release"
	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

func TestRunStreamsCombinedOutputAndExitStatus(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	h := open(t, hostConfig(t, c, 0))

	out, err := run(t, h, "", "sh", "-c", "echo one; echo two >&2; printf 'no newline'; exit 3")
	var ee *release.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want *release.ExitError, got %v (output %q)", err, out)
	}
	if ee.Code != 3 || ee.Argv[0] != "sh" {
		t.Errorf("exit error = %+v, want code 3 for sh", ee)
	}
	want := []string{"one", "two", "no newline"}
	if strings.Join(out, "|") != strings.Join(want, "|") {
		t.Errorf("output = %q, want %q", out, want)
	}
	if !strings.Contains(ee.Output, "no newline") {
		t.Errorf("exit error output %q lacks the last line", ee.Output)
	}

	// The same connection serves every command of a job.
	if _, err := run(t, h, "", "true"); err != nil {
		t.Fatalf("second command on the connection: %v", err)
	}
}

func TestRunInDirectoryWithHostileName(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	h := open(t, hostConfig(t, c, 0))
	dir := filepath.Join(t.TempDir(), "it's a $(dir); rm -rf x")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, h, dir, "pwd")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0] != dir {
		t.Fatalf("pwd in %q printed %q", dir, out)
	}

	_, err = run(t, h, filepath.Join(dir, "missing"), "true")
	var ee *release.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("running in a missing dir: want an exit error, got %v", err)
	}
}

func TestRunHasNoAgentAndNoInput(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	h := open(t, hostConfig(t, c, 0))
	// A step that reads input must get EOF at once, not wait for a typist.
	out, err := run(t, h, "", "sh", "-c", `echo "agent=$SSH_AUTH_SOCK"; if read x; then echo "read $x"; else echo eof; fi`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(out, "|") != "agent=|eof" {
		t.Fatalf("output = %q, want no agent socket and EOF on stdin", out)
	}
}

func TestRunCapsLongLines(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	cfg := hostConfig(t, c, 0)
	cfg.MaxLine = 100
	h := open(t, cfg)
	out, err := run(t, h, "", "sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x; echo; echo short")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != strings.Repeat("x", 100)+" …" || out[1] != "short" {
		t.Fatalf("output = %q", out)
	}
}

// randomWords are argv words full of what a shell would interpret.
func randomWords(r *rand.Rand) []string {
	pieces := []string{"'", `"`, "$", "$(id)", "`id`", ";", "&&", "|", "\n", " ", "\t", "\\", "*", "?", "~",
		"#", "!", "{", "}", "[", "]", "<", ">", "=", "%s", "-", "--", "é", "日本", "'\\''", "a", "b", "x=1"}
	words := make([]string, 1+r.IntN(6))
	for i := range words {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		words[i] = b.String()
	}
	return words
}

// checkRoundTrip runs printf '%s\n' WORDS on h and checks the words came
// back unchanged: each word's lines, in order.
func checkRoundTrip(t *testing.T, h release.Host, words []string) {
	t.Helper()
	out, err := run(t, h, "", append([]string{"printf", `%s\n`}, words...)...)
	if err != nil {
		t.Fatalf("printf %q: %v", words, err)
	}
	if got, want := strings.Join(out, "\n"), strings.Join(words, "\n"); got != want {
		t.Fatalf("words changed on the way:\n sent %q\n got  %q", words, out)
	}
}

func TestQuotedWordsReachTheRemoteCommandUnchanged(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	h := open(t, hostConfig(t, c, 0))
	r := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		checkRoundTrip(t, h, randomWords(r))
	}
	checkRoundTrip(t, h, []string{"", "it's", `"$(touch /tmp/pwned)"`, "a;b", "two\nlines", "  spaced  ", "-n"})
}

// FuzzRemoteQuoting sends arbitrary words through the remote login shell.
// Carriage returns, escapes and NUL are left out: the PTY rewrites the first,
// output cleaning drops the second, and argv cannot hold the third (Run
// refuses it, see TestRunRefusesNUL).
func FuzzRemoteQuoting(f *testing.F) {
	c := sshtest.Start(f, 1)
	h := open(f, hostConfig(f, c, 0))
	for _, seed := range [][2]string{
		{"it's", `$(echo pwned)`}, {"a;b && c", "`id`"}, {"line1\nline2", `'\''`}, {"", " "}, {"\\", "'\"'"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, w := range []string{a, b} {
			if strings.ContainsAny(w, "\r\x00\x1b") || len(w) > 1000 {
				t.Skip()
			}
		}
		checkRoundTrip(t, h, []string{a, b})
	})
}

func TestRunRefusesNUL(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	h := open(t, hostConfig(t, c, 0))
	if _, err := run(t, h, "", "echo", "a\x00b"); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("want a NUL refusal, got %v", err)
	}
}

// marker is a sleep duration no other process has: 300 seconds plus a
// random fraction, which pgrep can find in the command line.
func marker(base int) string {
	return fmt.Sprintf("%d.%09d", base, rand.IntN(1e9))
}

// sleeping reports whether the sleep with marker m runs (not merely the
// login shell that is about to exec it).
func sleeping(t testing.TB, m string) bool {
	return len(processes(t, "^sleep "+m+"$")) > 0
}

// startRun runs argv on h in the background; the channel gets Run's error.
func startRun(ctx context.Context, h release.Host, argv ...string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, "", argv, nil) }()
	return done
}

func waitErr(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %s", within)
		return nil
	}
}

func TestCancelStopsTheRemoteCommand(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	h := open(t, hostConfig(t, c, 0))
	conn := h.cur

	for _, tc := range []struct {
		name string
		argv func(m string) []string
	}{
		{"command", func(m string) []string { return []string{"sleep", m} }},
		// The shell stays as parent: the child must go too.
		{"child of a shell", func(m string) []string { return []string{"sh", "-c", "sleep " + m + "; echo not reached"} }},
		// Ignoring the hangup only delays the end until the remote kill,
		// which Run waits for.
		{"ignores SIGHUP", func(m string) []string {
			return []string{"sh", "-c", "trap '' HUP TERM; sleep " + m + "; echo not reached"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := marker(300)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := startRun(ctx, h, tc.argv(m)...)
			waitFor(t, 10*time.Second, "the remote sleep to start", func() bool { return sleeping(t, m) })

			cancel()
			if err := waitErr(t, done, (killAfter+3)*time.Second); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run after cancel = %v, want context.Canceled", err)
			}
			// sshd confirms the end of a session only once its command
			// exited; its process group, killed at the same moment, may
			// take a few milliseconds more to disappear.
			waitFor(t, 2*time.Second, "the remote command to end", func() bool { return len(processes(t, m)) == 0 })
		})
	}
	// The job's next command runs on the same connection.
	if _, err := run(t, h, "", "true"); err != nil {
		t.Fatalf("command after cancels: %v", err)
	}
	if h.cur != conn {
		t.Fatal("a cancel dropped the connection although the host answered")
	}
}

func TestStepTimeoutStopsTheRemoteCommand(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	h := open(t, hostConfig(t, c, 0))
	m := marker(300)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Run(ctx, "", []string{"sleep", m}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run returned after %s", took)
	}
	waitFor(t, 10*time.Second, "the remote command to end", func() bool { return len(processes(t, m)) == 0 })
}

// proxied returns a HostConfig reaching host 0 of c through a proxy that
// the test can freeze, with known_hosts pinning the host's key at the
// proxy's address.
func proxied(t *testing.T, c *sshtest.Cluster) (HostConfig, *freezingProxy) {
	t.Helper()
	p := newFreezingProxy(t, c.Hosts[0].Addr)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(sshtest.KnownHostsLine(p.addr(), c.Hosts[0].HostKey)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := hostConfig(t, c, 0)
	cfg.Addr = p.addr()
	cb, err := HostKeyCallback(kh)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HostKeys = cb
	return cfg, p
}

// When the connection dies silently, the remote timeout still ends the
// step on the host, and the bot does not wait for a server that never answers.
func TestRemoteTimeoutEndsStepWhenConnectionIsGone(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	cfg, p := proxied(t, c)
	cfg.cancelGrace = 300 * time.Millisecond
	h := open(t, cfg)

	m := marker(300)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	done := startRun(ctx, h, "sleep", m)
	waitFor(t, 10*time.Second, "the remote sleep to start", func() bool { return sleeping(t, m) })
	p.freeze() // from now on neither the cancel nor a disconnect reaches sshd

	if err := waitErr(t, done, 5*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
	waitFor(t, 10*time.Second, "the remote timeout to end the step", func() bool { return len(processes(t, m)) == 0 })
}

// A connection that stops answering keepalives fails the running step
// instead of hanging the job, and the next step dials again. Once the bot's
// side of the dead connection is gone (as when the bot is killed), sshd
// hangs up the step.
func TestKeepaliveFailsStepOnDeadConnection(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	cfg, p := proxied(t, c)
	cfg.Keepalive = 100 * time.Millisecond
	h := open(t, cfg)

	m := marker(300)
	done := startRun(context.Background(), h, "sleep", m)
	waitFor(t, 10*time.Second, "the remote sleep to start", func() bool { return sleeping(t, m) })
	p.freeze()

	err := waitErr(t, done, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "lost") || !strings.Contains(err.Error(), "keepalive") {
		t.Fatalf("Run on a dead connection = %v, want a lost-connection error naming the keepalive", err)
	}
	if len(processes(t, m)) == 0 {
		t.Fatal("the step ended although sshd could not know the client was gone; the test proves nothing")
	}
	if out, err := run(t, h, "", "echo", "reconnected"); err != nil || len(out) != 1 || out[0] != "reconnected" {
		t.Fatalf("the step after a lost connection: %q, %v", out, err)
	}
	p.close() // sshd now sees the client gone
	waitFor(t, 10*time.Second, "sshd to hang up the step", func() bool { return len(processes(t, m)) == 0 })
}
