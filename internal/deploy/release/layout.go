package release

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/shipbot/shipbot/internal/deploy"
)

// BasePather is implemented by a Host whose releases live under a base
// directory of its own instead of Recipe.Path: several instances of one app
// on one machine, or tests that give each "host" its own temp dir.
type BasePather interface {
	BasePath() string
}

// Namer is implemented by an Opener that knows its host's name before the
// host is opened, so Plan can list hosts without connecting to them.
type Namer interface {
	Name() string
}

// target is one opened host and where the app lives on it. Paths are POSIX
// paths on that host, hence package path and not filepath.
type target struct {
	host   Host
	remote bool // the host runs scripts elsewhere (see ScriptHost.Remote)
	name   string
	prefix string // "[web1] " when there are several hosts, so output lines can be told apart
	base   string

	// before is the release current pointed at when the job started on this
	// host; a failed switch puts it back.
	before string
	// created is set once this job made the release dir, so cleanup never
	// removes a directory some earlier job left.
	created bool
	// switchTried is set once a switch of this host started: its outcome is
	// unknown if the script was interrupted, so undo treats it as switched.
	switchTried bool
	// switched is set once the host reported its switch done, restartBegun
	// once its restart started: undoing then needs a restart too.
	switched, restartBegun bool
	// releases are the release ids the host had when the job started.
	releases []string
}

func (t *target) releasesDir() string         { return path.Join(t.base, "releases") }
func (t *target) releaseDir(id string) string { return path.Join(t.base, "releases", id) }
func (t *target) sharedDir() string           { return path.Join(t.base, "shared") }
func (t *target) currentLink() string         { return path.Join(t.base, "current") }

// checkBase refuses base paths that would make rm -rf under them dangerous or
// their meaning depend on some remote working directory.
func checkBase(base string) error {
	switch {
	case base == "":
		return errors.New("recipe has no path")
	case !path.IsAbs(base):
		return fmt.Errorf("path %q is not absolute", base)
	case path.Clean(base) != base:
		return fmt.Errorf("path %q is not clean (no trailing '/', '.', '..' or '//')", base)
	case base == "/":
		return errors.New("path must not be /")
	}
	return nil
}

// vars are the template variables for commands run on t.
func (r *Runner) vars(t *target, release, ref string) map[string]string {
	v := map[string]string{
		"app":          r.Recipe.App,
		"env":          r.Recipe.Env,
		"release":      release,
		"release_path": "",
		"path":         t.base,
		"shared_path":  t.sharedDir(),
		"current_path": t.currentLink(),
		"ref":          ref,
	}
	if release != "" {
		v["release_path"] = t.releaseDir(release)
	}
	return v
}

// expand replaces {{name}} inside each word for the names in vars. Unknown
// {{...}} stays as written because commands legitimately contain Go or
// Docker templates ("docker ps --format {{.Names}}"). Substituted values are
// not expanded again, so a value can never inject another variable.
func expand(argv []string, vars map[string]string) []string {
	out := make([]string, len(argv))
	for i, w := range argv {
		out[i] = expandWord(w, vars)
	}
	return out
}

func expandWord(w string, vars map[string]string) string {
	if !strings.Contains(w, "{{") {
		return w
	}
	var b strings.Builder
	for {
		open := strings.Index(w, "{{")
		if open < 0 {
			b.WriteString(w)
			return b.String()
		}
		end := strings.Index(w[open+2:], "}}")
		if end < 0 {
			b.WriteString(w)
			return b.String()
		}
		name := w[open+2 : open+2+end]
		b.WriteString(w[:open])
		if v, ok := vars[strings.TrimSpace(name)]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(w[open : open+2+end+2])
		}
		w = w[open+2+end+2:]
	}
}

func expandAll(cmds []deploy.Command, vars map[string]string) [][]string {
	out := make([][]string, 0, len(cmds))
	for _, c := range cmds {
		if len(c) > 0 {
			out = append(out, expand(c, vars))
		}
	}
	return out
}

