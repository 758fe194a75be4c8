package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	Engine Engine
	// Records are the engine's records; nil means the Engine's own
	// (deploy.Engine.Store).
	Records Records
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
	// AwaitCard, if set, returns once a new job's card is in its chat (or
	// gives up after a short while): the card is the answer to the command
	// that made the job, so it comes before anything said after it.
	AwaitCard func(ctx context.Context, j *deploy.Job)
	// Notices, if set, queues what the dispatcher says on its own (lock
	// reminders and expiries) in the outbox, delivered and retried by the
	// relay like every other message; nil sends them at once (tests).
	Notices func(ctx context.Context, posts ...notify.Post) error
}

// Dispatcher handles every chat request: identity, parse, policy, engine, reply.
type Dispatcher struct {
	engine  Engine
	store   Records
	access  atomic.Pointer[access] // replaced whole on a config reload
	sender  notify.Sender
	audit   AuditReader
	log     *slog.Logger
	observe func(command string, denied bool)
	buttons notify.ButtonStore
	stats   Insights
	card    func(ctx context.Context, j *deploy.Job)
	notices func(ctx context.Context, posts ...notify.Post) error
}

var _ Handler = (*Dispatcher)(nil)

// New returns a Dispatcher.
func New(o Options) *Dispatcher {
	d := &Dispatcher{engine: o.Engine, store: o.Records,
		sender: o.Sender, audit: o.Audit, log: o.Log, observe: o.Observe, buttons: o.Buttons, stats: o.Insights,
		card: o.AwaitCard, notices: o.Notices}
	if s, ok := o.Engine.(interface{ Store() deploy.Store }); ok && d.store == nil {
		d.store = s.Store()
	}
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
	spec   *spec
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
	c.who = deploy.Who{Identity: identity, Chat: req.Chat.String(), Via: req.Via}
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
	sp := byName[cmd.Name]
	c.spec = sp
	if sp.mutating && d.engine.Draining() {
		return d.deny(ctx, c, "draining", "shipbot is shutting down and takes no new work; try again in a minute")
	}
	if cmd.App != "" && !sp.filters { // /audit app=… filters what it shows; it acts on nothing
		if _, ok := d.cat()[cmd.App]; !ok {
			return d.deny(ctx, c, "unknown app", fmt.Sprintf("unknown app %q; see /apps", cmd.App))
		}
		if _, ok := d.cat()[cmd.App][cmd.Env]; !ok {
			return d.deny(ctx, c, "unknown env", fmt.Sprintf("unknown env %q for %s; see /apps", cmd.Env, cmd.App))
		}
	}
	if r, ok := d.permitted(ctx, c, sp); !ok {
		return r
	}
	return sp.run(d, ctx, c)
}

// permitted checks the command's permission where the command alone says
// what it acts on; commands on a job or an approval check in their handler,
// once they have looked it up.
func (d *Dispatcher) permitted(ctx context.Context, c *call, sp *spec) (Reply, bool) {
	switch sp.check {
	case checkEnv:
		if sp.force != "" && c.actor.Has(sp.force) {
			return Reply{}, true
		}
		return d.need(ctx, c, sp.perm)
	case checkSome:
		return d.needSome(ctx, c, sp.perm)
	case checkWhole:
		if !c.actor.Has(sp.perm) {
			return d.deny(ctx, c, "permission", "permission denied: you need "+sp.perm), false
		}
	}
	return Reply{}, true
}

func (d *Dispatcher) help(ctx context.Context, c *call) Reply {
	return d.read(ctx, c, notify.Message{Title: "shipbot commands", Text: strings.Join(HelpLines(), "\n")})
}

func (d *Dispatcher) whoami(ctx context.Context, c *call) Reply {
	return d.read(ctx, c, notify.Message{Title: "You are " + c.actor.User, Fields: []notify.Field{
		{Name: "identity", Value: c.who.Identity},
		{Name: "roles", Value: listOr(c.actor.Roles, "none")},
		{Name: "permissions", Value: listOr(c.actor.Perms, "none")},
	}})
}

// deny records a refusal and tells the person why. If the denial cannot be
// recorded the request is refused all the same.
func (d *Dispatcher) deny(ctx context.Context, c *call, what, msg string) Reply {
	c.denied = true
	ev := audit.Denial(c.who, c.cmd.Name, c.cmd.Args, c.cmd.App, c.cmd.Env, what+": "+msg)
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
	in := audit.Intent(c.who, c.cmd.Name, c.cmd.App, c.cmd.Env, c.cmd.Args)
	out := audit.Closing(in, 0, result)
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
