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

// handleTimeout bounds the handling of one request. Handling continues past
// a shutdown (a command must not be cut in half) but not forever.
const handleTimeout = 30 * time.Second

// queueSize bounds requests acknowledged but not yet handled.
const queueSize = 256

// keepAttached bounds the memory of sent attachments.
const keepAttached = 4096

// refusalEvery limits refusal messages per channel; every refused request is
// still reported to Denied.
const refusalEvery = time.Minute

// Deduper remembers inbound keys durably (sqlite.DB implements it), so an
// event Slack delivers again (a retry after a slow answer, a reconnect)
// never runs a command twice.
type Deduper interface {
	FirstSeen(ctx context.Context, key string) (bool, error)
}

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
	tokens   []string // for redaction
	signing  string
	allowed  map[string]bool
	dms      bool
	dedupe   Deduper
	denied   func(ctx context.Context, identity, chat, reason string)
	log      *slog.Logger
	queue    chan item
	qmu      sync.RWMutex
	qclosed  bool
	hmu      sync.RWMutex
	handler  commands.Handler
	botUser  string // the bot's own user id, from auth.test in Run
	amu      sync.Mutex
	attached map[string]bool
	// attachLog keeps attached's keys oldest first, for eviction.
	attachLog []string
	rmu       sync.Mutex
	refusals  map[string]time.Time
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
		mode:     mode,
		signing:  o.SigningSecret.Reveal(),
		allowed:  map[string]bool{},
		dms:      o.DirectMessages,
		dedupe:   o.Dedupe,
		denied:   o.Denied,
		log:      o.Log,
		queue:    make(chan item, queueSize),
		handler:  h,
		attached: map[string]bool{},
		refusals: map[string]time.Time{},
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	for _, s := range []audit.Secret{o.BotToken, o.AppToken, o.SigningSecret} {
		if !s.IsZero() {
			a.tokens = append(a.tokens, s.Reveal())
		}
	}
	for _, c := range o.AllowedChannels {
		a.allowed[c] = true
	}
	opts := []slackgo.Option{slackgo.OptionAPIURL(api), slackgo.OptionHTTPClient(client)}
	if !o.AppToken.IsZero() {
		opts = append(opts, slackgo.OptionAppLevelToken(o.AppToken.Reveal()))
	}
	a.api = slackgo.New(o.BotToken.Reveal(), opts...)
	return a, nil
}

// SetHandler sets where requests go.
func (a *Adapter) SetHandler(h commands.Handler) {
	a.hmu.Lock()
	defer a.hmu.Unlock()
	a.handler = h
}

func (a *Adapter) current() (commands.Handler, string) {
	a.hmu.RLock()
	defer a.hmu.RUnlock()
	return a.handler, a.botUser
}

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
	a.hmu.Lock()
	a.botUser = me.UserID
	a.hmu.Unlock()
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

// process handles one request. It runs on past the end of ctx (a shutdown
// must not cut a command in half) but within handleTimeout. A dedupe failure
// counts as "do not handle": running a deploy twice is worse than asking to
// retry.
func (a *Adapter) process(ctx context.Context, it item) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handleTimeout)
	defer cancel()
	fresh, err := a.dedupe.FirstSeen(ctx, it.key)
	if err != nil {
		a.log.Error("slack: request not handled: dedupe failed", "key", it.key, "err", err)
		if it.button {
			a.ephemeral(ctx, it.req.Chat, it.user, "shipbot could not record this click; please try again")
		}
		return
	}
	if !fresh {
		a.log.Info("slack: duplicate delivery ignored", "key", it.key)
		return
	}
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
// ends (nil). A bot that gave up on a network blip at boot would run on deaf.
func (a *Adapter) retry(ctx context.Context, what string, f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		var se slackgo.SlackErrorResponse
		if errors.As(err, &se) || strings.Contains(err.Error(), "invalid_auth") || strings.Contains(err.Error(), "not_authed") ||
			strings.Contains(err.Error(), "account_inactive") || strings.Contains(err.Error(), "token_revoked") {
			return fmt.Errorf("slack: %s: %w (is chat.slack.bot_token right?)", what, a.redact(err))
		}
		a.log.Warn("slack: "+what+" failed; retrying", "in", wait, "err", a.redact(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// allowedChannel reports whether requests from channel may run.
func (a *Adapter) allowedChannel(channel string, dm bool) bool {
	if dm || strings.HasPrefix(channel, "D") {
		return a.dms
	}
	return a.allowed[channel]
}

// refuse reports a request from a channel that may not use the bot, and says
// whether the person should be told (at most once a minute per channel).
func (a *Adapter) refuse(ctx context.Context, user string, ch notify.Channel) (string, bool) {
	reason := "channel not allowed"
	if strings.HasPrefix(ch.ID, "D") {
		reason = "direct messages are not allowed"
	}
	a.log.Warn("slack: request refused", "user", user, "channel", ch.ID, "reason", reason)
	if a.denied != nil {
		a.denied(ctx, "slack:"+user, ch.String(), reason)
	}
	a.rmu.Lock()
	defer a.rmu.Unlock()
	if last, ok := a.refusals[ch.ID]; ok && time.Since(last) < refusalEvery {
		return "", false
	}
	a.refusals[ch.ID] = time.Now()
	msg := "shipbot is not enabled in this channel; ask an admin to add its id to chat.slack.channels."
	if strings.HasPrefix(ch.ID, "D") {
		msg = "shipbot does not take commands in direct messages here; use an allowed channel."
	}
	return msg, true
}

// logWriter sends socketmode's internal log lines to slog, redacted.
type logWriter struct{ a *Adapter }

func (w logWriter) Output(_ int, s string) error {
	w.a.log.Debug("slack: socketmode", "msg", w.a.redactText(strings.TrimSpace(s)))
	return nil
}

// redact removes tokens from an error's text.
func (a *Adapter) redact(err error) error {
	if err == nil {
		return nil
	}
	if msg := a.redactText(err.Error()); msg != err.Error() {
		return &redacted{msg: msg, err: err}
	}
	return err
}

func (a *Adapter) redactText(s string) string {
	for _, t := range a.tokens {
		s = strings.ReplaceAll(s, t, "[redacted]")
	}
	return s
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
