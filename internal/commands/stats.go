package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/notify"
)

// Insights is what /stats needs: a report of a query, as figures or as a
// chat message with its chart (an *insights.Service).
type Insights interface {
	Stats(ctx context.Context, q insights.Query) (*insights.Report, error)
	Message(ctx context.Context, q insights.Query, title string) (notify.Message, *insights.Report, error)
}

var _ Insights = (*insights.Service)(nil)

// parseStats reads /stats [APP] [ENV] [7d|30d|90d]: the window is the
// last word when it ends in "d" and starts with a digit; c.For holds it.
func parseStats(c *Command, args []string, usageText string) error {
	usage := perr("usage: %s", usageText)
	days := 7
	if n := len(args); n > 0 && strings.HasSuffix(args[n-1], "d") && args[n-1][0] >= '0' && args[n-1][0] <= '9' {
		w, err := insights.ParseWindow(args[n-1])
		if err != nil {
			return perr("%s", err.Error())
		}
		days, args = w, args[:n-1]
	}
	if len(args) > 2 {
		return usage
	}
	if len(args) >= 1 {
		if !deploy.ValidName(args[0]) {
			return perr("app %q is not a valid name (lowercase letters, digits, . _ -)", clip(args[0]))
		}
		c.App = args[0]
	}
	if len(args) == 2 {
		if !deploy.ValidName(args[1]) {
			return perr("env %q is not a valid name (lowercase letters, digits, . _ -)", clip(args[1]))
		}
		c.Env = args[1]
	}
	c.For = time.Duration(days) * 24 * time.Hour
	return nil
}

// statsReport answers /stats with the figures of every app/env the asker
// may see the status of.
func (d *Dispatcher) statsReport(ctx context.Context, c *call) Reply {
	if d.stats == nil {
		return d.deny(ctx, c, "unavailable", "delivery stats are not available in this shipbot")
	}
	app, env := c.cmd.App, c.cmd.Env
	if app != "" {
		envs, ok := d.cat()[app]
		if !ok {
			return d.deny(ctx, c, "unknown app", fmt.Sprintf("unknown app %q; see /apps", app))
		}
		if _, ok := envs[env]; env != "" && !ok {
			return d.deny(ctx, c, "unknown env", fmt.Sprintf("unknown env %q for %s; see /apps", env, app))
		}
	}
	if env != "" {
		if r, ok := d.need(ctx, c, "status"); !ok {
			return r
		}
	}
	q := insights.Query{App: app, Env: env, Days: int(c.cmd.For / (24 * time.Hour)),
		Allowed: func(app, env string) bool { return c.actor.Can("status", app, env) }}
	if c.req.Via != "" {
		// A door without a chat (the API) gets the figures in the Reply;
		// no chart is drawn for it.
		r, err := d.stats.Stats(ctx, q)
		if err != nil {
			return d.fail(ctx, c, err)
		}
		reply := d.read(ctx, c, insights.Render(r, "Delivery: "+q.Scope()))
		if !reply.Refused {
			reply.Stats = r
		}
		return reply
	}
	m, _, err := d.stats.Message(ctx, q, "")
	if err != nil {
		return d.fail(ctx, c, err)
	}
	return d.read(ctx, c, m)
}
