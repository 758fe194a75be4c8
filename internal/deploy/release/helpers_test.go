package release_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/local"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// dirHost is a local host whose app lives in its own directory, so one test
// machine can stand in for several servers.
type dirHost struct {
	*local.Host
	name, base string
}

func (h *dirHost) Name() string                               { return h.name }
func (h *dirHost) BasePath() string                           { return h.base }
func (h *dirHost) Open(context.Context) (release.Host, error) { return h, nil }

// faultHost runs commands on inner but fails those fail picks.
type faultHost struct {
	release.Host
	fail func(argv []string) error
}

func (h *faultHost) Run(ctx context.Context, dir string, argv []string, out func(string)) error {
	if h.fail != nil {
		if err := h.fail(argv); err != nil {
			return err
		}
	}
	return h.Host.Run(ctx, dir, argv, out)
}

func (h *faultHost) BasePath() string                           { return h.Host.(release.BasePather).BasePath() }
func (h *faultHost) Open(context.Context) (release.Host, error) { return h, nil }

// recorder is a deploy.Progress that keeps everything.
type recorder struct {
	mu    sync.Mutex
	steps []stepEvent
	lines []string
}

type stepEvent struct {
	name   string
	state  deploy.StepState
	detail string
}

func (r *recorder) Step(name string, s deploy.StepState, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, stepEvent{name, s, detail})
}

func (r *recorder) Output(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
}

// last returns the last event of step name.
// has reports whether step name was ever reported in state with a detail
// containing every one of parts.
func (r *recorder) has(name string, state deploy.StepState, parts ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.steps {
		if e.name != name || e.state != state {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(e.detail, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func (r *recorder) last(name string) (stepEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.steps) - 1; i >= 0; i-- {
		if r.steps[i].name == name {
			return r.steps[i], true
		}
	}
	return stepEvent{}, false
}

func (r *recorder) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// fixture is a source dir plus several host dirs.
type fixture struct {
	t      *testing.T
	src    string
	bases  []string
	hosts  []*dirHost
	runner *release.Runner
}

// The app: build.sh writes VERSION and, unless the ref is bad-health, the
// file health.sh wants. A host whose base holds "fail-build" fails its build.
const buildScript = `set -eu
if [ -e ../../fail-build ]; then echo "build refused on this host" >&2; exit 3; fi
printf '%s\n' "$1" > VERSION
if [ "${2:-}" != bad-health ]; then touch healthy; fi
echo "built $1"
`

const healthScript = `test -f "$(dirname "$0")/healthy" || { echo "not healthy"; exit 1; }`

func newFixture(t *testing.T, hosts int) *fixture {
	t.Helper()
	f := &fixture{t: t, src: t.TempDir()}
	write(t, filepath.Join(f.src, "build.sh"), buildScript)
	write(t, filepath.Join(f.src, "health.sh"), healthScript)
	write(t, filepath.Join(f.src, "log", "from-repo"), "replaced by the shared dir\n")
	var openers []release.Opener
	for i := range hosts {
		h := &dirHost{Host: local.NewHost(), name: "h" + string(rune('1'+i)), base: t.TempDir()}
		f.hosts = append(f.hosts, h)
		f.bases = append(f.bases, h.base)
		openers = append(openers, h)
	}
	f.runner = &release.Runner{
		Recipe: deploy.Recipe{
			App: "app", Env: "test",
			Path:         "/unused", // every host has its own base
			KeepReleases: 5,
			Fetch:        deploy.Fetch{CopyFrom: f.src, DefaultRef: "main"},
			Shared:       []string{"log/", "config.env"},
			Build:        []deploy.Command{{"sh", "build.sh", "{{release}}", "{{ref}}"}},
			Restart:      []deploy.Command{{"sh", "-c", "readlink {{current_path}} >> {{path}}/restarts"}},
			StepTimeout:  20 * time.Second,
			Health: deploy.Health{
				Command:  deploy.Command{"sh", "{{current_path}}/health.sh"},
				Retries:  2,
				Interval: 10 * time.Millisecond,
				Timeout:  5 * time.Second,
			},
		},
		Hosts: openers,
	}
	return f
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) deploy(id, prev, ref string) (deploy.Result, *recorder, error) {
	rec := &recorder{}
	res, err := f.runner.Deploy(context.Background(), deploy.DeployRequest{App: "app", Env: "test", Release: id, Previous: prev, Ref: ref}, rec)
	return res, rec, err
}

func (f *fixture) mustDeploy(id, prev string) {
	f.t.Helper()
	res, rec, err := f.deploy(id, prev, "")
	if err != nil || res.RolledBack || res.Release != id {
		f.t.Fatalf("deploy %s: %+v, %v\noutput:\n%s", id, res, err, rec.output())
	}
}

// current returns where base/current points, "" if it does not exist.
func current(t *testing.T, base string) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(base, "current"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) wantCurrent(id string) {
	f.t.Helper()
	for _, b := range f.bases {
		if got := current(f.t, b); got != "releases/"+id {
			f.t.Fatalf("%s/current -> %q, want releases/%s", b, got, id)
		}
	}
}

func releasesOn(t *testing.T, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(base, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
