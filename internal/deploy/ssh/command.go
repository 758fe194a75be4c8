package ssh

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/deploy/release"
)

// Quote returns w as one word for a POSIX shell. Inside single quotes
// nothing is special; a single quote itself ends the quoted part, appears
// backslash-escaped, and a new quoted part begins:
//
//	it's  ->  'it'\''s'
//
// Every word is quoted, even plain ones, so "FOO=bar" or "~" can never be
// read as an assignment or expanded.
func Quote(w string) string { return release.ShellQuote(w) }

// batchEnv makes programs that see the step's PTY behave as in a batch job:
// no pager waiting for a key, no git credential prompt waiting for a typist,
// no colour codes in chat output.
const batchEnv = "export PAGER=cat SYSTEMD_PAGER=cat GIT_PAGER=cat GIT_TERMINAL_PROMPT=0 NO_COLOR=1; "

// killAfter (a count of seconds) is how long the remote timeout waits after its first signal
// before it sends SIGKILL, so a step that ignores SIGTERM or SIGHUP still ends.
const killAfter = release.KillAfter / time.Second

// remoteCommand is the command line sent to the remote login shell for argv
// run in dir. The step runs under coreutils timeout: with limit > 0 it ends
// on the host even if the connection to the bot is gone, and in any case
// timeout forwards the PTY's hangup to the step and kills it killAfter
// seconds later if it did not exit. stdin is /dev/null so a step that reads
// input gets EOF instead of waiting on a terminal nobody types into.
func remoteCommand(dir string, argv []string, limit time.Duration) (string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", errors.New("empty command")
	}
	if strings.HasPrefix(argv[0], "-") {
		return "", fmt.Errorf("command %q starts with '-'", argv[0])
	}
	for _, w := range append([]string{dir}, argv...) {
		if strings.IndexByte(w, 0) >= 0 {
			return "", errors.New("a command word contains a NUL byte")
		}
	}
	var b strings.Builder
	b.WriteString(batchEnv)
	if dir != "" {
		b.WriteString("cd -- ")
		b.WriteString(Quote(dir))
		b.WriteString(" && ")
	}
	fmt.Fprintf(&b, "exec timeout -k %ds %ds", killAfter, remoteSeconds(limit))
	for _, w := range argv {
		b.WriteByte(' ')
		b.WriteString(Quote(w))
	}
	b.WriteString(" </dev/null")
	return b.String(), nil
}

// remoteSeconds is the remote timeout for a step the bot will cancel after
// limit: a second longer, so that normally the bot's own cancel (which also
// reports why) comes first and the remote timeout is the backstop for a lost
// connection. 0 (no limit) disables GNU timeout's timer but keeps its signal
// forwarding and kill-after.
func remoteSeconds(limit time.Duration) int {
	if limit <= 0 {
		return 0
	}
	return int(math.Ceil(limit.Seconds())) + 1
}
