// Package local is the deploy driver for this machine: the release runner
// (releases/<id>, shared/, an atomically switched current) over a Host that
// execs commands locally. It serves the demo and single-box installs.
package local

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// Options tune a Driver; the zero value is usable.
type Options struct {
	// Health checks Recipe.Health.URL from the bot (see httpcheck). A recipe
	// with a URL and no checker is refused at deploy time.
	Health release.HealthChecker
	// Parallel is passed to the runner; with one host it changes nothing.
	Parallel int
	// MaxLine caps one output line in bytes (0: 8 KiB).
	MaxLine int
	// Env is added to the minimal environment commands get ("KEY=value");
	// the bot's own environment, which holds its secrets, is not passed on.
	Env []string
	// Now is the clock for step durations (nil: time.Now).
	Now func() time.Time
}

// Driver deploys one (app, env) on this machine.
type Driver struct {
	// The runner does all the work; the driver only builds it with the
	// right hosts.
	*release.Runner
}

var _ deploy.Driver = (*Driver)(nil)

// New returns a driver for r. Relative paths in r (path, fetch copy or local
// git repo, log file) are made absolute against the working directory now,
// so commands run in other directories still find them.
func New(r deploy.Recipe, opts Options) *Driver {
	r.Path = absolute(r.Path)
	r.Fetch.CopyFrom = absolute(r.Fetch.CopyFrom)
	if !strings.Contains(r.Fetch.GitRepo, ":") {
		r.Fetch.GitRepo = absolute(r.Fetch.GitRepo)
	}
	if !strings.HasPrefix(r.Logs.File, "{{") {
		r.Logs.File = absolute(r.Logs.File)
	}
	return &Driver{Runner: &release.Runner{
		Recipe:   r,
		Hosts:    []release.Opener{&Host{MaxLine: opts.MaxLine, Env: opts.Env}},
		Parallel: opts.Parallel,
		Health:   opts.Health,
		Now:      opts.Now,
	}}
}

// absolute resolves p against the working directory; "" stays "", and if the
// working directory is unknown p stays relative and the runner refuses it.
func absolute(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// Recipe is the recipe the driver runs, with paths made absolute.
func (d *Driver) Recipe() deploy.Recipe { return d.Runner.Recipe }
