package telegram

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/notify"
)

// Platform is the notify.Channel platform name of Telegram chats.
const Platform = "telegram"

// Sender posts and edits messages through the Bot API. Channel.ID is the chat
// id; Channel.Thread a forum topic id.
type Sender struct {
	b *bot.Bot
}

var _ notify.Sender = (*Sender)(nil)

// NewSender wraps a configured bot client.
func NewSender(b *bot.Bot) *Sender { return &Sender{b: b} }

// retryAfter is a 429 in notify's terms, so the card updater waits as told.
type retryAfter struct {
	err   error
	after time.Duration
}

func (e *retryAfter) Error() string             { return e.err.Error() }
func (e *retryAfter) Unwrap() error             { return e.err }
func (e *retryAfter) RetryAfter() time.Duration { return e.after }

var _ notify.RetryAfterError = (*retryAfter)(nil)

// mapErr turns the library's errors into what the rest of shipbot expects.
func mapErr(err error) error {
	var tooMany *bot.TooManyRequestsError
	if errors.As(err, &tooMany) {
		return &retryAfter{err: err, after: time.Duration(tooMany.RetryAfter) * time.Second}
	}
	return err
}

func chatAndThread(ch notify.Channel) (int64, int, error) {
	id, err := strconv.ParseInt(ch.ID, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("telegram chat id %q is not a number", ch.ID)
	}
	thread := 0
	if ch.Thread != "" {
		if thread, err = strconv.Atoi(ch.Thread); err != nil {
			return 0, 0, fmt.Errorf("telegram topic id %q is not a number", ch.Thread)
		}
	}
	return id, thread, nil
}

// Send posts m; a message with an Attachment is followed by the file.
func (s *Sender) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	chat, thread, err := chatAndThread(ch)
	if err != nil {
		return notify.Ref{}, err
	}
	text, kb := Render(m)
	p := &bot.SendMessageParams{ChatID: chat, MessageThreadID: thread, Text: text, ParseMode: models.ParseModeHTML,
		LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()}}
	if kb != nil {
		p.ReplyMarkup = kb
	}
	msg, err := s.b.SendMessage(ctx, p)
	if err != nil {
		return notify.Ref{}, mapErr(err)
	}
	ref := notify.Ref{Channel: ch, ID: strconv.Itoa(msg.ID)}
	return ref, s.attach(ctx, chat, thread, m)
}

// Edit replaces the message's text and buttons. Telegram answers an edit to
// identical content with "message is not modified": that is success.
func (s *Sender) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	chat, thread, err := chatAndThread(ref.Channel)
	if err != nil {
		return err
	}
	id, err := strconv.Atoi(ref.ID)
	if err != nil {
		return fmt.Errorf("telegram message id %q is not a number", ref.ID)
	}
	text, kb := Render(m)
	p := &bot.EditMessageTextParams{ChatID: chat, MessageID: id, Text: text, ParseMode: models.ParseModeHTML,
		LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()}}
	if kb != nil {
		p.ReplyMarkup = kb
	} else {
		// An empty keyboard removes the buttons of a card that has ended.
		p.ReplyMarkup = &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{}}
	}
	if _, err := s.b.EditMessageText(ctx, p); err != nil && !strings.Contains(err.Error(), "message is not modified") {
		return mapErr(err)
	}
	return s.attach(ctx, chat, thread, m)
}

// attach sends m's attachment (a full job log) as a document.
func (s *Sender) attach(ctx context.Context, chat int64, thread int, m notify.Message) error {
	if m.Attachment == nil {
		return nil
	}
	_, err := s.b.SendDocument(ctx, &bot.SendDocumentParams{ChatID: chat, MessageThreadID: thread,
		Document: &models.InputFileUpload{Filename: m.Attachment.Name, Data: bytes.NewReader(m.Attachment.Content)}})
	return mapErr(err)
}
