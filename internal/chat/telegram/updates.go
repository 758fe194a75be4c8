package telegram

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/chat"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// SecretHeader carries the webhook secret in Telegram's webhook requests.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// maxUpdateBody bounds one webhook request; an update is a few kilobytes.
const maxUpdateBody = 1 << 20

// maxNotice is Telegram's limit for answerCallbackQuery text.
const maxNotice = 200

// process handles one update from either source. It runs on past the end of
// ctx (a shutdown must not cut a command in half) but within chat.HandleTimeout.
func (a *Adapter) process(ctx context.Context, u *models.Update) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chat.HandleTimeout)
	defer cancel()
	switch {
	case u.Message != nil:
		a.onMessage(ctx, u.ID, u.Message)
	case u.CallbackQuery != nil:
		a.onCallback(ctx, u.ID, u.CallbackQuery)
	}
}

// laneOf is the chat an update belongs to: its requests are handled in
// order, other chats' side by side. A private chat's id is the person's.
func laneOf(u *models.Update) string {
	switch {
	case u.Message != nil:
		return strconv.FormatInt(u.Message.Chat.ID, 10)
	case u.CallbackQuery != nil && u.CallbackQuery.Message.Message != nil:
		return strconv.FormatInt(u.CallbackQuery.Message.Message.Chat.ID, 10)
	case u.CallbackQuery != nil && u.CallbackQuery.Message.InaccessibleMessage != nil:
		return strconv.FormatInt(u.CallbackQuery.Message.InaccessibleMessage.Chat.ID, 10)
	case u.CallbackQuery != nil:
		return "user:" + strconv.FormatInt(u.CallbackQuery.From.ID, 10)
	}
	return "other"
}

// updateKey is the dedupe key of update id.
func updateKey(id int64) string { return "telegram:update:" + strconv.FormatInt(id, 10) }

func (a *Adapter) onMessage(ctx context.Context, id int64, m *models.Message) {
	if m.From == nil || m.From.IsBot {
		return
	}
	h, username := a.current()
	text, ok := commandText(m, username)
	if !ok {
		return
	}
	if h == nil {
		a.log.Warn("telegram: command before the handler is set; dropped", "update", id)
		return
	}
	ch := channelOf(m)
	in := chat.Inbound{Key: updateKey(id), Identity: identityOf(m.From.ID), Chat: ch}
	if !a.allowed[m.Chat.ID] {
		in.Refusal = notAllowed(ch)
	}
	switch a.gate.Check(ctx, in) {
	case chat.RefusedTell:
		a.tellRefused(ctx, ch, m.Chat.ID)
	case chat.Pass:
		req := commands.Request{Platform: Platform, UserID: strconv.FormatInt(m.From.ID, 10),
			UserName: displayName(m.From), Chat: ch, Text: text}
		if m.Chat.Type != models.ChatTypePrivate {
			req.ReplyTo = strconv.Itoa(m.ID)
		}
		h.Handle(ctx, req)
	}
}

func (a *Adapter) onCallback(ctx context.Context, id int64, q *models.CallbackQuery) {
	h, _ := a.current()
	if h == nil {
		a.answer(ctx, q.ID, "shipbot is starting; press again in a moment", true)
		return
	}
	// The chat comes from the message the button is on. A message too old
	// for the bot to read still names its chat, and the button data alone
	// says what to do.
	in := chat.Inbound{Key: updateKey(id), Identity: identityOf(q.From.ID)}
	var msgID int
	refusal := "This chat may not use shipbot."
	switch {
	case q.Message.Message != nil:
		in.Chat, msgID = channelOf(q.Message.Message), q.Message.Message.ID
	case q.Message.InaccessibleMessage != nil:
		msgID = q.Message.InaccessibleMessage.MessageID
		in.Chat = notify.Channel{Platform: Platform, ID: strconv.FormatInt(q.Message.InaccessibleMessage.Chat.ID, 10)}
	default:
		// Inline-mode messages have no chat; shipbot never posts any.
		in.Chat = notify.Channel{Platform: Platform, ID: "?"}
		in.Refusal, refusal = "button press outside a chat", "This button cannot be used here."
	}
	if chatID, err := strconv.ParseInt(in.Chat.ID, 10, 64); in.Refusal == "" && (err != nil || !a.allowed[chatID]) {
		in.Refusal = notAllowed(in.Chat)
	}
	switch a.gate.Check(ctx, in) {
	case chat.Retry:
		a.answer(ctx, q.ID, "shipbot could not take this press; try again", true)
	case chat.Refused, chat.RefusedTell:
		// Only the presser sees the answer: it is given every time.
		a.answer(ctx, q.ID, refusal, true)
	case chat.Pass:
		if q.Data == "" {
			a.answer(ctx, q.ID, "", false)
			return
		}
		rep := h.Handle(ctx, commands.Request{Platform: Platform, UserID: strconv.FormatInt(q.From.ID, 10),
			UserName: displayName(&q.From), Chat: in.Chat, Action: q.Data, Message: strconv.Itoa(msgID)})
		a.answer(ctx, q.ID, rep.Notice, rep.Refused)
	}
	// chat.Drop: answered when it was first handled.
}

