package commands

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

func (d *Dispatcher) apps(ctx context.Context, c *call) Reply {
	locks, err := d.store.Locks(ctx)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	lockOf := map[string]deploy.Lock{}
	for _, l := range locks {
		lockOf[l.App+"/"+l.Env] = l
	}
	m := notify.Message{Title: "Apps"}
	for _, app := range sortedKeys(d.cat()) {
		for _, env := range sortedKeys(d.cat()[app]) {
			if !c.actor.Can(PermView, app, env) {
				continue
			}
			info := d.cat()[app][env]
			cur := d.lastKnownCurrent(ctx, app, env)
			line := fmt.Sprintf("%s/%s  driver=%s  current=%s", app, env, info.Driver, orNone(cur))
			if info.Approval.Required {
				line += "  approval=required"
			}
			if l, ok := lockOf[app+"/"+env]; ok {
				line += fmt.Sprintf("  LOCKED by %s: %s", l.Owner, l.Reason)
			}
			m.Code = append(m.Code, line)
		}
	}
	return d.read(ctx, c, m)
}

// lastKnownCurrent is the release the last finished job left live, from the
// database, so /apps does not connect to every server.
func (d *Dispatcher) lastKnownCurrent(ctx context.Context, app, env string) string {
	// The newest jobs may be backups or stops, which say nothing of it.
	js, err := d.store.Jobs(ctx, deploy.JobFilter{App: app, Env: env,
		States: []deploy.State{deploy.Succeeded, deploy.RolledBack}, Limit: 20})
	if err != nil {
		return ""
	}
	for _, j := range js {
		if r := j.LeftLive(); r != "" {
			return r
		}
	}
	return ""
}

func (d *Dispatcher) releases(ctx context.Context, c *call) Reply {
	rs, err := d.engine.Releases(ctx, c.cmd.App, c.cmd.Env)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	m := notify.Message{Title: fmt.Sprintf("Releases of %s/%s", c.cmd.App, c.cmd.Env)}
	live := false
	for _, r := range rs {
		// Exactly one release is live: the first the target calls current
		// (hosts that disagree show up in /status). "active" only means a
		// release went live once; the others say superseded.
		current := r.Current && !live
		live = live || current
		mark, state := " ", "(no record)"
		if current {
			mark = "*"
		}
		if r.Record != nil {
			state = string(r.Record.State)
			switch {
			case current:
				state = "live"
			case r.Record.State == deploy.ReleaseActive:
				state = "superseded"
			}
		} else if current {
			state = "live (no record)"
		}
		line := mark + " " + r.ID
		if r.Record != nil {
			line += fmt.Sprintf("  ref=%s  by=%s  %s", orNone(r.Record.Ref), r.Record.By,
				r.Record.Created.UTC().Format("2006-01-02 15:04"))
		}
		m.Code = append(m.Code, line+"  "+state)
	}
	if len(rs) == 0 {
		m.Text = "no releases yet"
	}
	return d.read(ctx, c, m)
}

func (d *Dispatcher) backups(ctx context.Context, c *call) Reply {
	bs, err := d.engine.Backups(ctx, c.cmd.App, c.cmd.Env)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	m := notify.Message{Title: fmt.Sprintf("Backups of %s/%s", c.cmd.App, c.cmd.Env)}
	shown := 0
	for _, b := range bs {
		if b.State == deploy.BackupPruned {
			continue
		}
		if shown++; shown > 30 {
			m.Text = "(older backups not shown)"
			break
		}
		line := fmt.Sprintf("%s  %s  %s  %s by %s  %s", b.ID, b.Created.UTC().Format("2006-01-02 15:04"),
			deploy.FormatSize(b.Size()), b.Reason, b.By, b.State)
		switch {
		case b.DrillFailed():
			// A failed drill is news: it says the backup may not restore.
			line += "  drill FAILED " + b.Verified.UTC().Format("2006-01-02") + ": " + clipLine(strings.TrimPrefix(b.Drill, deploy.DrillFailedPrefix), 80)
		case !b.Verified.IsZero():
			line += "  drill " + b.Verified.UTC().Format("2006-01-02")
		}
		if b.State == deploy.BackupFailed && b.Error != "" {
			line += ": " + clipLine(b.Error, 80)
		}
		m.Code = append(m.Code, line)
	}
	if shown == 0 {
		m.Text = "no backups yet; take one with /backup " + c.cmd.App + " " + c.cmd.Env
	}
	return d.read(ctx, c, m)
}