// sharedEntry checks one Recipe.Shared entry: a path relative to shared/ and
// to the release dir; a trailing "/" marks a directory, created if missing.
func sharedEntry(s string) (rel string, isDir bool, err error) {
	isDir = strings.HasSuffix(s, "/")
	rel = path.Clean(s)
	if s == "" || path.IsAbs(s) || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(rel, "-") {
		return "", false, fmt.Errorf("shared entry %q must be a relative path inside the release", s)
	}
	return rel, isDir, nil
}

// newerFirst orders release ids newest first. Ids are compared naturally
// (digit runs as numbers) so both timestamps and counters ("r9" < "r10")
// sort in creation order.
func newerFirst(ids []string) {
	// insertion sort keeps this dependency-free and ids are few.
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && naturalLess(ids[j-1], ids[j]); j-- {
			ids[j-1], ids[j] = ids[j], ids[j-1]
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func naturalLess(a, b string) bool {
	x, y := a, b
	for x != "" && y != "" {
		if isDigit(x[0]) && isDigit(y[0]) {
			i, j := 0, 0
			for i < len(x) && isDigit(x[i]) {
				i++
			}
			for j < len(y) && isDigit(y[j]) {
				j++
			}
			nx, ny := strings.TrimLeft(x[:i], "0"), strings.TrimLeft(y[:j], "0")
			if len(nx) != len(ny) {
				return len(nx) < len(ny)
			}
			if nx != ny {
				return nx < ny
			}
			x, y = x[i:], y[j:]
			continue
		}
		if x[0] != y[0] {
			return x[0] < y[0]
		}
		x, y = x[1:], y[1:]
	}
	if len(x) != len(y) {
		return len(x) < len(y)
	}
	return a < b
}

// forEach calls fn(i) for i in [0, n) with at most limit calls at once
// (limit <= 0: all at once) and returns when all have returned.
func forEach(n, limit int, fn func(i int)) {
	if limit <= 0 || limit > n {
		limit = n
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// open opens the given hosts in parallel; on any failure it closes the ones
// that opened and returns the first error.
func (r *Runner) open(ctx context.Context, openers []Opener) ([]*target, error) {
	if len(openers) == 0 {
		return nil, errors.New("no hosts configured")
	}
	targets, errs := r.openEach(ctx, openers)
	for i, err := range errs {
		if err != nil {
			closeAll(targets)
			return nil, fmt.Errorf("open %s: %w", openerName(openers[i], i), err)
		}
	}
	return targets, nil
}

// openEach opens every host, keeping going past failures; targets[i] is nil
// where errs[i] is not.
func (r *Runner) openEach(ctx context.Context, openers []Opener) ([]*target, []error) {
	targets := make([]*target, len(openers))
	errs := make([]error, len(openers))
	forEach(len(openers), r.Parallel, func(i int) {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			return
		}
		h, err := openers[i].Open(ctx)
		if err != nil {
			errs[i] = err
			return
		}
		base := r.Recipe.Path
		if bp, ok := h.(BasePather); ok {
			base = bp.BasePath()
		}
		if err := checkBase(base); err != nil {
			_ = h.Close()
			errs[i] = err
			return
		}
		t := &target{host: h, name: h.Name(), base: base}
		if sh, ok := h.(ScriptHost); ok {
			t.remote = sh.Remote()
		}
		if len(openers) > 1 {
			t.prefix = "[" + t.name + "] "
		}
		targets[i] = t
	})
	return targets, errs
}

func closeAll(targets []*target) {
	for _, t := range targets {
		if t != nil {
			_ = t.host.Close()
		}
	}
}

func openerName(o Opener, i int) string {
	if n, ok := o.(Namer); ok {
		return n.Name()
	}
	return fmt.Sprintf("host%d", i+1)
}
