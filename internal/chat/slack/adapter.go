// Package slack is the Slack chat adapter (slack-go): it receives slash
// commands, @mentions, direct messages and button clicks over Socket Mode
// or, in HTTP mode, through signed requests on the bot's HTTP router; turns
// those from allowed channels into commands.Requests carrying the verified
// Slack user id; and implements notify.Sender with Block Kit messages that
// chat.update edits in place.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// Platform is the notify.Channel platform name of Slack channels.
const Platform = "slack"

// Modes of receiving events.
const (
	ModeSocket = "socket"
	ModeHTTP   = "http"
)

// DefaultAPIURL is Slack's Web API; slack-go wants the trailing slash.
const DefaultAPIURL = "https://slack.com/api/"

// queueSize bounds requests acknowledged but not yet handled.
const queueSize = 256

// Deduper remembers inbound keys durably (sqlite.DB implements it), so an
// event Slack delivers again (a retry after a slow answer, a reconnect)
// never runs a command twice.
type Deduper = chat.Deduper

// Options configure an Adapter.
type Options struct {
	// Mode is ModeSocket (default) or ModeHTTP.
	Mode string
	// BotToken (xoxb-) calls the Web API. Never logged.
	BotToken audit.Secret
	// AppToken (xapp-) opens Socket Mode connections; socket mode only.
	AppToken audit.Secret
	// SigningSecret verifies HTTP-mode requests; required in HTTP mode.
	SigningSecret audit.Secret
	// APIURL is the Web API base ending in "/"; empty means DefaultAPIURL.
	APIURL string
	// AllowedChannels may use the bot; anyone else gets a short refusal.
	AllowedChannels []string
	// DirectMessages lets people talk to the bot in a DM.
	DirectMessages bool
	// Dedupe makes each event count once, across restarts. Required.
	Dedupe Deduper
	// Denied is told about requests refused here (channel not allowed) so the
	// caller can write an audit denial: identity is "slack:USER_ID", chat a
	// notify.Channel string.
	Denied func(ctx context.Context, identity, chat, reason string)
	// HTTPClient calls the Web API; default a client with a 30 s timeout.
	HTTPClient *http.Client
	Log        *slog.Logger
}

// Adapter is shipbot in Slack. Send and Edit are safe from any goroutine;
// Run is called once.
type Adapter struct {
	api      *slackgo.Client
	mode     string
	red      chat.Redactor
	signing  string
	allowed  map[string]bool
	dms      bool
	gate     *chat.Gate
	log      *slog.Logger
	queue    chan item
	qmu      sync.RWMutex
	qclosed  bool
	slot     chat.Slot // the handler, and the bot's user id from auth.test in Run
	attached chat.Attached
}

var _ notify.Sender = (*Adapter)(nil)

// item is one request acknowledged to Slack and waiting for the worker.
type item struct {
	key    string // dedupe key
	req    commands.Request
	user   string // Slack user id, for ephemeral answers to clicks
	button bool
}

