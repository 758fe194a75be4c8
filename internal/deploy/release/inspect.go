package release

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Defaults for reads that the recipe leaves unbounded: a chat message is no
// place for megabytes, and /status or /logs must answer promptly.
const (
	defaultLogLines = 100
	defaultLogBytes = 64 << 10
	readTimeout     = 30 * time.Second
)

// readCurrent returns the release current points at on t, "" if there is none.
func readCurrent(ctx context.Context, t *target) (string, error) {
	lines, err := capture(ctx, t, "readlink", "--", t.currentLink())
	var ee *ExitError
	if errors.As(err, &ee) {
		return "", nil // no current yet
	}
	if err != nil {
		return "", err
	}
	if len(lines) == 0 {
		return "", nil
	}
	id := path.Base(strings.TrimSpace(lines[len(lines)-1]))
	if !deploy.ValidName(id) {
		return "", fmt.Errorf("current on %s points at %q, which is not a release", t.name, lines[len(lines)-1])
	}
	return id, nil
}

// listReleases returns the release ids on t, newest first.
func listReleases(ctx context.Context, t *target) ([]string, error) {
	err := t.host.Run(ctx, "", []string{"test", "-d", t.releasesDir()}, func(string) {})
	var ee *ExitError
	if errors.As(err, &ee) {
		return nil, nil // nothing deployed yet
	}
	if err != nil {
		return nil, err
	}
	lines, err := capture(ctx, t, "ls", "-1", "--", t.releasesDir())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, l := range lines {
		if deploy.ValidName(l) {
			ids = append(ids, l)
		}
	}
	newerFirst(ids)
	return ids, nil
}

func (r *Runner) readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := r.Recipe.StepTimeout
	if d <= 0 || d > readTimeout {
		d = readTimeout
	}
	return context.WithTimeout(ctx, d)
}

// Releases lists the releases on the first host, newest first, marking the
// one current points at.
func (r *Runner) Releases(ctx context.Context) ([]deploy.ReleaseInfo, error) {
	if len(r.Hosts) == 0 {
		return nil, errors.New("no hosts configured")
	}
	ctx, cancel := r.readContext(ctx)
	defer cancel()
	targets, err := r.open(ctx, r.Hosts[:1])
	if err != nil {
		return nil, err
	}
	defer closeAll(targets)
	t := targets[0]
	ids, err := listReleases(ctx, t)
	if err != nil {
		return nil, readError(ctx, t.name, "listing "+t.releasesDir(), err)
	}
	cur, err := readCurrent(ctx, t)
	if err != nil {
		return nil, readError(ctx, t.name, "reading "+t.currentLink(), err)
	}
	out := make([]deploy.ReleaseInfo, len(ids))
	for i, id := range ids {
		out[i] = deploy.ReleaseInfo{ID: id, Current: id == cur}
	}
	return out, nil
}

// Status reports what current points at on every host and whether the
// health checks pass (one attempt each). An unreachable host is reported in
// Detail and makes the status unhealthy; it is not an error.
func (r *Runner) Status(ctx context.Context) (deploy.Status, error) {
	if len(r.Hosts) == 0 {
		return deploy.Status{}, errors.New("no hosts configured")
	}
	ctx, cancel := r.readContext(ctx)
	defer cancel()
	targets, errs := r.openEach(ctx, r.Hosts)
	defer closeAll(targets)
	h := r.Recipe.Health
	h.Retries = 1 // one attempt: /status answers now, it does not wait for recovery

	n := len(targets)
	details := make([]string, n)
	currents := make([]string, n)
	healthy := make([]bool, n)
	forEach(n, 0, func(i int) {
		t := targets[i]
		if errs[i] != nil {
			details[i] = openerName(r.Hosts[i], i) + ": unreachable: " + errs[i].Error()
			return
		}
		cur, err := readCurrent(ctx, t)
		if err != nil {
			details[i] = t.name + ": " + err.Error()
			return
		}
		currents[i] = cur
		if cur == "" {
			details[i] = t.name + ": nothing deployed"
			return
		}
		line := t.name + ": current " + cur
		switch {
		case len(h.Command) == 0:
			healthy[i] = true
		default:
			argv := expand(h.Command, r.vars(t, cur, ""))
			var mu sync.Mutex
			var last string
			err := retry(ctx, h, func(ctx context.Context) error {
				return t.host.Run(ctx, t.currentLink(), argv, func(l string) { mu.Lock(); last = l; mu.Unlock() })
			})
			if err != nil {
				mu.Lock()
				line += ", unhealthy: " + err.Error()
				if last != "" {
					line += ": " + last
				}
				mu.Unlock()
			} else {
				healthy[i] = true
				line += ", healthy"
			}
		}
		details[i] = line
	})

	st := deploy.Status{Current: currents[0], Healthy: true, Detail: details}
	for i := range n {
		if !healthy[i] || currents[i] != currents[0] {
			st.Healthy = false
		}
	}
	if n > 1 && !agree(currents) {
		st.Detail = append(st.Detail, "hosts disagree on the current release")
	}
	if h.URL != "" {
		switch {
		case r.Health == nil:
			st.Healthy = false
			st.Detail = append(st.Detail, "http check: not configured in this bot")
		default:
			if err := retry(ctx, h, func(ctx context.Context) error { return r.Health.Check(ctx, h) }); err != nil {
				st.Healthy = false
				st.Detail = append(st.Detail, "http check: unhealthy: "+err.Error())
			} else {
				st.Detail = append(st.Detail, "http check: healthy")
			}
		}
	}
	return st, nil
}

