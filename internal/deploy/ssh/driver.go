// Package ssh is the deploy driver for Linux servers reached over SSH: the
// release runner (releases/<id>, shared/, an atomically switched current)
// over Hosts that run each phase of a job as one script in one SSH session,
// every value quoted for the remote shell, with host keys pinned in a
// known_hosts file.
package ssh

import (
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// Driver deploys one (app, env) to its hosts.
type Driver struct {
	// The runner does all the work; the driver only builds it with the
	// right hosts.
	*release.Runner
}

var _ deploy.Driver = (*Driver)(nil)

// New returns a driver that runs r on hosts, at most parallel hosts at
// once in each phase (0: all). health checks r.Health.URL from the
// bot; a recipe with a URL and no checker is refused at deploy time.
func New(r deploy.Recipe, hosts []HostConfig, parallel int, health release.HealthChecker) *Driver {
	openers := make([]release.Opener, len(hosts))
	for i, h := range hosts {
		openers[i] = NewOpener(h)
	}
	return &Driver{Runner: &release.Runner{
		Recipe:   r,
		Hosts:    openers,
		Parallel: parallel,
		Health:   health,
	}}
}