// New checks o and returns an Adapter; nothing goes over the network until
// Run or Send. h may be nil and set later with SetHandler.
func New(o Options, h commands.Handler) (*Adapter, error) {
	if o.BotToken.IsZero() {
		return nil, errors.New("slack: the bot token (chat.slack.bot_token) is required")
	}
	if o.Dedupe == nil {
		return nil, errors.New("slack: Dedupe is required (a retried event must not run twice)")
	}
	mode := o.Mode
	if mode == "" {
		mode = ModeSocket
	}
	switch mode {
	case ModeSocket:
		if o.AppToken.IsZero() {
			return nil, errors.New("slack: chat.slack.app_token (xapp-) is required in socket mode")
		}
	case ModeHTTP:
		if o.SigningSecret.IsZero() {
			return nil, errors.New("slack: chat.slack.signing_secret is required in http mode")
		}
	default:
		return nil, fmt.Errorf("slack: mode %q: want %q or %q", o.Mode, ModeSocket, ModeHTTP)
	}
	api := o.APIURL
	if api == "" {
		api = DefaultAPIURL
	}
	if u, err := url.Parse(api); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasSuffix(api, "/") {
		return nil, fmt.Errorf("slack: api_url %q is not an http(s) URL ending in /", o.APIURL)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	a := &Adapter{
		mode:    mode,
		signing: o.SigningSecret.Reveal(),
		allowed: map[string]bool{},
		dms:     o.DirectMessages,
		log:     o.Log,
		queue:   make(chan item, queueSize),
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.gate = chat.NewGate("slack", o.Dedupe, o.Denied, a.log)
	a.red = chat.NewRedactor(o.BotToken.Reveal(), o.AppToken.Reveal(), o.SigningSecret.Reveal())
	for _, c := range o.AllowedChannels {
		a.allowed[c] = true
	}
	opts := []slackgo.Option{slackgo.OptionAPIURL(api), slackgo.OptionHTTPClient(client)}
	if !o.AppToken.IsZero() {
		opts = append(opts, slackgo.OptionAppLevelToken(o.AppToken.Reveal()))
	}
	a.api = slackgo.New(o.BotToken.Reveal(), opts...)
	a.slot.SetHandler(h)
	return a, nil
}

// SetHandler sets where requests go.
func (a *Adapter) SetHandler(h commands.Handler) { a.slot.SetHandler(h) }

func (a *Adapter) current() (commands.Handler, string) { return a.slot.Current() }

// Mode is ModeSocket or ModeHTTP.
func (a *Adapter) Mode() string { return a.mode }

// Run checks the token (auth.test), then receives until ctx ends: over a
// Socket Mode websocket (reconnecting as Slack asks), or in HTTP mode through
// the handlers from Routes. Requests of one channel or DM are handled in the
// order Slack sent them ("/lock" then "/deploy" must not swap); other
// channels' go on side by side, so nobody waits on a slow command elsewhere. Run returns once the
// requests it acknowledged are handled. A token Slack refuses is an error at
// once; an unreachable Slack is retried.
func (a *Adapter) Run(ctx context.Context) error {
	var me *slackgo.AuthTestResponse
	err := a.retry(ctx, "auth.test", func() (err error) {
		me, err = a.api.AuthTestContext(ctx)
		return err
	})
	if err != nil || ctx.Err() != nil {
		a.closeQueue()
		return err
	}
	a.slot.SetSelf(me.UserID)
	a.log.Info("slack: connected", "team", me.Team, "bot", me.User, "mode", a.mode)

	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		// The queue keeps Slack's order; each request then waits only
		// behind earlier ones of its own channel or DM.
		lanes := commands.NewLanes(0, 0)
		for it := range a.queue {
			lanes.Do(it.req.Chat.ID, func() { a.process(ctx, it) })
		}
		lanes.Wait()
	}()
	if a.mode == ModeSocket {
		err = a.runSocket(ctx)
	} else {
		<-ctx.Done()
	}
	a.closeQueue()
	<-workerDone
	return err
}

// runSocket reads Socket Mode events until ctx ends. Every envelope is
// acknowledged at once (Slack redelivers what is not acked within 3 s) and
// handled after, in order.
func (a *Adapter) runSocket(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	smc := socketmode.New(a.api, socketmode.OptionLog(logWriter{a}))
	runErr := make(chan error, 1)
	go func() { runErr <- smc.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			<-runErr
			return nil
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack socket mode: %w (is chat.slack.app_token right?)", a.redact(err))
		case evt := <-smc.Events:
			a.onSocketEvent(ctx, smc, evt)
		}
	}
}

