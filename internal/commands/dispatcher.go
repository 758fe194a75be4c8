package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// EnvInfo is what the dispatcher needs to know of a configured env.
type EnvInfo struct {
	Driver   string
	Approval deploy.ApprovalPolicy
	// DefaultRef is deployed when /deploy names no ref; filling it in here
	// binds approvals to it and shows it on the card and in /releases.
	DefaultRef string
	// LockTTL is how long a /lock without --for lasts; 0: until unlocked.
	LockTTL time.Duration
}

// Catalog is the configured apps: app -> env -> info.
type Catalog map[string]map[string]EnvInfo

// AuditReader lists audit rows for /audit.
type AuditReader interface {
	AuditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error)
}

// Options configure a Dispatcher.
type Options struct {
	Engine  *deploy.Engine
	Policy  *Policy
	Catalog Catalog
	Sender  notify.Sender
	Audit   AuditReader
	Log     *slog.Logger
	// Observe, if set, hears every handled request: the command name ("" when
	// none was parsed) and whether it was refused. For metrics.
	Observe func(command string, denied bool)
	// Buttons, if set, holds what the buttons posted through a
	// notify.Binder do: a press is honoured only with the chat and message
	// it was bound to. Without it button data is taken as it comes (tests).
	Buttons notify.ButtonStore
	// Insights answers /stats; nil: /stats is refused.
	Insights Insights
}

// Dispatcher handles every chat request: identity, parse, policy, engine, reply.
type Dispatcher struct {
	engine  *deploy.Engine
	store   deploy.Store
	access  atomic.Pointer[access] // replaced whole on a config reload
	sender  notify.Sender
	audit   AuditReader
	log     *slog.Logger
	observe func(command string, denied bool)
	buttons notify.ButtonStore
	stats   Insights
}

var _ Handler = (*Dispatcher)(nil)

// New returns a Dispatcher.
func New(o Options) *Dispatcher {
	d := &Dispatcher{engine: o.Engine, store: o.Engine.Store(),
		sender: o.Sender, audit: o.Audit, log: o.Log, observe: o.Observe, buttons: o.Buttons, stats: o.Insights}
	d.SetAccess(o.Policy, o.Catalog)
	if d.log == nil {
		d.log = slog.Default()
	}
	return d
}

// call is one request in flight.
type call struct {
	req    Request
	who    deploy.Who
	actor  Actor
	cmd    Command
	denied bool
	// cardJob is the job whose card carried the pressed Unlock or Rollback
	// button: the press acts on that job, not on whatever holds the env now.
	cardJob int64
}

// Handle implements Handler.
func (d *Dispatcher) Handle(ctx context.Context, req Request) Reply {
	c := &call{req: req}
	r := d.handle(ctx, c)
	if d.observe != nil {
		d.observe(c.cmd.Name, c.denied)
	}
	return r
}

