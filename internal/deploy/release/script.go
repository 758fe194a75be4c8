package release

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Script is one phase of a job for one host: a POSIX sh program generated
// from the recipe, run in one session.
type Script struct {
	// Text is the program. Every value in it is single-quoted; nothing in
	// it comes from chat.
	Text string
	// Stdin, when set, follows the program on the script's standard input
	// (the artifact). Only remote hosts take it (see ScriptHost.Remote).
	Stdin io.Reader
	// Done starts the line the script prints last. After it, a host need not
	// wait for the output to close: a daemon started by a restart step may
	// hold it open for as long as it runs.
	Done string
}

// ScriptHost is a Host that runs a whole phase of a job as one Script: one
// SSH session per phase instead of one per command.
type ScriptHost interface {
	// RunScript runs s.Text with /bin/sh and streams its output lines to
	// out (stdout and stderr, merged by the script itself). It returns when
	// the script ended, or soon after its Done line. When ctx ends the
	// script is stopped: a remote host closes the script's standard input,
	// which the script takes as the order to stop its running step, and
	// waits a while for it to end; a local host kills its process group.
	RunScript(ctx context.Context, s Script, out func(line string)) error
	// Remote reports that the script runs on another machine: it reads the
	// artifact from its standard input, watches that input for the bot
	// going away, and runs its steps under timeout(1) so they end even if
	// nobody is left to stop them.
	Remote() bool
}

// ShellQuote returns w as one word for a POSIX shell. Inside single quotes
// nothing is special; a single quote itself ends the quoted part, appears
// backslash-escaped, and a new quoted part begins:
//
//	it's  ->  'it'\''s'
//
// Every word is quoted, even plain ones, so "FOO=bar" or "~" can never be
// read as an assignment or expanded.
func ShellQuote(w string) string {
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// KillAfter is how long a remote step may take to end after it was told to
// stop (SIGTERM from timeout(1)) before it is killed.
const KillAfter = 5 * time.Second

// batchEnv makes programs behave as in a batch job: no pager waiting for a
// key, no git credential prompt waiting for a typist, no colour codes.
const batchEnv = "export PAGER=cat SYSTEMD_PAGER=cat GIT_PAGER=cat GIT_TERMINAL_PROMPT=0 NO_COLOR=1"

// markerPrefix starts every marker line; the job's nonce follows, so no
// line a login shell or a step prints can be taken for one.
const markerPrefix = "@@shipbot-"

// newNonce returns a random token for one job's markers.
func newNonce() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on Linux; a fixed token only weakens
		// the guard against look-alike lines.
		return "0000000000000000"
	}
	return hex.EncodeToString(b)
}

// The prologue every script starts with. It is written once here and read
// by people debugging a host, so it stays plain POSIX sh:
//
//	m        prints a marker: a newline first, so a marker always starts a
//	         line even after output without one (the parser drops the empty
//	         line this makes)
//	c K      true if the step has not failed and no stop was asked for;
//	         remembers K, the index of the command about to run
//	x ARGV   runs a quick layout command in the foreground
//	r ARGV   runs a step command in the background and waits for it, so a
//	         stop (the trap) can interrupt the wait and signal it
//	z SECS   sleeps, interruptibly
//	b / e    begin and end a step; e stops the script after a failure
//	w        (remote) starts the watchdog: EOF on the session's input
//	         means the bot cancelled or is gone, and stops the script
//
// The trap only asks to stop: it signals the running step and lets the
// script reach the end of the step, so what the host did (a release dir
// made, current switched) is always reported.
const prologueFuncs = `stop=0 intr=0 pid= rc=0 k=0 wd=
trap 'stop=1 intr=1; [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null' HUP INT TERM PIPE
trap '[ -z "$wd" ] || kill "$wd" 2>/dev/null' EXIT
m() { printf '\n%s %s\n' "$n" "$*"; }
c() { [ "$rc" = 0 ] && [ "$stop" = 0 ] && k=$1; }
x() { "$@" </dev/null 3<&-; rc=$?; return "$rc"; }
r() { "$@" </dev/null 3<&- & pid=$!; [ "$stop" = 0 ] || kill -TERM "$pid" 2>/dev/null; intr=0; wait "$pid"; rc=$?; while [ "$intr" = 1 ] && kill -0 "$pid" 2>/dev/null; do intr=0; wait "$pid"; rc=$?; done; pid=; return "$rc"; }
z() { sleep "$1" </dev/null 3<&- & pid=$!; [ "$stop" = 0 ] || kill "$pid" 2>/dev/null; wait "$pid"; pid=; }
b() { rc=0 k=0; m begin "$1"; }
e() { m end "$1" "$rc" "$k"; [ "$rc" = 0 ] && [ "$stop" = 0 ] || { m exit 1; exit 1; }; }
w() { ( while read -r _; do :; done <&3; kill -TERM $$ ) >/dev/null 2>&1 & wd=$!; }
`