func clipLine(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func (d *Dispatcher) status(ctx context.Context, c *call) Reply {
	st, err := d.engine.Status(ctx, c.cmd.App, c.cmd.Env)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	m := notify.Message{Title: fmt.Sprintf("Status of %s/%s", c.cmd.App, c.cmd.Env), Style: notify.StyleSuccess,
		Fields: []notify.Field{{Name: "current", Value: orNone(st.Current)}, {Name: "healthy", Value: strconv.FormatBool(st.Healthy)}},
		Code:   st.Detail}
	if !st.Healthy {
		m.Style = notify.StyleDanger
	}
	if l, err := d.store.Lock(ctx, c.cmd.App, c.cmd.Env); err == nil {
		m.Fields = append(m.Fields, notify.Field{Name: "lock", Value: (&deploy.LockedError{Lock: *l}).Error()})
	}
	return d.read(ctx, c, m)
}

func (d *Dispatcher) logs(ctx context.Context, c *call) Reply {
	n := c.cmd.Lines
	if n == 0 {
		n = 50
	}
	logs, what := d.engine.Logs, "Logs"
	if c.cmd.Build {
		logs, what = d.engine.BuildLogs, "Build log"
	}
	l, err := logs(ctx, c.cmd.App, c.cmd.Env, n)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	m := notify.Message{Title: fmt.Sprintf("%s of %s/%s (%s)", what, c.cmd.App, c.cmd.Env, lastLines(len(l.Lines))), Code: l.Lines}
	if l.Truncated {
		m.Text = fmt.Sprintf("(truncated: %d lines asked, the env's logs limit gave %d)", n, len(l.Lines))
	}
	if len(l.Lines) == 0 {
		m.Text = "no log lines"
	}
	return d.read(ctx, c, m)
}

func (d *Dispatcher) auditLog(ctx context.Context, c *call) Reply {
	evs, err := d.audit.AuditEvents(ctx, audit.Filter{Limit: c.cmd.Limit, App: c.cmd.App, Env: c.cmd.Env, Actor: c.cmd.User})
	if err != nil {
		return d.fail(ctx, c, err)
	}
	m := notify.Message{Title: fmt.Sprintf("Audit (last %d)", len(evs))}
	for _, e := range evs {
		actor := orNone(e.Actor)
		if e.Via != "" {
			actor += "@" + e.Via // a door, not a person in chat: "ci@api"
		}
		line := fmt.Sprintf("%d %s %-7s %-8s %s", e.Seq, e.Time.UTC().Format("01-02 15:04:05"), e.Kind, actor, e.Command)
		if len(e.Args) > 0 {
			line += " " + strings.Join(e.Args, " ")
		}
		if e.Outcome != "" {
			line += " → " + e.Outcome
		}
		m.Code = append(m.Code, line)
	}
	return d.read(ctx, c, m)
}

// lastLines says how many lines a log excerpt holds, in English.
func lastLines(n int) string {
	switch n {
	case 0:
		return "empty"
	case 1:
		return "last line"
	}
	return fmt.Sprintf("last %d lines", n)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func listOr(xs []string, none string) string {
	if len(xs) == 0 {
		return none
	}
	return strings.Join(xs, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// needSome asks for verb on at least one env: a list command then shows
// only the rows of envs the actor may see.
func (d *Dispatcher) needSome(ctx context.Context, c *call, verb string) (Reply, bool) {
	if c.actor.CanSome(verb) {
		return Reply{}, true
	}
	return d.deny(ctx, c, "permission", fmt.Sprintf("permission denied: you need %s (or %s:ENV)", verb, verb)), false
}
