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
	targets, err := r.open(ctx, r.Hosts)
	if err != nil {
		return err
	}
	defer closeAll(targets)
	cur, err := readCurrent(ctx, targets[0])
	if err != nil {
		return err
	}
	if cur == "" {
		return errors.New("no current release to restart")
	}
	if r.Recipe.Health.URL != "" && r.Health == nil {
		return errors.New("the recipe has a health URL but no checker")
	}
	j := &job{r: r, ctx: ctx, p: p, steps: newTracker(p, r.now()), targets: targets, release: cur}
	if err := j.restartAll(ctx); err != nil {
		return fmt.Errorf("restart after restore: %w", err)
	}
	if err := j.healthAll(ctx, StepHealth); err != nil {
		return fmt.Errorf("health check after restore: %w", err)
	}
	return nil
}
