package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

func (d *Dispatcher) deploy(ctx context.Context, c *call) Reply {
	return d.submit(ctx, c, deploy.ActionDeploy)
}

func (d *Dispatcher) rollback(ctx context.Context, c *call) Reply {
	return d.submit(ctx, c, deploy.ActionRollback)
}

func (d *Dispatcher) backup(ctx context.Context, c *call) Reply {
	if c.cmd.Verify {
		return d.submit(ctx, c, deploy.ActionVerify)
	}
	return d.submit(ctx, c, deploy.ActionBackup)
}

func (d *Dispatcher) restore(ctx context.Context, c *call) Reply {
	return d.submit(ctx, c, deploy.ActionRestore)
}

func (d *Dispatcher) stop(ctx context.Context, c *call) Reply {
	return d.submit(ctx, c, deploy.ActionStop)
}

func (d *Dispatcher) start(ctx context.Context, c *call) Reply {
	return d.submit(ctx, c, deploy.ActionStart)
}

func (d *Dispatcher) approve(ctx context.Context, c *call) Reply { return d.decide(ctx, c, true) }

func (d *Dispatcher) denyRequest(ctx context.Context, c *call) Reply { return d.decide(ctx, c, false) }

// submit hands a job to the engine; the command's own permission has been
// checked.
func (d *Dispatcher) submit(ctx context.Context, c *call, action deploy.Action) Reply {
	if c.cmd.WithDB {
		// Putting a database back is a restore, whatever command asks for it.
		if r, ok := d.need(ctx, c, "restore"); !ok {
			return r
		}
	}
	env := d.cat()[c.cmd.App][c.cmd.Env]
	if c.cmd.Plan {
		return d.plan(ctx, c)
	}
	if action == deploy.ActionRollback && c.cardJob != 0 {
		// Rollback on an interrupted job's card: put back what was live
		// before that job, taking over its lock.
		j, err := d.engine.RollbackInterrupted(ctx, c.cardJob, c.who, env.Approval)
		if err != nil {
			return d.fail(ctx, c, err)
		}
		d.awaitCard(ctx, j)
		return Reply{Notice: "rollback job created", JobID: j.ID}
	}
	ref := c.cmd.Ref
	if ref == "" && action == deploy.ActionDeploy {
		ref = env.DefaultRef
	}
	if err := RefForDriver(env.Driver, ref); err != nil {
		return d.deny(ctx, c, "bad input", err.Error())
	}
	j, err := d.engine.Submit(ctx, deploy.JobRequest{Who: c.who, App: c.cmd.App, Env: c.cmd.Env, Action: action,
		Ref: ref, RollbackTo: c.cmd.Release, Backup: c.cmd.Backup, WithDB: c.cmd.WithDB, Redeploy: c.cmd.Redeploy, Approval: env.Approval, Args: c.cmd.Args})
	if err != nil {
		return d.fail(ctx, c, err)
	}
	// The job's card, written to the outbox with the job, is the answer.
	d.awaitCard(ctx, j)
	return Reply{Notice: "job created", JobID: j.ID}
}

func (d *Dispatcher) awaitCard(ctx context.Context, j *deploy.Job) {
	if d.card != nil && j != nil {
		d.card(ctx, j)
	}
}

func (d *Dispatcher) plan(ctx context.Context, c *call) Reply {
	p, lock, err := d.engine.Plan(ctx, c.cmd.App, c.cmd.Env, c.cmd.Ref)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	m := notify.Message{Title: fmt.Sprintf("Plan: deploy %s → %s (nothing runs)", c.cmd.App, c.cmd.Env)}
	m.Fields = append(m.Fields, notify.Field{Name: "from", Value: orNone(p.From)}, notify.Field{Name: "to", Value: p.To})
	if len(p.Hosts) > 0 {
		m.Fields = append(m.Fields, notify.Field{Name: "hosts", Value: strings.Join(p.Hosts, ", ")})
	}
	if lock != nil {
		m.Fields = append(m.Fields, notify.Field{Name: "lock", Value: (&deploy.LockedError{Lock: *lock}).Error()})
		m.Style = notify.StyleWarning
	} else {
		m.Fields = append(m.Fields, notify.Field{Name: "lock", Value: "free"})
	}
	if d.cat()[c.cmd.App][c.cmd.Env].Approval.Required {
		m.Fields = append(m.Fields, notify.Field{Name: "approval", Value: "required (a second person)"})
	}
	for _, s := range p.Steps {
		m.Steps = append(m.Steps, notify.Step{Name: s, State: string(deploy.StepPending)})
	}
	return d.read(ctx, c, m)
}

func (d *Dispatcher) jobs(ctx context.Context, c *call) Reply {
	js, err := d.store.Jobs(ctx, deploy.JobFilter{Limit: 15})
	if err != nil {
		return d.fail(ctx, c, err)
	}
	js = slices.DeleteFunc(js, func(j *deploy.Job) bool { return !c.actor.Can(PermView, j.App, j.Env) })
	m := notify.Message{Title: "Recent jobs"}
	for _, j := range js {
		// No column padding: on a phone the lines wrap, and padded
		// columns only add blanks; one job per short line reads in any font.
		m.Code = append(m.Code, fmt.Sprintf("#%d %s %s/%s %s · %s · %s", j.ID, j.Action, j.App, j.Env,
			j.State, j.RequestedBy.User, j.Created.UTC().Format("01-02 15:04")))
	}
	if len(js) == 0 {
		m.Text = "no jobs yet"
	}
	return d.read(ctx, c, m)
}