func agree(ids []string) bool {
	for _, id := range ids {
		if id != ids[0] {
			return false
		}
	}
	return true
}

// Logs returns the last lines of the app's log from every host: the output
// of Logs.Command (which may use {{lines}}) or the tail of Logs.File. At
// most MaxLines lines and MaxBytes bytes come back, the newest kept;
// Truncated says something was left out.
func (r *Runner) Logs(ctx context.Context, lines int) (deploy.Logs, error) {
	src := r.Recipe.Logs
	if len(src.Command) == 0 && src.File == "" {
		return deploy.Logs{}, errors.New("no log source configured")
	}
	if len(r.Hosts) == 0 {
		return deploy.Logs{}, errors.New("no hosts configured")
	}
	truncated := false
	if lines <= 0 {
		lines = defaultLogLines
	}
	if src.MaxLines > 0 && lines > src.MaxLines {
		lines, truncated = src.MaxLines, true
	}
	maxBytes := src.MaxBytes
	if maxBytes <= 0 {
		maxBytes = defaultLogBytes
	}
	ctx, cancel := r.readContext(ctx)
	defer cancel()
	targets, err := r.open(ctx, r.Hosts)
	if err != nil {
		return deploy.Logs{}, err
	}
	defer closeAll(targets)

	// Each host gets an equal share of the lines so one chatty host cannot
	// hide the others.
	per := (lines + len(targets) - 1) / len(targets)
	var all []string
	for _, t := range targets {
		vars := r.vars(t, "", "")
		vars["lines"] = strconv.Itoa(per)
		argv := expand(src.Command, vars)
		file := ""
		if len(argv) == 0 {
			// A relative file is relative to the app's base dir; joined
			// here rather than run there, so a base dir that does not exist
			// yet reads as the missing file it is.
			file = expandWord(src.File, vars)
			if !path.IsAbs(file) {
				file = path.Join(t.base, file)
			}
			argv = []string{"tail", "-n", strconv.Itoa(per), "--", file}
		}
		ring := newLineRing(per)
		if err := t.host.Run(ctx, "", argv, ring.add); err != nil {
			if ctx.Err() != nil {
				return deploy.Logs{}, readError(ctx, t.name, "reading logs", ctx.Err())
			}
			return deploy.Logs{}, logsError(t.name, file, err)
		}
		got, dropped := ring.lines()
		truncated = truncated || dropped
		for _, l := range got {
			all = append(all, t.prefix+l)
		}
	}
	if len(all) > lines {
		all, truncated = all[len(all)-lines:], true
	}
	kept, cut := capBytes(all, maxBytes)
	return deploy.Logs{Lines: kept, Truncated: truncated || cut}, nil
}

// logsError says why reading logs on host failed in words a person can act
// on: the usual reason is a log file the app has not written yet.
func logsError(host, file string, err error) error {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("logs on %s: %s", host, errDetail(err))
	}
	switch {
	case file != "" && strings.Contains(ee.Output, "No such file"):
		return deploy.Errorf(deploy.CodeMissing, err, "no log file at %s on %s yet: the app has not written it (or logs.file is wrong)", file, host)
	case strings.Contains(ee.Output, "No space left"):
		return deploy.Errorf(deploy.CodeDiskFull, err, "reading logs on %s: no space left on device", host)
	case file != "":
		return deploy.Errorf(deploy.CodeFailed, err, "cannot read the log file %s on %s: %s", file, host, lastLine(ee.Output))
	}
	return deploy.Errorf(deploy.CodeFailed, err, "the logs command failed on %s (exit %d): %s", host, ee.Code, lastLine(ee.Output))
}

func lastLine(out string) string {
	out = strings.TrimRight(out, "\n")
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if out == "" {
		return "no output"
	}
	return out
}

// capBytes keeps the newest lines whose total size (with newlines) fits limit.
func capBytes(lines []string, limit int) ([]string, bool) {
	total := 0
	for i := len(lines) - 1; i >= 0; i-- {
		size := len(lines[i]) + 1
		if total+size <= limit {
			total += size
			continue
		}
		if i < len(lines)-1 {
			return lines[i+1:], true
		}
		// Even the newest line alone is too big: keep its end, cut at a rune start.
		l := lines[i]
		start := len(l) - limit + 1
		for start < len(l) && !utf8.RuneStart(l[start]) {
			start++
		}
		return []string{l[start:]}, true
	}
	return lines, false
}

// lineRing keeps the last n lines it is given.
type lineRing struct {
	mu      sync.Mutex
	buf     []string
	next    int
	full    bool
	dropped bool
}

func newLineRing(n int) *lineRing { return &lineRing{buf: make([]string, n)} }

func (r *lineRing) add(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		r.dropped = true
	}
	r.buf[r.next] = l
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *lineRing) lines() ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...), false
	}
	return append(append([]string(nil), r.buf[r.next:]...), r.buf[:r.next]...), r.dropped
}
