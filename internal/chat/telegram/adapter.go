package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// Deduper remembers inbound update ids durably, so an update Telegram
// delivers again (after a timeout, a restart, a webhook retry) never runs a
// command twice.
type Deduper interface {
	FirstSeen(ctx context.Context, key string) (bool, error)
}

// Options configure an Adapter.
type Options struct {
	Token         audit.Secret
	APIURL        string // default https://api.telegram.org
	Mode          string // "polling" (default) or "webhook"
	WebhookURL    string
	WebhookSecret audit.Secret
	AllowedChats  []int64
	Dedupe        Deduper
	// Denied is told about requests from chats not allowed to use the bot,
	// so the wiring can write an audit denial.
	Denied func(ctx context.Context, identity, chat, reason string)
	// PollTimeout is the getUpdates long-poll (default 1 minute).
	PollTimeout time.Duration
	Log         *slog.Logger
}

// Adapter is shipbot in Telegram: it receives updates (long polling or
// webhook), turns them into commands.Requests with the verified from.id, and
// is the notify.Sender for Telegram chats.
type Adapter struct {
	*Sender
	o Options
	b *bot.Bot

	mu      sync.RWMutex
	handler commands.Handler
	work    sync.WaitGroup
}

// Commands is the menu Telegram shows (setMyCommands).
var Commands = []models.BotCommand{
	{Command: "help", Description: "all commands"},
	{Command: "whoami", Description: "who you are and what you may do"},
	{Command: "apps", Description: "apps, envs, current release, locks"},
	{Command: "deploy", Description: "APP ENV [REF] [--plan]"},
	{Command: "rollback", Description: "APP ENV [RELEASE]"},
	{Command: "releases", Description: "APP ENV"},
	{Command: "status", Description: "APP ENV"},
	{Command: "logs", Description: "APP ENV [LINES]"},
	{Command: "jobs", Description: "recent jobs"},
	{Command: "job", Description: "ID"},
	{Command: "cancel", Description: "ID"},
	{Command: "lock", Description: "APP ENV REASON"},
	{Command: "unlock", Description: "APP ENV"},
	{Command: "pending", Description: "approvals waiting"},
	{Command: "approve", Description: "ID"},
	{Command: "deny", Description: "ID"},
	{Command: "audit", Description: "[N] [app=] [env=] [user=]"},
}

