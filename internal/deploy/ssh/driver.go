// Package ssh is the deploy driver for Linux servers reached over SSH: the
// release runner (releases/<id>, shared/, an atomically switched current)
// over Hosts that run each command in an SSH session, quoted for the remote
// shell, with host keys pinned in a known_hosts file.
package ssh

import (
	"context"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// Driver deploys one (app, env) to its hosts.
type Driver struct {
	runner *release.Runner
}

var _ deploy.Driver = (*Driver)(nil)

// New returns a driver that runs r on hosts, preparing and restarting at
// most parallel hosts at once (0: all). health checks r.Health.URL from the
// bot; a recipe with a URL and no checker is refused at deploy time.
func New(r deploy.Recipe, hosts []HostConfig, parallel int, health release.HealthChecker) *Driver {
	openers := make([]release.Opener, len(hosts))
	for i, h := range hosts {
		openers[i] = NewOpener(h)
	}
	return &Driver{runner: &release.Runner{
		Recipe:   r,
		Hosts:    openers,
		Parallel: parallel,
		Health:   health,
	}}
}

func (d *Driver) Plan(_ context.Context, req deploy.DeployRequest) (deploy.Plan, error) {
	return d.runner.Plan(req), nil
}

func (d *Driver) Deploy(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	return d.runner.Deploy(ctx, req, p)
}

func (d *Driver) Rollback(ctx context.Context, req deploy.RollbackRequest, p deploy.Progress) (deploy.Result, error) {
	return d.runner.Rollback(ctx, req, p)
}

func (d *Driver) Releases(ctx context.Context) ([]deploy.ReleaseInfo, error) {
	return d.runner.Releases(ctx)
}

func (d *Driver) Status(ctx context.Context) (deploy.Status, error) {
	return d.runner.Status(ctx)
}

func (d *Driver) Logs(ctx context.Context, lines int) (deploy.Logs, error) {
	return d.runner.Logs(ctx, lines)
}