func (d *Dispatcher) job(ctx context.Context, c *call) Reply {
	j, err := d.jobOf(ctx, c.cmd.JobID)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	c.cmd.App, c.cmd.Env = j.App, j.Env
	if r, ok := d.need(ctx, c, c.spec.perm); !ok {
		return r
	}
	m := notify.JobCard(*j)
	m.Buttons = nil
	m.Code = j.Output
	if len(m.Code) > 30 {
		m.Code = m.Code[len(m.Code)-30:]
	}
	return d.read(ctx, c, m)
}

// jobOf loads job id; a missing one is a refusal naming it once.
func (d *Dispatcher) jobOf(ctx context.Context, id int64) (*deploy.Job, error) {
	j, err := d.store.Job(ctx, id)
	if errors.Is(err, deploy.ErrNotFound) {
		return nil, noJob(id)
	}
	return j, err
}

// missing is a deploy.ErrNotFound whose message names the thing once, so a
// door can answer 404 and a chat reads "there is no job #4 (see /jobs)".
type missing struct{ msg string }

func (m *missing) Error() string { return m.msg }
func (m *missing) Unwrap() error { return deploy.ErrNotFound }

func noJob(id int64) error { return &missing{msg: fmt.Sprintf("there is no job #%d (see /jobs)", id)} }

func (d *Dispatcher) cancel(ctx context.Context, c *call) Reply {
	j, err := d.jobOf(ctx, c.cmd.JobID)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	c.cmd.App, c.cmd.Env = j.App, j.Env
	if j.RequestedBy.User != c.who.User {
		if r, ok := d.need(ctx, c, c.spec.perm); !ok {
			return r
		}
	}
	if _, err := d.engine.Cancel(ctx, c.cmd.JobID, c.who); err != nil {
		return d.fail(ctx, c, err)
	}
	return d.say(ctx, c, notify.Message{Title: fmt.Sprintf("Cancelling job #%d", j.ID), Text: "the job's card shows when it has stopped"}, false)
}

func (d *Dispatcher) pending(ctx context.Context, c *call) Reply {
	as, err := d.store.PendingApprovals(ctx)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	as = slices.DeleteFunc(as, func(a *deploy.Approval) bool { return !c.actor.Can(PermView, a.App, a.Env) })
	m := notify.Message{Title: "Pending approvals"}
	for _, a := range as {
		m.Code = append(m.Code, fmt.Sprintf("%s  job #%d  %s %s/%s %s  by %s  expires %s", a.ID, a.JobID, a.Action,
			a.App, a.Env, orNone(a.Version), a.RequestedBy, a.Expires.UTC().Format("15:04 MST")))
	}
	if len(as) == 0 {
		m.Text = "nothing waits for approval"
	}
	return d.read(ctx, c, m)
}

func (d *Dispatcher) decide(ctx context.Context, c *call, approve bool) Reply {
	if c.req.Via != "" || strings.HasPrefix(c.who.Identity, "api:") {
		// A CI token or a rule is not a second person: whatever roles its
		// user holds, approving (or denying) stays a human's act in chat.
		return d.deny(ctx, c, "not a person", "approvals are given by a person in chat, never through "+firstNonEmpty(c.req.Via, "the API"))
	}
	a, err := d.store.Approval(ctx, c.cmd.ID)
	if err != nil {
		if errors.Is(err, deploy.ErrNotFound) {
			return d.deny(ctx, c, "forged approval", fmt.Sprintf("no approval %s exists (see /pending)", c.cmd.ID))
		}
		return d.fail(ctx, c, err)
	}
	c.cmd.App, c.cmd.Env = a.App, a.Env
	j, _ := d.store.Job(ctx, a.JobID)
	// The requester may withdraw (deny) their own request; approving needs the
	// right to approve on this env and one of the approver roles.
	own := j != nil && (j.RequestedBy.User == c.who.User || a.RequestedBy == c.who.User)
	if approve && own {
		return d.fail(ctx, c, deploy.ErrSelfApprove)
	}
	if !own {
		if r, ok := d.need(ctx, c, c.spec.perm); !ok {
			return r
		}
		if !c.actor.HasRole(a.Roles) {
			return d.deny(ctx, c, "permission", fmt.Sprintf("approving %s/%s needs one of the roles: %s", a.App, a.Env, strings.Join(a.Roles, ", ")))
		}
	}
	if _, err := d.engine.Decide(ctx, c.cmd.ID, c.who, approve); err != nil {
		return d.fail(ctx, c, err)
	}
	verb := "Approved"
	if !approve {
		verb = "Denied"
	}
	return d.say(ctx, c, notify.Message{Title: fmt.Sprintf("%s job #%d", verb, a.JobID)}, false)
}
