// Package telegram is the Telegram chat adapter: it receives updates (long
// polling, or a webhook served on the bot's HTTP router), turns commands and
// button presses from allowed chats into commands.Requests carrying the
// verified from.id, and implements notify.Sender with HTML messages and
// inline keyboards.
package telegram

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// Platform is the notify.Channel platform name of Telegram chats.
const Platform = "telegram"

// Modes of receiving updates.
const (
	ModePolling = "polling"
	ModeWebhook = "webhook"
)

// DefaultAPIURL is the public Bot API server.
const DefaultAPIURL = "https://api.telegram.org"

// handleTimeout bounds the handling of one update. Handling continues past a
// shutdown (a command must not be cut in half) but not forever.
const handleTimeout = 30 * time.Second

// allowedUpdates are the only update kinds shipbot acts on; asking for just
// these keeps the rest of a group's traffic from reaching the bot at all.
var allowedUpdates = []string{"message", "callback_query"}

// Deduper remembers inbound update keys durably (sqlite.DB implements it), so
// an update Telegram delivers again (after a timeout, a restart, a webhook
// retry) never runs a command twice.
type Deduper interface {
	// FirstSeen records key and reports whether it was new.
	FirstSeen(ctx context.Context, key string) (bool, error)
}

// Options configure an Adapter.
type Options struct {
	// Token is the bot token from @BotFather. It is part of every request
	// URL and never logged.
	Token audit.Secret
	// APIURL is the Bot API server; empty means DefaultAPIURL.
	APIURL string
	// Mode is ModePolling (default) or ModeWebhook.
	Mode string
	// WebhookURL is the public URL Telegram posts updates to (webhook mode).
	WebhookURL string
	// WebhookSecret comes back from Telegram in X-Telegram-Bot-Api-Secret-Token;
	// required in webhook mode.
	WebhookSecret audit.Secret
	// AllowedChats may use the bot; anyone else gets a short refusal.
	AllowedChats []int64
	// Dedupe makes each update_id count once, across restarts. Required.
	Dedupe Deduper
	// Denied is told about requests refused here (chat not allowed) so the
	// caller can write an audit denial: identity is "telegram:FROM_ID", chat
	// a notify.Channel string.
	Denied func(ctx context.Context, identity, chat, reason string)
	// PollTimeout is the getUpdates long poll; default one minute.
	PollTimeout time.Duration
	Log         *slog.Logger
}

// Adapter is shipbot in Telegram. Send and Edit are safe from any goroutine;
// Run is called once.
type Adapter struct {
	b       *bot.Bot
	token   string
	mode    string
	hookURL string
	secret  string
	allowed map[int64]bool
	dedupe  Deduper
	denied  func(ctx context.Context, identity, chat, reason string)
	log     *slog.Logger

	hmu      sync.RWMutex
	handler  commands.Handler
	username string // the bot's @username, from getMe in Run

	amu       sync.Mutex
	attached  map[string]bool // refs whose Attachment has been sent
	attachLog []string        // keys of attached, oldest first, for eviction
	// attachFails counts failed uploads per ref: a chat where the bot may
	// not send files refuses every time, so after attachTries it stops.
	attachFails map[string]int

	rmu      sync.Mutex
	refusals map[int64]time.Time // last refusal message per unlisted chat

	lanes *commands.Lanes // one ordered lane per chat
}

var _ notify.Sender = (*Adapter)(nil)

// keepAttached bounds the memory of sent attachments; a card edited after
// thousands of others have ended is not going to be edited again.
const keepAttached = 4096

// attachTries is how often one message's attachment is tried: once with the
// message and once more with its next edit, for a passing network error.
const attachTries = 2

// refusalEvery limits refusal messages to an unlisted chat; every refused
// request is still reported to Denied.
const refusalEvery = time.Minute

// webhookSecretPattern is what Telegram accepts as a secret_token.
var webhookSecretPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// New checks o and returns an Adapter; nothing goes over the network until
// Run or Send. h may be nil and set later with SetHandler (the dispatcher
// needs the Sender first).
func New(o Options, h commands.Handler) (*Adapter, error) {
	if o.Token.IsZero() {
		return nil, errors.New("telegram: the token (chat.telegram.token) is required")
	}
	if strings.ContainsAny(o.Token.Reveal(), "/?#% \t\r\n") {
		return nil, errors.New("telegram: the token (chat.telegram.token) has characters a bot token never has")
	}
	if o.Dedupe == nil {
		return nil, errors.New("telegram: Dedupe is required (a redelivered update must not run twice)")
	}
	mode := o.Mode
	if mode == "" {
		mode = ModePolling
	}
	switch mode {
	case ModePolling:
	case ModeWebhook:
		if o.WebhookSecret.IsZero() {
			return nil, errors.New("telegram: chat.telegram.webhook_secret is required in webhook mode")
		}
		if !webhookSecretPattern.MatchString(o.WebhookSecret.Reveal()) {
			return nil, errors.New("telegram: chat.telegram.webhook_secret must be 1-256 characters of A-Z a-z 0-9 _ -")
		}
		if u, err := url.Parse(o.WebhookURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("telegram: chat.telegram.webhook_url must be an absolute http(s) URL in webhook mode")
		}
	default:
		return nil, fmt.Errorf("telegram: mode %q: want %q or %q", o.Mode, ModePolling, ModeWebhook)
	}
	api := strings.TrimRight(o.APIURL, "/")
	if api == "" {
		api = DefaultAPIURL
	}
	if u, err := url.Parse(api); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("telegram: api_url %q is not an http(s) URL", o.APIURL)
	}
	poll := o.PollTimeout
	if poll <= 0 {
		poll = time.Minute
	}
	a := &Adapter{
		token:    o.Token.Reveal(),
		mode:     mode,
		hookURL:  o.WebhookURL,
		secret:   o.WebhookSecret.Reveal(),
		allowed:  map[int64]bool{},
		dedupe:   o.Dedupe,
		denied:   o.Denied,
		log:      o.Log,
		handler:  h,
		attached: map[string]bool{}, attachFails: map[string]int{},
		lanes:    commands.NewLanes(0, 0),
		refusals: map[int64]time.Time{},
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	for _, id := range o.AllowedChats {
		a.allowed[id] = true
	}
	b, err := bot.New(a.token,
		bot.WithServerURL(api),
		bot.WithSkipGetMe(), // Run asks; New stays offline
		// The client outlives a long poll; sends are bounded by their callers' contexts.
		bot.WithHTTPClient(poll, &http.Client{Timeout: poll + 10*time.Second}),
		bot.WithDefaultHandler(func(ctx context.Context, _ *bot.Bot, u *models.Update) {
			a.lanes.Do(laneOf(u), func() { a.process(ctx, u) })
		}),
		// One library worker hands updates, in the order they came, to a
		// lane per chat: "/lock" then "/deploy" in one chat never swap,
		// while a slow command in one chat delays no other chat. Run waits
		// for the lanes, so it returns only once the updates it took are
		// handled.
		bot.WithNotAsyncHandlers(),
		bot.WithWorkers(1),
		bot.WithUpdatesChannelCap(1),
		bot.WithAllowedUpdates(allowedUpdates),
		bot.WithErrorsHandler(func(err error) { a.log.Warn("telegram", "err", a.redact(err)) }),
	)
	if err != nil {
		return nil, fmt.Errorf("telegram: %w", a.redact(err))
	}
	a.b = b
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
	return a.handler, a.username
}