func (d *Dispatcher) handle(ctx context.Context, c *call) Reply {
	req := c.req
	identity := req.Platform + ":" + req.UserID
	c.who = deploy.Who{Identity: identity, Chat: req.Chat.String()}
	actor, ok := d.pol().Actor(identity)
	if req.As != "" {
		actor, ok = d.pol().User(req.As, identity)
	}
	if !ok {
		return d.deny(ctx, c, "unknown identity", fmt.Sprintf("I don't know %s. Ask an admin to add this identity to a user in shipbot's config.", identity))
	}
	c.actor, c.who.User = actor, actor.User

	text := req.Text
	if req.Action != "" {
		data, err := d.boundData(ctx, req)
		if err != nil {
			c.cmd.Name = "button"
			c.cmd.Args = []string{clip(req.Action)}
			return d.deny(ctx, c, "forged or stale button", err.Error())
		}
		t, job, err := d.buttonCommand(ctx, data)
		if err != nil {
			c.cmd.Name = "button"
			c.cmd.Args = []string{clip(req.Action)}
			return d.deny(ctx, c, "forged or stale button", err.Error())
		}
		text, c.cardJob = t, job
	}
	cmd, err := Parse(text)
	if err != nil {
		c.cmd.Name = "parse"
		c.cmd.Args = []string{clip(text)}
		return d.deny(ctx, c, "bad input", err.Error())
	}
	c.cmd = cmd
	if d.engine.Draining() && mutating(cmd.Name) {
		return d.deny(ctx, c, "draining", "shipbot is shutting down and takes no new work; try again in a minute")
	}
	if cmd.App != "" && cmd.Name != "audit" && cmd.Name != "stats" {
		if _, ok := d.cat()[cmd.App]; !ok {
			return d.deny(ctx, c, "unknown app", fmt.Sprintf("unknown app %q; see /apps", cmd.App))
		}
		if _, ok := d.cat()[cmd.App][cmd.Env]; !ok {
			return d.deny(ctx, c, "unknown env", fmt.Sprintf("unknown env %q for %s; see /apps", cmd.Env, cmd.App))
		}
	}
	switch cmd.Name {
	case "help":
		return d.read(ctx, c, notify.Message{Title: "shipbot commands", Text: strings.Join(HelpLines(), "\n")})
	case "whoami":
		return d.read(ctx, c, notify.Message{Title: "You are " + actor.User, Fields: []notify.Field{
			{Name: "identity", Value: identity},
			{Name: "roles", Value: listOr(actor.Roles, "none")},
			{Name: "permissions", Value: listOr(actor.Perms, "none")},
		}})
	case "apps":
		return d.apps(ctx, c)
	case "deploy":
		return d.submit(ctx, c, deploy.ActionDeploy)
	case "rollback":
		return d.submit(ctx, c, deploy.ActionRollback)
	case "backup":
		if cmd.Verify {
			return d.submit(ctx, c, deploy.ActionVerify)
		}
		return d.submit(ctx, c, deploy.ActionBackup)
	case "restore":
		return d.submit(ctx, c, deploy.ActionRestore)
	case "stop":
		return d.submit(ctx, c, deploy.ActionStop)
	case "start":
		return d.submit(ctx, c, deploy.ActionStart)
	case "backups":
		return d.backups(ctx, c)
	case "releases":
		return d.releases(ctx, c)
	case "status":
		return d.status(ctx, c)
	case "logs":
		return d.logs(ctx, c)
	case "jobs":
		return d.jobs(ctx, c)
	case "job":
		return d.job(ctx, c)
	case "cancel":
		return d.cancel(ctx, c)
	case "lock":
		return d.lock(ctx, c)
	case "unlock":
		return d.unlock(ctx, c)
	case "extend":
		return d.extend(ctx, c)
	case "locks":
		return d.locks(ctx, c)
	case "pending":
		return d.pending(ctx, c)
	case "approve", "deny":
		return d.decide(ctx, c, cmd.Name == "approve")
	case "audit":
		return d.auditLog(ctx, c)
	case "stats":
		return d.statsReport(ctx, c)
	}
	return d.deny(ctx, c, "unknown command", "unknown command; try /help")
}

func mutating(name string) bool {
	switch name {
	case "deploy", "rollback", "cancel", "lock", "unlock", "extend", "approve", "deny", "backup", "restore", "stop", "start":
		return true
	}
	return false
}

// boundData is what the pressed button does, if it was pressed where it was
// posted: shipbot's buttons carry only a random id, and the chat and message
// it was bound to must be the ones the press came from.
func (d *Dispatcher) boundData(ctx context.Context, req Request) (string, error) {
	if d.buttons == nil {
		return req.Action, nil
	}
	forged := errors.New("this button is not one of shipbot's")
	id, ok := strings.CutPrefix(req.Action, notify.ButtonPrefix)
	if !ok || len(id) > 64 {
		return "", forged
	}
	b, err := d.buttons.Button(ctx, id)
	if errors.Is(err, notify.ErrNoButton) {
		return "", forged
	}
	if err != nil {
		return "", fmt.Errorf("this button cannot be checked now (%v); try again", err)
	}
	if b.Chat != notify.ChatKey(req.Chat) {
		return "", errors.New("this button belongs to another chat")
	}
	// The shell has one terminal and no message ids (and a typist can press
	// a button before the binder has recorded its message); elsewhere a
	// button is good only on its own message.
	if req.Platform != "shell" && (b.Message == "" || req.Message != b.Message) {
		return "", errors.New("this button belongs to another message")
	}
	return b.Data, nil
}

