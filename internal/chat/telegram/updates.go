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
	"time"
	"unicode/utf16"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// SecretHeader carries the webhook secret in Telegram's webhook requests.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// maxUpdateBody bounds one webhook request; an update is a few kilobytes.
const maxUpdateBody = 1 << 20

// maxNotice is Telegram's limit for answerCallbackQuery text.
const maxNotice = 200

// knownCommands are the dispatcher's command names. In groups only these are
// taken without an @mention: other bots' /commands are none of shipbot's business.
var knownCommands = func() map[string]bool {
	m := map[string]bool{"start": true} // not in the menu, see Commands
	for _, c := range Commands() {
		m[c.Command] = true
	}
	return m
}()

// process handles one update from either source. It runs on past the end of
// ctx (a shutdown must not cut a command in half) but within handleTimeout.
func (a *Adapter) process(ctx context.Context, u *models.Update) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handleTimeout)
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

// firstSeen reports whether update id is new. A dedupe failure counts as
// "do not handle": running a deploy twice is worse than asking to retry.
func (a *Adapter) firstSeen(ctx context.Context, id int64) (bool, error) {
	fresh, err := a.dedupe.FirstSeen(ctx, "telegram:update:"+strconv.FormatInt(id, 10))
	if err != nil {
		a.log.Error("telegram: update not handled: dedupe failed", "update", id, "err", err)
		return false, err
	}
	if !fresh {
		a.log.Info("telegram: duplicate update ignored", "update", id)
	}
	return fresh, nil
}

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
	if fresh, _ := a.firstSeen(ctx, id); !fresh {
		return
	}
	ch := channelOf(m)
	if !a.allowed[m.Chat.ID] {
		a.refuse(ctx, identityOf(m.From.ID), ch, m.Chat.ID)
		return
	}
	req := commands.Request{Platform: Platform, UserID: strconv.FormatInt(m.From.ID, 10),
		UserName: displayName(m.From), Chat: ch, Text: text}
	if m.Chat.Type != models.ChatTypePrivate {
		req.ReplyTo = strconv.Itoa(m.ID)
	}
	h.Handle(ctx, req)
}

func (a *Adapter) onCallback(ctx context.Context, id int64, q *models.CallbackQuery) {
	h, _ := a.current()
	if h == nil {
		a.answer(ctx, q.ID, "shipbot is starting; press again in a moment", true)
		return
	}
	fresh, err := a.firstSeen(ctx, id)
	if err != nil {
		a.answer(ctx, q.ID, "shipbot could not take this press; try again", true)
		return
	}
	if !fresh {
		return // answered when it was first handled
	}
	identity := identityOf(q.From.ID)
	if q.Data == "" {
		a.answer(ctx, q.ID, "", false)
		return
	}
	// The chat comes from the message the button is on. A message too old
	// for the bot to read still names its chat, and the button data alone
	// says what to do.
	var ch notify.Channel
	var chatID int64
	var msgID int
	switch {
	case q.Message.Message != nil:
		ch, chatID, msgID = channelOf(q.Message.Message), q.Message.Message.Chat.ID, q.Message.Message.ID
	case q.Message.InaccessibleMessage != nil:
		chatID, msgID = q.Message.InaccessibleMessage.Chat.ID, q.Message.InaccessibleMessage.MessageID
		ch = notify.Channel{Platform: Platform, ID: strconv.FormatInt(chatID, 10)}
	default:
		// Inline-mode messages have no chat; shipbot never posts any.
		a.answer(ctx, q.ID, "This button cannot be used here.", true)
		a.deny(ctx, identity, Platform+":?", "button press outside a chat")
		return
	}
	if !a.allowed[chatID] {
		a.answer(ctx, q.ID, "This chat may not use shipbot.", true)
		a.deny(ctx, identity, ch.String(), notAllowed(ch))
		return
	}
	rep := h.Handle(ctx, commands.Request{Platform: Platform, UserID: strconv.FormatInt(q.From.ID, 10),
		UserName: displayName(&q.From), Chat: ch, Action: q.Data, Message: strconv.Itoa(msgID)})
	a.answer(ctx, q.ID, rep.Notice, rep.Refused)
}

// answer stops the button's spinner; a refusal is an alert the presser must dismiss.
func (a *Adapter) answer(ctx context.Context, queryID, notice string, alert bool) {
	_, err := a.b.AnswerCallbackQuery(ctx, &bot.AnswerCallbackQueryParams{CallbackQueryID: queryID,
		Text: clipHeadFit(oneLine(notice), maxNotice), ShowAlert: alert})
	if err != nil {
		a.log.Warn("telegram: answerCallbackQuery failed", "err", a.redact(err))
	}
}

func notAllowed(ch notify.Channel) string {
	return "chat " + ch.String() + " is not in chat.telegram.chats"
}

func (a *Adapter) deny(ctx context.Context, identity, chat, reason string) {
	a.log.Warn("telegram: request refused", "identity", identity, "chat", chat, "reason", reason)
	if a.denied != nil {
		a.denied(ctx, identity, chat, reason)
	}
}

// refuse answers a command from a chat that is not allowed. The chat hears
// it at most once a minute, so a hostile group cannot make the bot spam; the
// denial is recorded every time.
func (a *Adapter) refuse(ctx context.Context, identity string, ch notify.Channel, chatID int64) {
	a.deny(ctx, identity, ch.String(), notAllowed(ch))
	now := time.Now()
	a.rmu.Lock()
	last, seen := a.refusals[chatID]
	tell := !seen || now.Sub(last) >= refusalEvery
	if tell {
		if len(a.refusals) > 1000 {
			for id, t := range a.refusals {
				if now.Sub(t) >= refusalEvery {
					delete(a.refusals, id)
				}
			}
		}
		a.refusals[chatID] = now
	}
	a.rmu.Unlock()
	if !tell {
		return
	}
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
		if name == "start" && strings.TrimSpace(rest) == "" {
			// Bare /start is what Telegram sends when someone opens the
			// chat: the welcome. "/start APP ENV" starts an app.
			name = "help"
		}
		if !private && !addressed && !knownCommands[name] {
			return "", false
		}
		return "/" + name + rest, true
	}
	if private {
		first, _, _ := strings.Cut(strings.TrimSpace(text), " ")
		if knownCommands[strings.ToLower(strings.TrimPrefix(first, "/"))] {
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
