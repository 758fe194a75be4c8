package deploytest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Driver is a scriptable deploy.Driver that keeps releases in memory.
type Driver struct {
	mu       sync.Mutex
	releases []string // oldest first
	current  string

	// DeployErr fails Deploy before the switch; Unhealthy makes it roll back.
	DeployErr error
	Unhealthy bool
	// Block makes Deploy wait until ctx ends or Unblock is closed.
	Block   bool
	Unblock chan struct{}
	// ExtraOutput is how many more output lines a Deploy prints.
	ExtraOutput int
	// Started is closed (once) when a Deploy begins.
	Started chan struct{}
	// ReadErr fails Releases, Status and Logs (a host that does not answer).
	ReadErr error
	// LogLines replaces what Logs returns when not nil.
	LogLines []string

	Deploys   atomic.Int32
	Rollbacks atomic.Int32
	startOnce sync.Once
}

var _ deploy.Driver = (*Driver)(nil)

// NewDriver returns a driver with no releases.
func NewDriver() *Driver {
	return &Driver{Unblock: make(chan struct{}), Started: make(chan struct{})}
}

// Calls is how many Deploy and Rollback calls were made.
func (d *Driver) Calls() int { return int(d.Deploys.Load() + d.Rollbacks.Load()) }

// Current is the live release.
func (d *Driver) Current() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

func (d *Driver) Plan(ctx context.Context, req deploy.DeployRequest) (deploy.Plan, error) {
	return deploy.Plan{Steps: []string{"fetch", "build", "switch", "health"}, From: req.Previous, To: req.Release}, nil
}

func (d *Driver) Deploy(ctx context.Context, req deploy.DeployRequest, p deploy.Progress) (deploy.Result, error) {
	d.Deploys.Add(1)
	d.startOnce.Do(func() { close(d.Started) })
	p.Step("build", deploy.StepRunning, "")
	p.Output("building " + req.Release + " from " + req.Ref)
	for i := range d.ExtraOutput {
		p.Output(fmt.Sprintf("compiling unit %d of %d", i+1, d.ExtraOutput))
	}
	if d.Block {
		select {
		case <-ctx.Done():
			p.Step("build", deploy.StepFailed, "cancelled")
			return deploy.Result{}, ctx.Err()
		case <-d.Unblock:
		}
	}
	if d.DeployErr != nil {
		p.Step("build", deploy.StepFailed, d.DeployErr.Error())
		return deploy.Result{}, d.DeployErr
	}
	p.Step("build", deploy.StepDone, "")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.releases = append(d.releases, req.Release)
	if d.Unhealthy {
		p.Step("health", deploy.StepFailed, "503")
		return deploy.Result{Release: d.current, RolledBack: true, Message: "health check failed: 503"}, nil
	}
	d.current = req.Release
	p.Step("health", deploy.StepDone, "")
	return deploy.Result{Release: req.Release}, nil
}

func (d *Driver) Rollback(ctx context.Context, req deploy.RollbackRequest, p deploy.Progress) (deploy.Result, error) {
	d.Rollbacks.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.releases {
		if r == req.To {
			d.current = r
			p.Step("switch", deploy.StepDone, "")
			return deploy.Result{Release: r}, nil
		}
	}
	return deploy.Result{}, fmt.Errorf("release %s not found", req.To)
}

func (d *Driver) Releases(ctx context.Context) ([]deploy.ReleaseInfo, error) {
	if d.ReadErr != nil {
		return nil, d.ReadErr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := append([]string(nil), d.releases...)
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	out := make([]deploy.ReleaseInfo, 0, len(ids))
	for _, id := range ids {
		out = append(out, deploy.ReleaseInfo{ID: id, Current: id == d.current})
	}
	return out, nil
}

func (d *Driver) Status(ctx context.Context) (deploy.Status, error) {
	if d.ReadErr != nil {
		return deploy.Status{}, d.ReadErr
	}
	return deploy.Status{Current: d.Current(), Healthy: !d.Unhealthy}, nil
}

func (d *Driver) Logs(ctx context.Context, lines int) (deploy.Logs, error) {
	if d.ReadErr != nil {
		return deploy.Logs{}, d.ReadErr
	}
	if d.LogLines != nil {
		return deploy.Logs{Lines: append([]string(nil), d.LogLines...)}, nil
	}
	return deploy.Logs{Lines: []string{"line 1", "password=hunter22 leaked"}, Truncated: lines < 2}, nil
}