// buttonCommand turns button data back into a command. Data is only ever a
// verb and an opaque token; whatever it names is looked up again and the
// presser's own rights are checked like for typed commands.
func (d *Dispatcher) buttonCommand(ctx context.Context, data string) (string, int64, error) {
	forged := errors.New("this button is not one of shipbot's")
	verb, token, ok := strings.Cut(data, ":")
	if !ok || len(data) > 64 {
		return "", 0, forged
	}
	switch verb {
	case notify.ButtonApprove, notify.ButtonDeny:
		if !approvalIDPattern.MatchString(token) {
			return "", 0, forged
		}
		return "/" + verb + " " + token, 0, nil
	case notify.ButtonCancel, notify.ButtonUnlock, notify.ButtonRollback:
		id, err := strconv.ParseInt(token, 10, 64)
		if err != nil || id < 1 {
			return "", 0, forged
		}
		if verb == notify.ButtonCancel {
			return "/cancel " + token, 0, nil
		}
		j, err := d.store.Job(ctx, id)
		if err != nil {
			return "", 0, errors.New("this button refers to no job")
		}
		return "/" + verb + " " + j.App + " " + j.Env, id, nil
	case ButtonExtendLock, ButtonUnlockLock:
		cmd, err := d.lockButtonCommand(ctx, verb, token)
		return cmd, 0, err
	case notify.ButtonDeploy:
		// "deploy:APP:ENV:REF" from a green pipeline: the same as typing
		// /deploy, so it meets the same parser, policy and approval.
		parts := strings.Split(token, ":")
		if len(parts) != 3 || !deploy.NamePattern.MatchString(parts[0]) || !deploy.NamePattern.MatchString(parts[1]) ||
			deploy.ValidateRef(parts[2]) != nil {
			return "", 0, forged
		}
		return "/deploy " + strings.Join(parts, " "), 0, nil
	}
	return "", 0, forged
}

// deny records a refusal and tells the person why. If the denial cannot be
// recorded the request is refused all the same.
func (d *Dispatcher) deny(ctx context.Context, c *call, what, msg string) Reply {
	c.denied = true
	ev := &audit.Event{Kind: audit.KindDenial, Actor: c.who.User, Identity: c.who.Identity, Chat: c.who.Chat,
		Command: c.cmd.Name, Args: c.cmd.Args, App: c.cmd.App, Env: c.cmd.Env, Decision: "denied",
		Outcome: what + ": " + msg}
	if err := d.store.Append(ctx, ev); err != nil {
		d.log.Error("denial not recorded", "identity", c.who.Identity, "err", err)
	}
	r := d.say(ctx, c, notify.Message{Title: "Refused", Style: notify.StyleDanger, Text: msg}, true)
	r.Denial = what
	return r
}

// record writes the intent+outcome pair of a read-only command. Nothing
// happens between the two, so they go in one transaction.
func (d *Dispatcher) record(ctx context.Context, c *call, result string) error {
	in := &audit.Event{Kind: audit.KindIntent, Actor: c.who.User, Identity: c.who.Identity, Chat: c.who.Chat,
		Command: c.cmd.Name, Args: c.cmd.Args, App: c.cmd.App, Env: c.cmd.Env, Decision: "allowed"}
	out := &audit.Event{Kind: audit.KindOutcome, Actor: c.who.User, Identity: c.who.Identity, Chat: c.who.Chat,
		Command: c.cmd.Name, App: c.cmd.App, Env: c.cmd.Env, Decision: "allowed", Outcome: result, Closes: in}
	return d.store.Append(ctx, in, out)
}

func (d *Dispatcher) read(ctx context.Context, c *call, m notify.Message) Reply {
	if err := d.record(ctx, c, "ok"); err != nil {
		return d.fail(ctx, c, err)
	}
	return d.say(ctx, c, m, false)
}

// say answers: a button press gets a notice, a typed command a message.
func (d *Dispatcher) say(ctx context.Context, c *call, m notify.Message, refused bool) Reply {
	if c.req.Via != "" {
		return Reply{Notice: firstNonEmpty(m.Text, m.Title), Refused: refused, Message: &m}
	}
	if c.req.Action != "" {
		return Reply{Notice: firstNonEmpty(m.Text, m.Title), Refused: refused}
	}
	if c.req.ReplyTo != "" {
		// A group: answer the command's message, and say whom a refusal
		// is for ("bob: you need deploy:staging").
		m.ReplyTo = c.req.ReplyTo
		if refused && c.who.User != "" {
			m.Text = c.who.User + ": " + m.Text
		} else if refused && c.req.UserName != "" {
			m.Text = c.req.UserName + ": " + m.Text
		}
	}
	if _, err := d.sender.Send(ctx, c.req.Chat, m); err != nil {
		d.log.Warn("reply not sent", "chat", c.req.Chat.String(), "err", err)
	}
	return Reply{Refused: refused}
}

