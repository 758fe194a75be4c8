package main

// Helpers for the end-to-end tests: they build the real bot binary once,
// give each test its own directory and config, and drive the shell chat
// through stdin while reading what the bot prints.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

// botPath is the binary TestMain builds from this package.
var botPath string

const (
	// outputTimeout bounds every wait for the bot to print something.
	outputTimeout = 20 * time.Second
	// exitTimeout bounds every wait for the bot to exit.
	exitTimeout = 30 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shipbot-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	botPath = filepath.Join(dir, "bot")
	build := exec.Command("go", "build", "-o", botPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the bot binary:", err)
		return 1
	}
	return m.Run()
}

// testEnv is one test's world: a directory holding the config, the database
// and the deploy targets.
type testEnv struct {
	t      *testing.T
	dir    string
	config string
	env    []string // added to the environment of cli commands
}

// newEnv writes configs/example.yaml with every path made absolute under a
// fresh temp dir. shutdown replaces bot.shutdown_timeout when not empty.
func newEnv(t *testing.T, shutdown string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := exampleConfig(t, dir, shutdown)
	path := filepath.Join(dir, "shipbot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, config: path}
}

func exampleConfig(t *testing.T, dir, shutdown string) string {
	t.Helper()
	raw, err := os.ReadFile("../../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	demo, err := filepath.Abs("../../examples/demo")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	replace := func(old, new string) {
		if !strings.Contains(cfg, old) {
			t.Fatalf("configs/example.yaml no longer contains %q; update the e2e config rewrite", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	replace("copy: ./examples/demo", "copy: "+demo)
	replace("./var", filepath.Join(dir, "var"))
	if shutdown != "" {
		replace("shutdown_timeout: 2m", "shutdown_timeout: "+shutdown)
	}
	return cfg
}

// envPath is where the demo app's env is deployed.
func (e *testEnv) envPath(env string) string {
	return filepath.Join(e.dir, "var", "deploy", "demo", env)
}

func (e *testEnv) database() string { return filepath.Join(e.dir, "var", "shipbot.db") }

// cli runs a one-shot bot command (check, audit, version) and returns its
// exit code and output.
func (e *testEnv) cli(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, botPath, args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), e.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		e.t.Fatalf("bot %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// auditExport returns the audit log through `bot audit export`.
func (e *testEnv) auditExport() []audit.Event {
	e.t.Helper()
	code, out, errOut := e.cli("audit", "export", "--config", e.config)
	if code != 0 {
		e.t.Fatalf("bot audit export exited %d: %s", code, errOut)
	}
	var evs []audit.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			e.t.Fatalf("audit export line %q: %v", sc.Text(), err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// mustVerify asserts `bot audit verify` passes.
func (e *testEnv) mustVerify() {
	e.t.Helper()
	code, out, errOut := e.cli("audit", "verify", "--config", e.config)
	if code != 0 || !strings.Contains(out, "chain intact") {
		e.t.Fatalf("bot audit verify exited %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// currentRelease asserts env's current is a symlink to an existing
// releases/<id> directory whose VERSION names it, and returns the id.
func (e *testEnv) currentRelease(env string) string {
	e.t.Helper()
	base := e.envPath(env)
	link := filepath.Join(base, "current")
	fi, err := os.Lstat(link)
	if err != nil {
		e.t.Fatalf("current: %v", err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		e.t.Fatalf("%s is %v, not a symlink", link, fi.Mode())
	}
	target, err := os.Readlink(link)
	if err != nil {
		e.t.Fatal(err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(base, target)
	}
	if dir := filepath.Dir(target); dir != filepath.Join(base, "releases") {
		e.t.Fatalf("current points to %s, outside %s/releases", target, base)
	}
	id := filepath.Base(target)
	version, err := os.ReadFile(filepath.Join(target, "VERSION"))
	if err != nil {
		e.t.Fatalf("current release %s: %v", id, err)
	}
	if got := strings.TrimSpace(string(version)); got != id {
		e.t.Fatalf("current release %s has VERSION %q", id, got)
	}
	return id
}

// releaseDirs lists releases/ of env.
func (e *testEnv) releaseDirs(env string) []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.envPath(env), "releases"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		out = append(out, ent.Name())
	}
	return out
}

// outputBuffer collects what the bot prints and wakes waiters on each write.
type outputBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every Write
}

func newOutputBuffer() *outputBuffer { return &outputBuffer{changed: make(chan struct{})} }

func (o *outputBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return n, err
}

// snapshot returns the text so far and a channel closed at the next write.
func (o *outputBuffer) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String(), o.changed
}

func (o *outputBuffer) String() string {
	s, _ := o.snapshot()
	return s
}

// botProc is a running `bot run`.
type botProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	write  func(string) error
	out    *outputBuffer
	errOut *outputBuffer
	exited chan struct{}
	// seen is the offset in out up to which waitFor has consumed output, so
	// consecutive waits match consecutive events.
	seen int
}

// startBot runs the bot on e's config. With script != nil stdin is that
// text (a piped session); otherwise stdin is a pipe fed by send.
func (e *testEnv) startBot(script *string, extraEnv ...string) *botProc {
	e.t.Helper()
	cmd := exec.Command(botPath, "--config", e.config)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), extraEnv...)
	// Its own process group, so cleanup can stop whatever it left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	p := &botProc{t: e.t, cmd: cmd, out: newOutputBuffer(), errOut: newOutputBuffer(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.errOut
	if script != nil {
		cmd.Stdin = strings.NewReader(*script)
	} else {
		w, err := cmd.StdinPipe()
		if err != nil {
			e.t.Fatal(err)
		}
		p.stdin = w
		p.write = func(s string) error { _, err := w.Write([]byte(s)); return err }
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if e.t.Failed() {
			e.t.Logf("bot output:\n%s\nbot stderr:\n%s", p.out, p.errOut)
		}
	})
	return p
}

// runScript pipes script into the bot and waits for it to exit.
func (e *testEnv) runScript(script string, extraEnv ...string) (*botProc, *os.ProcessState) {
	e.t.Helper()
	p := e.startBot(&script, extraEnv...)
	return p, p.wait(exitTimeout)
}

// send types one line into the bot.
func (p *botProc) send(line string) {
	p.t.Helper()
	if p.write == nil {
		p.t.Fatal("send on a scripted session")
	}
	if err := p.write(line + "\n"); err != nil {
		p.t.Fatalf("typing %q: %v", line, err)
	}
}

// closeInput ends stdin, as Ctrl-D would.
func (p *botProc) closeInput() {
	p.t.Helper()
	if err := p.stdin.Close(); err != nil {
		p.t.Fatal(err)
	}
}

// waitFor waits until the output after what earlier waits matched contains
// re, consumes it, and returns the match and its groups.
func (p *botProc) waitFor(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(outputTimeout)
	defer deadline.Stop()
	for {
		text, changed := p.out.snapshot()
		if loc := rx.FindStringSubmatchIndex(text[p.seen:]); loc != nil {
			groups := make([]string, len(loc)/2)
			for i := range groups {
				if loc[2*i] >= 0 {
					groups[i] = text[p.seen+loc[2*i] : p.seen+loc[2*i+1]]
				}
			}
			p.seen += loc[1]
			return groups
		}
		select {
		case <-changed:
		case <-p.exited:
			// The process is gone: one last look at everything it wrote.
			if text := p.out.String(); rx.MatchString(text[p.seen:]) {
				continue
			}
			p.t.Fatalf("bot exited (%v) before printing %q\nafter:\n%s", p.cmd.ProcessState, re, text[p.seen:])
		case <-deadline.C:
			p.t.Fatalf("no %q within %s\nafter:\n%s", re, outputTimeout, text[p.seen:])
		}
	}
}

// mustContain asserts the whole output so far matches re, in any order
// relative to other checks, and returns the match and its groups.
func (p *botProc) mustContain(re string) []string {
	p.t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(p.out.String())
	if m == nil {
		p.t.Fatalf("output lacks %q:\n%s", re, p.out)
	}
	return m
}

// wait waits for the process to exit.
func (p *botProc) wait(timeout time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState
	case <-time.After(timeout):
		p.t.Fatalf("bot still running after %s\noutput:\n%s", timeout, p.out)
		return nil
	}
}

// mustExit0 waits for a clean exit.
func (p *botProc) mustExit0() {
	p.t.Helper()
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		p.t.Fatalf("bot exited with %v\nstderr: %s", st, p.errOut)
	}
}

// Card patterns. A card starts with its title line "... (job #N)" and runs
// until the next "── #M ──" header; these match a line within one card.
func cardLine(job int, line string) string {
	return fmt.Sprintf(`\(job #%d\)\n(?:[^─\n][^\n]*\n)*?%s\n`, job, line)
}

// cardState matches job's card once it shows state.
func cardState(job int, state string) string {
	return cardLine(job, "  state: "+regexp.QuoteMeta(state))
}

// cardRelease matches job's card and captures the release it deploys.
func cardRelease(job int) string {
	return cardLine(job, `  release: (?:\S+ → )?(\S+)`)
}

var headerRx = regexp.MustCompile(`(?m)^── #\d+(?: \(updated\))? ──\n`)

// messages splits output into the bodies of the messages printed, dropping
// the shell's own lines that precede the first header.
func messages(out string) []string {
	parts := headerRx.Split(out, -1)
	return parts[1:]
}

// jobIntent finds the intent row that created job id.
func jobIntent(t *testing.T, evs []audit.Event, id int64) audit.Event {
	t.Helper()
	for _, ev := range evs {
		if ev.Kind == audit.KindIntent && ev.JobID == id {
			return ev
		}
	}
	t.Fatalf("no intent for job #%d in the audit log", id)
	return audit.Event{}
}

// outcomesOf lists the outcome rows closing the intent at seq.
func outcomesOf(evs []audit.Event, seq int64) []audit.Event {
	var out []audit.Event
	for _, ev := range evs {
		if ev.Kind == audit.KindOutcome && ev.IntentSeq == seq {
			out = append(out, ev)
		}
	}
	return out
}

// waitAnywhere waits until the whole output so far matches re, wherever,
// without consuming it: for events whose order against others is not fixed
// (a card edited by one goroutine, a reply sent by another).
func (p *botProc) waitAnywhere(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(outputTimeout)
	defer deadline.Stop()
	for {
		text, changed := p.out.snapshot()
		if m := rx.FindStringSubmatch(text); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-p.exited:
			if m := rx.FindStringSubmatch(p.out.String()); m != nil {
				return m
			}
			p.t.Fatalf("bot exited (%v) before printing %q", p.cmd.ProcessState, re)
		case <-deadline.C:
			p.t.Fatalf("no %q within %s", re, outputTimeout)
		}
	}
}

var boundButtonID = regexp.MustCompile(`b:([a-z2-7]{24})`)

// resolveButtons returns markup with every bound button id ("b:ID") replaced
// by what the bot's database says the button does, so a test can find the
// Approve button of one approval. An id the database does not know is kept.
func (e *testEnv) resolveButtons(markup string) string {
	if !boundButtonID.MatchString(markup) {
		return markup
	}
	db, err := sql.Open("sqlite", "file:"+e.database()+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	return boundButtonID.ReplaceAllStringFunc(markup, func(s string) string {
		var data string
		if err := db.QueryRow(`SELECT data FROM buttons WHERE id = ?`, strings.TrimPrefix(s, "b:")).Scan(&data); err != nil {
			return s
		}
		return data
	})
}

// freeAddr is a loopback address no one listens on now, for the bot's
// http.listen. Another process could take it before the bot does; on a test
// machine that is rare enough, and the bot then fails to start, loudly.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