// New builds the adapter; Run starts receiving. h may be set later with SetHandler.
func New(o Options, h commands.Handler) (*Adapter, error) {
	if o.Token.IsZero() {
		return nil, errors.New("chat.telegram.token is required")
	}
	if o.Mode == "" {
		o.Mode = "polling"
	}
	if o.Mode == "webhook" && o.WebhookSecret.IsZero() {
		return nil, errors.New("chat.telegram.webhook_secret is required in webhook mode")
	}
	if o.Dedupe == nil {
		return nil, errors.New("telegram: a durable Deduper is required")
	}
	if o.APIURL == "" {
		o.APIURL = "https://api.telegram.org"
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	a := &Adapter{o: o, handler: h}
	token := o.Token.Reveal()
	b, err := bot.New(token,
		bot.WithServerURL(strings.TrimRight(o.APIURL, "/")),
		bot.WithSkipGetMe(),
		bot.WithHTTPClient(o.PollTimeout, &http.Client{Timeout: o.PollTimeout + 10*time.Second}),
		bot.WithDefaultHandler(func(ctx context.Context, _ *bot.Bot, u *models.Update) { a.process(ctx, u) }),
		bot.WithAllowedUpdates(bot.AllowedUpdates{"message", "callback_query"}),
		bot.WithErrorsHandler(func(err error) {
			// The library puts the token in some messages (request URLs).
			o.Log.Warn("telegram", "err", strings.ReplaceAll(err.Error(), token, "[redacted]"))
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("telegram: %s", strings.ReplaceAll(err.Error(), token, "[redacted]"))
	}
	a.b = b
	a.Sender = NewSender(b)
	return a, nil
}

// SetHandler sets where requests go.
func (a *Adapter) SetHandler(h commands.Handler) {
	a.mu.Lock()
	a.handler = h
	a.mu.Unlock()
}

// Run registers the command menu, then receives updates until ctx ends:
// long polling (after removing any webhook, which would block getUpdates),
// or in webhook mode registers the webhook with its secret token.
func (a *Adapter) Run(ctx context.Context) error {
	if _, err := a.b.SetMyCommands(ctx, &bot.SetMyCommandsParams{Commands: Commands}); err != nil {
		a.o.Log.Warn("telegram: setMyCommands failed", "err", err)
	}
	switch a.o.Mode {
	case "webhook":
		if _, err := a.b.SetWebhook(ctx, &bot.SetWebhookParams{URL: a.o.WebhookURL, SecretToken: a.o.WebhookSecret.Reveal(),
			AllowedUpdates: []string{"message", "callback_query"}}); err != nil {
			return fmt.Errorf("telegram setWebhook: %w", err)
		}
		<-ctx.Done()
	default:
		if _, err := a.b.DeleteWebhook(ctx, &bot.DeleteWebhookParams{}); err != nil {
			return fmt.Errorf("telegram deleteWebhook: %w", err)
		}
		a.b.Start(ctx)
	}
	a.work.Wait()
	return nil
}

// WebhookHandler receives updates Telegram posts. It checks the secret token
// header in constant time before reading anything (401 without it, 403 when
// wrong), caps the body, answers at once and handles the update afterwards.
func (a *Adapter) WebhookHandler() http.Handler {
	want := []byte(a.o.WebhookSecret.Reveal())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
		if got == "" {
			http.Error(w, "missing secret token", http.StatusUnauthorized)
			return
		}
		if len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			http.Error(w, "wrong secret token", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		var u models.Update
		if err := json.Unmarshal(body, &u); err != nil {
			http.Error(w, "not an update", http.StatusBadRequest)
			return
		}
		a.work.Add(1)
		go func() {
			defer a.work.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			a.process(ctx, &u)
		}()
		w.WriteHeader(http.StatusOK)
	})
}

// process handles one update once.
func (a *Adapter) process(ctx context.Context, u *models.Update) {
	fresh, err := a.o.Dedupe.FirstSeen(ctx, "telegram:update:"+strconv.FormatInt(u.ID, 10))
	if err != nil {
		a.o.Log.Error("telegram: update not processed, dedupe failed", "update", u.ID, "err", err)
		return
	}
	if !fresh {
		a.o.Log.Info("telegram: duplicate update ignored", "update", u.ID)
		return
	}
	switch {
	case u.Message != nil:
		a.message(ctx, u.Message)
	case u.CallbackQuery != nil:
		a.callback(ctx, u.CallbackQuery)
	}
}

func (a *Adapter) allowed(chat int64) bool { return slices.Contains(a.o.AllowedChats, chat) }

func (a *Adapter) currentHandler() commands.Handler {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.handler
}

func channelOf(chat int64, m *models.Message) notify.Channel {
	ch := notify.Channel{Platform: Platform, ID: strconv.FormatInt(chat, 10)}
	if m != nil && m.IsTopicMessage && m.MessageThreadID != 0 {
		ch.Thread = strconv.Itoa(m.MessageThreadID)
	}
	return ch
}

// commandText returns the command in m, or "" when m is not for the bot:
// in groups only messages starting with a bot_command entity count
// ("/deploy@shipbot …"); in a private chat plain "deploy …" does too.
func commandText(m *models.Message) string {
	text := strings.TrimSpace(m.Text)
	if text == "" {
		return ""
	}
	for _, e := range m.Entities {
		if e.Type == models.MessageEntityTypeBotCommand && e.Offset == 0 {
			return text
		}
	}
	if m.Chat.Type == models.ChatTypePrivate {
		return text
	}
	return ""
}

func (a *Adapter) message(ctx context.Context, m *models.Message) {
	if m.From == nil || m.From.IsBot {
		return
	}
	text := commandText(m)
	if text == "" {
		return
	}
	identity := Platform + ":" + strconv.FormatInt(m.From.ID, 10)
	ch := channelOf(m.Chat.ID, m)
	if !a.allowed(m.Chat.ID) {
		if a.o.Denied != nil {
			a.o.Denied(ctx, identity, ch.String(), "chat not allowed")
		}
		_, _ = a.Send(ctx, ch, notify.Message{Title: "Refused", Style: notify.StyleDanger,
			Text: "This chat may not use shipbot. An admin can add its id (" + ch.ID + ") to chat.telegram.chats."})
		return
	}
	h := a.currentHandler()
	if h == nil {
		return
	}
	h.Handle(ctx, commands.Request{Platform: Platform, UserID: strconv.FormatInt(m.From.ID, 10),
		UserName: m.From.Username, Chat: ch, Text: text})
}

func (a *Adapter) callback(ctx context.Context, q *models.CallbackQuery) {
	answer := func(text string, alert bool) {
		if _, err := a.b.AnswerCallbackQuery(ctx, &bot.AnswerCallbackQueryParams{CallbackQueryID: q.ID,
			Text: clip(text, 190), ShowAlert: alert}); err != nil {
			a.o.Log.Warn("telegram: answerCallbackQuery failed", "err", err)
		}
	}
	// The message may be too old to be accessible; the button's data still
	// names what it is for, and the chat is still known.
	var chat int64
	var msg *models.Message
	switch {
	case q.Message.Message != nil:
		msg = q.Message.Message
		chat = msg.Chat.ID
	case q.Message.InaccessibleMessage != nil:
		chat = q.Message.InaccessibleMessage.Chat.ID
	default:
		chat = q.From.ID
	}
	identity := Platform + ":" + strconv.FormatInt(q.From.ID, 10)
	ch := channelOf(chat, msg)
	if !a.allowed(chat) {
		if a.o.Denied != nil {
			a.o.Denied(ctx, identity, ch.String(), "chat not allowed")
		}
		answer("This chat may not use shipbot.", true)
		return
	}
	h := a.currentHandler()
	if h == nil {
		answer("shipbot is starting; try again", true)
		return
	}
	r := h.Handle(ctx, commands.Request{Platform: Platform, UserID: strconv.FormatInt(q.From.ID, 10),
		UserName: q.From.Username, Chat: ch, Action: q.Data})
	answer(r.Notice, r.Refused)
}