// fail maps an error to a reply once, at the edge: known conditions get their
// own words and an audit denial; anything else is "internal error (ref X)" in
// chat with the details in the log under the same ref.
func (d *Dispatcher) fail(ctx context.Context, c *call, err error) Reply {
	var locked *deploy.LockedError
	var denied *deploy.DeniedError
	var refusal *deploy.Refusal
	var pe *ParseError
	var cond *deploy.Error
	switch {
	case errors.As(err, &locked):
		return d.deny(ctx, c, "locked", err.Error())
	case errors.As(err, &denied):
		// A driver's security refusal (unknown or changed host key): the
		// person must see it, fingerprints and all, and it is audited.
		return d.deny(ctx, c, "driver refused", denied.Error())
	case errors.As(err, &refusal), errors.As(err, &pe):
		return d.deny(ctx, c, "refused", err.Error())
	case errors.Is(err, deploy.ErrSelfApprove):
		return d.deny(ctx, c, "self-approval", err.Error())
	case errors.Is(err, deploy.ErrDraining):
		return d.deny(ctx, c, "draining", err.Error())
	case errors.Is(err, deploy.ErrNotFound):
		return d.deny(ctx, c, "not found", err.Error())
	case errors.Is(err, deploy.ErrConflict):
		return d.deny(ctx, c, "conflict", "that changed while you asked; look again and retry")
	case errors.As(err, &cond):
		// An expected condition outside shipbot (host down, key refused,
		// file missing, disk full): its own message says what and where;
		// the wrapping, for the log, says which step met it.
		d.log.Warn("command met a condition", "command", c.cmd.Name, "app", c.cmd.App, "env", c.cmd.Env,
			"code", cond.Code, "err", err)
		return d.say(ctx, c, notify.Message{Title: "Error", Style: notify.StyleDanger, Text: cond.Msg + "; nothing was done"}, true)
	case errors.As(err, new(*deploy.TargetError)):
		d.log.Warn("target error", "command", c.cmd.Name, "app", c.cmd.App, "env", c.cmd.Env, "err", err)
		return d.say(ctx, c, notify.Message{Title: "Error", Style: notify.StyleDanger, Text: err.Error() + "; nothing was done"}, true)
	}
	ref := newRef()
	d.log.Error("command failed", "ref", ref, "command", c.cmd.Name, "identity", c.who.Identity, "err", err)
	return d.say(ctx, c, notify.Message{Title: "Error", Style: notify.StyleDanger,
		Text: fmt.Sprintf("internal error (ref %s); nothing was done", ref)}, true)
}

func newRef() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (d *Dispatcher) need(ctx context.Context, c *call, verb string) (Reply, bool) {
	if c.actor.Can(verb, c.cmd.App, c.cmd.Env) {
		return Reply{}, true
	}
	return d.deny(ctx, c, "permission", Missing(verb, c.cmd.App, c.cmd.Env)), false
}

func (d *Dispatcher) submit(ctx context.Context, c *call, action deploy.Action) Reply {
	verb := string(action)
	if action == deploy.ActionVerify {
		verb = "backup"
	}
	if r, ok := d.need(ctx, c, verb); !ok {
		return r
	}
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
		if _, err := d.engine.RollbackInterrupted(ctx, c.cardJob, c.who, env.Approval); err != nil {
			return d.fail(ctx, c, err)
		}
		return Reply{Notice: "rollback job created"}
	}
	ref := c.cmd.Ref
	if ref == "" && action == deploy.ActionDeploy {
		ref = env.DefaultRef
	}
	if err := RefForDriver(env.Driver, ref); err != nil {
		return d.deny(ctx, c, "bad input", err.Error())
	}
	j, err := d.engine.Submit(ctx, deploy.JobRequest{Who: c.who, App: c.cmd.App, Env: c.cmd.Env, Action: action,
		Ref: ref, Release: firstNonEmpty(c.cmd.Release, c.cmd.Backup), WithDB: c.cmd.WithDB, Redeploy: c.cmd.Redeploy, Approval: env.Approval, Args: c.cmd.Args})
	if err != nil {
		return d.fail(ctx, c, err)
	}
	// The job's card, posted by the engine's observer, is the answer.
	return Reply{Notice: "job created", JobID: j.ID}
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
	js, err := d.store.Jobs(ctx, deploy.JobFilter{App: app, Env: env,
		States: []deploy.State{deploy.Succeeded, deploy.RolledBack}, Limit: 1})
	if err != nil || len(js) == 0 {
		return ""
	}
	if js[0].State == deploy.RolledBack {
		return js[0].FromRelease
	}
	return js[0].Release
}

