package release

import (
	"context"
	"errors"
	"fmt"

	"github.com/shipbot/shipbot/internal/deploy"
)

// RestartCurrent restarts the release current points at on every host and
// health-checks it, as a deploy does after its switch. A restore uses it
// once files and databases are back.
func (r *Runner) RestartCurrent(ctx context.Context, p deploy.Progress) error {
	if p == nil {
		p = discard{}
	}
	if r.Recipe.Health.URL != "" && r.Health == nil {
		return errors.New("the recipe has a health URL but no checker")
	}
	targets, err := r.open(ctx, r.Hosts)
	if err != nil {
		return err
	}
	defer closeAll(targets)
	if err := checkScriptHosts(targets); err != nil {
		return err
	}
	j := r.newJob(ctx, p, targets, "")
	t := targets[0]
	if err := j.runScript(ctx, t, j.checkScript(t, ""), false); err != nil {
		return err
	}
	if t.before == "" {
		return errors.New("no current release to restart")
	}
	j.release = t.before
	n := len(targets)
	errs := make([]error, n)
	forEach(n, r.Parallel, func(i int) {
		errs[i] = j.runScript(ctx, targets[i], j.liveScript(targets[i], liveOpts{restart: true, health: true}), true)
	})
	if err := joinErrs(errs...); err != nil {
		if failedIn(err, StepRestart) {
			return fmt.Errorf("restart after restore: %w", err)
		}
		return fmt.Errorf("health check after restore: %w", err)
	}
	if err := j.httpHealth(ctx, StepHealth); err != nil {
		return fmt.Errorf("health check after restore: %w", err)
	}
	return nil
}