// script builds one Script. Commands are registered by index so a failing
// one can be named in the error without its words crossing the wire again.
type script struct {
	token  string // markerPrefix + nonce
	remote bool
	// limit is the remote backstop for one command ("0" none): a second
	// more than the step timeout, so the bot's own stop, which says why,
	// normally comes first.
	limit string
	b     strings.Builder
	cmds  [][]string
	// artifact is a file on the bot's machine streamed after the program.
	artifact string
	// input, if set, is streamed after the program instead (a barrier's "go").
	input io.Reader
	// onReady is called when the script reaches its barrier.
	onReady func()
	first   string // the first step, which a script that never started fails
	err     error
	out     Script
}

func newScript(nonce string, remote bool, stepTimeout time.Duration) *script {
	s := &script{token: markerPrefix + nonce, remote: remote, limit: "0"}
	if stepTimeout > 0 {
		s.limit = strconv.Itoa(int(math.Ceil(stepTimeout.Seconds())) + 1)
	}
	s.raw(batchEnv)
	s.raw("exec 2>&1")
	if remote {
		// The session's input stays open on fd 3 for the watchdog (and
		// the artifact); steps read /dev/null.
		s.raw("exec 3<&0 </dev/null")
	} else {
		s.raw("exec </dev/null")
	}
	s.raw("n=" + ShellQuote(s.token))
	s.b.WriteString(prologueFuncs)
	s.raw("m start")
	return s
}

func (s *script) raw(line string) {
	s.b.WriteString(line)
	s.b.WriteByte('\n')
}

// words quotes argv, refusing what no shell word can carry.
func (s *script) words(argv []string) string {
	parts := make([]string, len(argv))
	for i, w := range argv {
		if strings.IndexByte(w, 0) >= 0 && s.err == nil {
			s.err = errors.New("a command word contains a NUL byte")
		}
		parts[i] = ShellQuote(w)
	}
	return strings.Join(parts, " ")
}

func (s *script) register(argv []string) int {
	if (len(argv) == 0 || argv[0] == "") && s.err == nil {
		s.err = errors.New("empty command")
	}
	if len(argv) > 0 && strings.HasPrefix(argv[0], "-") && s.err == nil {
		s.err = fmt.Errorf("command %q starts with '-'", argv[0])
	}
	s.cmds = append(s.cmds, append([]string(nil), argv...))
	return len(s.cmds) - 1
}

func stepID(name string) string { return strings.ReplaceAll(name, " ", "-") }

func (s *script) begin(step string) {
	if s.first == "" {
		s.first = step
	}
	s.raw("b " + stepID(step))
}
func (s *script) end(step string) { s.raw("e " + stepID(step)) }

// builtin runs a quick layout command (mkdir, ln, mv, rm) in the foreground.
func (s *script) builtin(argv ...string) {
	k := s.register(argv)
	s.raw(fmt.Sprintf("c %d && x %s", k, s.words(argv)))
}

// command runs a recipe command (or a long one of ours: cp, git, tar) so
// that a stop interrupts it; remote, under timeout(1) as a backstop for a
// bot that can no longer stop it.
func (s *script) command(argv []string) { s.timed(s.limit, false, argv) }

// timed runs argv under a timeout of limit seconds; locally only if
// always is set (a health attempt), since there the bot bounds steps.
func (s *script) timed(limit string, always bool, argv []string) {
	k := s.register(argv)
	s.raw(fmt.Sprintf("c %d && r %s%s", k, s.timeout(limit, always), s.words(argv)))
}

func (s *script) timeout(limit string, always bool) string {
	if s.remote {
		return fmt.Sprintf("timeout -k %ds %ss ", int(KillAfter.Seconds()), limit)
	}
	if always && limit != "0" {
		// Locally the bot kills the script's process group; --foreground
		// keeps timeout in it.
		return fmt.Sprintf("timeout --foreground %ss ", limit)
	}
	return ""
}

// cd changes the directory the following commands run in.
func (s *script) cd(dir string) {
	k := s.register([]string{"cd", dir})
	s.raw(fmt.Sprintf("c %d && { cd -- %s; rc=$?; }", k, ShellQuote(dir)))
}

func (s *script) finish() {
	s.raw("m exit 0")
	s.raw("exit 0")
	s.out = Script{Text: s.b.String(), Done: s.token + " exit "}
}

// seconds formats d for sleep(1) and timeout(1), which take fractions.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