// answer stops the button's spinner; a refusal is an alert the presser must dismiss.
func (a *Adapter) answer(ctx context.Context, queryID, notice string, alert bool) {
	_, err := a.b.AnswerCallbackQuery(ctx, &bot.AnswerCallbackQueryParams{CallbackQueryID: queryID,
		Text: clipHeadFit(chat.OneLine(notice), maxNotice), ShowAlert: alert})
	if err != nil {
		a.log.Warn("telegram: answerCallbackQuery failed", "err", a.redact(err))
	}
}

func notAllowed(ch notify.Channel) string {
	return "chat " + ch.String() + " is not in chat.telegram.chats"
}

// tellRefused tells a chat that is not allowed how an admin can allow it
// (the gate lets this through at most once a minute per chat).
func (a *Adapter) tellRefused(ctx context.Context, ch notify.Channel, chatID int64) {
	msg := notify.Message{Title: "Refused", Style: notify.StyleDanger,
		Text: fmt.Sprintf("This chat may not use shipbot. An admin can allow it by adding %d to chat.telegram.chats.", chatID)}
	if _, err := a.Send(ctx, ch, msg); err != nil {
		a.log.Warn("telegram: refusal not sent", "chat", ch.String(), "err", err)
	}
}

// commandText returns the command line in m, if m is a command for this bot:
// a message starting with a bot_command entity ("/deploy", "/deploy@thisbot";
// in groups a bare name must be one of shipbot's), or in a private chat
// plain text starting with a command name ("deploy demo staging").
func commandText(m *models.Message, username string) (string, bool) {
	text := m.Text
	if text == "" {
		return "", false
	}
	private := m.Chat.Type == models.ChatTypePrivate
	for _, e := range m.Entities {
		if e.Type != models.MessageEntityTypeBotCommand || e.Offset != 0 {
			continue
		}
		cmd, ok := utf16Prefix(text, e.Length)
		if !ok || !strings.HasPrefix(cmd, "/") {
			return "", false
		}
		name, at, addressed := strings.Cut(cmd[1:], "@")
		if addressed && username != "" && !strings.EqualFold(at, username) {
			return "", false // for another bot in the group
		}
		name = strings.ToLower(name)
		rest := text[len(cmd):]
		if strings.TrimSpace(rest) == "" {
			// Bare /start is what Telegram sends when someone opens the
			// chat: the welcome. "/start APP ENV" starts an app.
			name = commands.Bare(Platform, name)
		}
		if !private && !addressed && !commands.Known(name) {
			return "", false
		}
		return "/" + name + rest, true
	}
	if private {
		first, _, _ := strings.Cut(strings.TrimSpace(text), " ")
		if commands.Known(strings.ToLower(strings.TrimPrefix(first, "/"))) {
			return strings.TrimSpace(text), true
		}
	}
	return "", false
}

// utf16Prefix is the start of s that is n UTF-16 code units long (entity
// offsets and lengths count those).
func utf16Prefix(s string, n int) (string, bool) {
	units := 0
	for i, r := range s {
		if units == n {
			return s[:i], true
		}
		units += utf16.RuneLen(r)
		if units > n {
			return "", false
		}
	}
	return s, units == n
}

func channelOf(m *models.Message) notify.Channel {
	ch := notify.Channel{Platform: Platform, ID: strconv.FormatInt(m.Chat.ID, 10)}
	if m.IsTopicMessage && m.MessageThreadID != 0 {
		ch.Thread = strconv.Itoa(m.MessageThreadID)
	}
	return ch
}

func identityOf(userID int64) string { return Platform + ":" + strconv.FormatInt(userID, 10) }

func displayName(u *models.User) string {
	if u.Username != "" {
		return "@" + u.Username
	}
	return strings.TrimSpace(u.FirstName + " " + u.LastName)
}

// WebhookHandler receives updates in webhook mode. It checks the secret
// itself, in constant time, and answers 401 without it and 403 when wrong
// (the library's own handler answers 200 either way, which hides a
// misconfiguration); bodies over 1 MiB get 413. An update is handled before
// the answer, so Telegram redelivers it if shipbot dies halfway, and Dedupe
// keeps the redelivery from running twice.
func (a *Adapter) WebhookHandler() http.Handler {
	want := sha256.Sum256([]byte(a.secret))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.mode != ModeWebhook {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		got := r.Header.Get(SecretHeader)
		if got == "" {
			a.log.Warn("telegram webhook: request without the secret token", "remote", r.RemoteAddr)
			http.Error(w, "secret token required", http.StatusUnauthorized)
			return
		}
		// Hashing first makes the comparison take the same time whatever
		// the lengths.
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			a.log.Warn("telegram webhook: wrong secret token", "remote", r.RemoteAddr)
			http.Error(w, "wrong secret token", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUpdateBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "update too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		var u models.Update
		if err := json.Unmarshal(body, &u); err != nil || u.ID <= 0 {
			http.Error(w, "not a Telegram update", http.StatusBadRequest)
			return
		}
		// Handled (in its chat's lane) before the answer, as above.
		<-a.lanes.Do(laneOf(&u), func() { a.process(r.Context(), &u) })
		w.WriteHeader(http.StatusOK)
	})
}