func (d *Dispatcher) releases(ctx context.Context, c *call) Reply {
	if r, ok := d.need(ctx, c, "status"); !ok {
		return r
	}
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
	if r, ok := d.need(ctx, c, "backup"); !ok {
		return r
	}
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
	if r, ok := d.need(ctx, c, "status"); !ok {
		return r
	}
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
	if r, ok := d.need(ctx, c, "logs"); !ok {
		return r
	}
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

func (d *Dispatcher) jobs(ctx context.Context, c *call) Reply {
	js, err := d.store.Jobs(ctx, deploy.JobFilter{Limit: 15})
	if err != nil {
		return d.fail(ctx, c, err)
	}
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
	if r, ok := d.need(ctx, c, "status"); !ok {
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
		if r, ok := d.need(ctx, c, "cancel"); !ok {
			return r
		}
	}
	if _, err := d.engine.Cancel(ctx, c.cmd.JobID, c.who); err != nil {
		return d.fail(ctx, c, err)
	}
	return d.say(ctx, c, notify.Message{Title: fmt.Sprintf("Cancelling job #%d", j.ID), Text: "the job's card shows when it has stopped"}, false)
}

func (d *Dispatcher) lock(ctx context.Context, c *call) Reply {
	if r, ok := d.need(ctx, c, "lock"); !ok {
		return r
	}
	ttl := c.cmd.For
	if ttl == 0 {
		ttl = d.cat()[c.cmd.App][c.cmd.Env].LockTTL
	}
	l, err := d.engine.LockFor(ctx, c.cmd.App, c.cmd.Env, c.cmd.Reason, c.who, ttl)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	return d.say(ctx, c, lockedMessage(l), false)
}

func (d *Dispatcher) unlock(ctx context.Context, c *call) Reply {
	force := c.actor.Has("lock:force")
	if !force {
		if r, ok := d.need(ctx, c, "lock"); !ok {
			return r
		}
	}
	if c.cardJob != 0 {
		// Release lock on a job's card releases that job's lock only.
		l, err := d.store.Lock(ctx, c.cmd.App, c.cmd.Env)
		if err != nil || l.JobID != c.cardJob {
			by := ""
			if j, jerr := d.store.Job(ctx, c.cardJob); jerr == nil && j.LockReleasedBy != "" {
				by = " (released by " + j.LockReleasedBy + ")"
			}
			return d.fail(ctx, c, &deploy.Refusal{Msg: fmt.Sprintf("job #%d no longer holds the lock of %s/%s%s", c.cardJob, c.cmd.App, c.cmd.Env, by)})
		}
	}
	held, err := d.engine.Unlock(ctx, c.cmd.App, c.cmd.Env, c.who, force)
	if err != nil {
		if errors.Is(err, deploy.ErrNotFound) {
			err = &deploy.Refusal{Msg: fmt.Sprintf("%s/%s is not locked", c.cmd.App, c.cmd.Env)}
		}
		return d.fail(ctx, c, err)
	}
	was := fmt.Sprintf("was held by %s: %s", held.Owner, held.Reason)
	if held.JobID != 0 {
		was = fmt.Sprintf("was held by %s's job #%d: %s", held.Owner, held.JobID, held.Reason)
	}
	return d.say(ctx, c, notify.Message{Title: fmt.Sprintf("Unlocked %s/%s", c.cmd.App, c.cmd.Env), Style: notify.StyleSuccess,
		Text: was}, false)
}

func (d *Dispatcher) pending(ctx context.Context, c *call) Reply {
	as, err := d.store.PendingApprovals(ctx)
	if err != nil {
		return d.fail(ctx, c, err)
	}
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
		if r, ok := d.need(ctx, c, "approve"); !ok {
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

func (d *Dispatcher) auditLog(ctx context.Context, c *call) Reply {
	if !c.actor.Has("audit:read") {
		return d.deny(ctx, c, "permission", "permission denied: you need audit:read")
	}
	evs, err := d.audit.AuditEvents(ctx, audit.Filter{Limit: c.cmd.Limit, App: c.cmd.App, Env: c.cmd.Env, Actor: c.cmd.User})
	if err != nil {
		return d.fail(ctx, c, err)
	}
	m := notify.Message{Title: fmt.Sprintf("Audit (last %d)", len(evs))}
	for _, e := range evs {
		line := fmt.Sprintf("%d %s %-7s %-8s %s", e.Seq, e.Time.UTC().Format("01-02 15:04:05"), e.Kind, orNone(e.Actor), e.Command)
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