// Mode is ModePolling or ModeWebhook.
func (a *Adapter) Mode() string { return a.mode }

// WebhookPath is the path of the webhook URL, where the HTTP router mounts
// WebhookHandler; "" in polling mode.
func (a *Adapter) WebhookPath() string {
	if a.mode != ModeWebhook {
		return ""
	}
	u, err := url.Parse(a.hookURL)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path
}

// Run announces the bot (getMe, setMyCommands) and receives updates until ctx
// ends. Polling: deleteWebhook first (Telegram refuses getUpdates while a
// webhook is set), then long polling. Webhook: setWebhook with the secret;
// updates then arrive through WebhookHandler. Pending updates are never
// dropped on a switch: Telegram keeps them, and Dedupe absorbs repeats.
// Start-up calls are retried while Telegram is unreachable; a token Telegram
// refuses is an error at once. Run returns nil when ctx ends.
func (a *Adapter) Run(ctx context.Context) error {
	var me *models.User
	err := a.retry(ctx, "getMe", func() (err error) {
		me, err = a.b.GetMe(ctx)
		return err
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	a.hmu.Lock()
	a.username = me.Username
	a.hmu.Unlock()
	a.log.Info("telegram: connected", "bot", "@"+me.Username, "mode", a.mode)
	if _, err := a.b.SetMyCommands(ctx, &bot.SetMyCommandsParams{Commands: Commands()}); err != nil {
		// The menu is a convenience; commands work without it.
		a.log.Warn("telegram: setMyCommands failed", "err", a.redact(err))
	}
	if a.mode == ModeWebhook {
		err := a.retry(ctx, "setWebhook", func() error {
			_, err := a.b.SetWebhook(ctx, &bot.SetWebhookParams{URL: a.hookURL, SecretToken: a.secret,
				AllowedUpdates: allowedUpdates})
			return err
		})
		if err != nil {
			return err
		}
		<-ctx.Done()
		a.lanes.Wait()
		return nil
	}
	err = a.retry(ctx, "deleteWebhook", func() error {
		_, err := a.b.DeleteWebhook(ctx, &bot.DeleteWebhookParams{})
		return err
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	a.b.Start(ctx)
	a.lanes.Wait()
	return nil
}

// retry calls f until it succeeds, Telegram refuses for good (a wrong
// token: 401, or 404 for one that is malformed), or ctx ends (nil). A bot
// that gave up on a network blip at boot would run on deaf to Telegram.
func (a *Adapter) retry(ctx context.Context, what string, f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, bot.ErrorUnauthorized) || errors.Is(err, bot.ErrorNotFound) {
			return fmt.Errorf("telegram: %s: %w (is chat.telegram.token right?)", what, a.redact(err))
		}
		a.log.Warn("telegram: "+what+" failed; retrying", "in", wait, "err", a.redact(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// Commands is the menu Telegram shows (setMyCommands), made from the
// dispatcher's help so the two cannot drift apart.
func Commands() []models.BotCommand {
	var out []models.BotCommand
	for _, l := range commands.HelpText() {
		name, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
		name = strings.TrimPrefix(name, "/")
		if !commandName.MatchString(name) || name == "start" {
			// Telegram's menu /start sends a bare /start, the welcome;
			// "/start APP ENV" is typed, as /help shows.
			continue
		}
		desc := strings.Join(strings.Fields(rest), " ")
		if desc == "" {
			desc = name
		}
		out = append(out, models.BotCommand{Command: name, Description: clipHead(desc, 250)})
	}
	return out
}

var commandName = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// redact removes the token from an error's text: the library masks it in
// URLs, but an error may quote a request elsewhere.
func (a *Adapter) redact(err error) error {
	if err == nil || a.token == "" || !strings.Contains(err.Error(), a.token) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), a.token, "[redacted]"), err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