func (a *Adapter) onSocketEvent(ctx context.Context, smc *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnected:
		a.log.Info("slack: socket mode connected")
	case socketmode.EventTypeConnectionError, socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage:
		a.log.Warn("slack: socket mode", "event", evt.Type, "detail", a.redactText(fmt.Sprint(evt.Data)))
	case socketmode.EventTypeInvalidAuth:
		a.log.Error("slack: socket mode refused the app token (invalid_auth)")
	case socketmode.EventTypeEventsAPI, socketmode.EventTypeInteractive, socketmode.EventTypeSlashCommand:
		if evt.Request == nil {
			return
		}
		var ack any
		switch data := evt.Data.(type) {
		case slackgo.SlashCommand:
			ack = a.onSlash(ctx, data)
		case slackgo.InteractionCallback:
			a.onInteraction(ctx, data)
		default:
			a.onEventsAPI(ctx, evt.Request.Payload)
		}
		if err := smc.AckCtx(ctx, evt.Request.EnvelopeID, ack); err != nil {
			a.log.Warn("slack: ack failed", "envelope", evt.Request.EnvelopeID, "err", a.redact(err))
		}
	}
}

// enqueue hands it to the worker, keeping order; it waits while the queue
// is full, and drops (logged) only when the adapter is stopping.
func (a *Adapter) enqueue(ctx context.Context, it item) bool {
	a.qmu.RLock()
	defer a.qmu.RUnlock()
	if a.qclosed {
		a.log.Warn("slack: request after shutdown; dropped", "key", it.key)
		return false
	}
	select {
	case a.queue <- it:
		return true
	case <-ctx.Done():
		a.log.Warn("slack: request not queued before shutdown; dropped", "key", it.key)
		return false
	}
}

func (a *Adapter) closeQueue() {
	a.qmu.Lock()
	defer a.qmu.Unlock()
	if !a.qclosed {
		a.qclosed = true
		close(a.queue)
	}
}

// process handles one request the gate let in. It runs on past the end of
// ctx (a shutdown must not cut a command in half) but within chat.HandleTimeout.
func (a *Adapter) process(ctx context.Context, it item) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chat.HandleTimeout)
	defer cancel()
	h, _ := a.current()
	if h == nil {
		a.log.Warn("slack: request before the handler is set; dropped", "key", it.key)
		return
	}
	r := h.Handle(ctx, it.req)
	if it.button && r.Notice != "" {
		a.ephemeral(ctx, it.req.Chat, it.user, r.Notice)
	}
}

// retry calls f until it succeeds, Slack refuses the token for good, or ctx
// ends (nil).
func (a *Adapter) retry(ctx context.Context, what string, f func() error) error {
	return a.red.Retry(ctx, a.log, "slack: "+what, f, func(err error) error {
		var se slackgo.SlackErrorResponse
		if errors.As(err, &se) || strings.Contains(err.Error(), "invalid_auth") || strings.Contains(err.Error(), "not_authed") ||
			strings.Contains(err.Error(), "account_inactive") || strings.Contains(err.Error(), "token_revoked") {
			return fmt.Errorf("slack: %s: %w (is chat.slack.bot_token right?)", what, err)
		}
		return nil
	})
}

// inbound is a request at the gate: refused unless its channel (or DM)
// may use the bot.
func (a *Adapter) inbound(key, user string, ch notify.Channel, dm bool) chat.Inbound {
	in := chat.Inbound{Key: key, Identity: Platform + ":" + user, Chat: ch}
	switch {
	case dm || strings.HasPrefix(ch.ID, "D"):
		if !a.dms {
			in.Refusal = "direct messages are not allowed"
		}
	case !a.allowed[ch.ID]:
		in.Refusal = "channel not allowed"
	}
	return in
}

// refusalText is what a person in a refused channel or DM is told.
func refusalText(ch notify.Channel) string {
	if strings.HasPrefix(ch.ID, "D") {
		return "shipbot does not take commands in direct messages here; use an allowed channel."
	}
	return "shipbot is not enabled in this channel; ask an admin to add its id to chat.slack.channels."
}

// logWriter sends socketmode's internal log lines to slog, redacted.
type logWriter struct{ a *Adapter }

func (w logWriter) Output(_ int, s string) error {
	w.a.log.Debug("slack: socketmode", "msg", w.a.redactText(strings.TrimSpace(s)))
	return nil
}

// redact removes tokens from an error's text.
func (a *Adapter) redact(err error) error { return a.red.Err(err) }

func (a *Adapter) redactText(s string) string { return a.red.Text(s) }
