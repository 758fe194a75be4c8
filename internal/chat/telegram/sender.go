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

	"github.com/shipbot/shipbot/internal/chat"
	"github.com/shipbot/shipbot/internal/notify"
)

// apiErr turns the library's errors into what the rest of shipbot expects.
func (a *Adapter) apiErr(method string, err error) error {
	err = fmt.Errorf("telegram %s: %w", method, a.redact(err))
	var tooMany *bot.TooManyRequestsError
	if errors.As(err, &tooMany) {
		after := time.Duration(tooMany.RetryAfter) * time.Second
		if after <= 0 {
			after = time.Second
		}
		return notify.SlowDown(err, after) // the relay waits as told
	}
	return err
}

// messageGone is Telegram's answer to an edit of a message that was deleted:
// 400 {"ok":false,"error_code":400,"description":"Bad Request: message to
// edit not found"} (https://core.telegram.org/bots/api#making-requests: an
// unsuccessful request has ok false, error_code and a human-readable
// description; the description text is what Telegram sends for
// editMessageText on a deleted message).
func messageGone(err error) bool {
	return errors.Is(err, bot.ErrorBadRequest) && strings.Contains(err.Error(), "message to edit not found")
}

// notModified is Telegram's answer to an edit that changes nothing.
func notModified(err error) bool {
	return errors.Is(err, bot.ErrorBadRequest) && strings.Contains(err.Error(), "message is not modified")
}

func chatAndThread(ch notify.Channel) (int64, int, error) {
	id, err := strconv.ParseInt(ch.ID, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("telegram chat id %q is not a number", ch.ID)
	}
	thread := 0
	if ch.Thread != "" {
		if thread, err = strconv.Atoi(ch.Thread); err != nil || thread <= 0 {
			return 0, 0, fmt.Errorf("telegram topic id %q is not a number", ch.Thread)
		}
	}
	return id, thread, nil
}

// checkButtons refuses what Telegram would refuse, before anything is sent.
func checkButtons(bs []notify.Button) error {
	for _, b := range bs {
		if n := len(b.Data); n == 0 || n > 64 {
			return fmt.Errorf("telegram: button %q: data must be 1-64 bytes, is %d", b.Label, n)
		}
	}
	return nil
}

var noPreview = &models.LinkPreviewOptions{IsDisabled: bot.True()}

// Send posts m to ch (ID the chat id, Thread a forum topic id). A message
// with an Attachment is followed by the file, as a reply to it.
func (a *Adapter) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	chatID, thread, err := chatAndThread(ch)
	if err != nil {
		return notify.Ref{}, err
	}
	if err := checkButtons(m.Buttons); err != nil {
		return notify.Ref{}, err
	}
	text, kb := Render(m)
	p := &bot.SendMessageParams{ChatID: chatID, MessageThreadID: thread, Text: text, ParseMode: models.ParseModeHTML,
		LinkPreviewOptions: noPreview}
	if kb != nil {
		p.ReplyMarkup = wire(kb)
	}
	if id, err := strconv.Atoi(m.ReplyTo); err == nil && id > 0 {
		// The message replied to may be gone: send without the reply then.
		p.ReplyParameters = &models.ReplyParameters{MessageID: id, AllowSendingWithoutReply: true}
	}
	msg, err := a.b.SendMessage(ctx, p)
	if err != nil {
		return notify.Ref{}, a.apiErr("sendMessage", err)
	}
	ref := notify.Ref{Channel: ch, ID: strconv.Itoa(msg.ID)}
	if err := a.attach(ctx, ref, chatID, thread, msg.ID, m); err != nil {
		// The message is out: failing Send now would post it twice. The
		// next Edit of this ref sends the file instead.
		a.log.Warn("telegram: attachment not sent; the next edit retries it", "chat", ch.String(), "err", err)
	}
	return ref, nil
}

// Edit replaces the message's text and buttons (a message without buttons
// loses its keyboard). An edit to identical content is success; an edit of a
// deleted message wraps notify.ErrMessageGone. The message's Attachment is
// sent once per ref and tried at most chat.AttachTries times: a failed upload is
// logged and never fails the edit.
func (a *Adapter) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	chatID, thread, err := chatAndThread(ref.Channel)
	if err != nil {
		return err
	}
	id, err := strconv.Atoi(ref.ID)
	if err != nil {
		return fmt.Errorf("telegram message id %q is not a number", ref.ID)
	}
	if err := checkButtons(m.Buttons); err != nil {
		return err
	}
	text, kb := Render(m)
	p := &bot.EditMessageTextParams{ChatID: chatID, MessageID: id, Text: text, ParseMode: models.ParseModeHTML,
		LinkPreviewOptions: noPreview, ReplyMarkup: wire(kb)}
	if _, err := a.b.EditMessageText(ctx, p); err != nil && !notModified(err) {
		if messageGone(err) {
			return fmt.Errorf("%w: %w", notify.ErrMessageGone, a.apiErr("editMessageText", err))
		}
		return a.apiErr("editMessageText", err)
	}
	if err := a.attach(ctx, ref, chatID, thread, id, m); err != nil {
		// The card is edited; a group where the bot may not send files
		// must not make the card look undelivered (and be edited again).
		a.log.Warn("telegram: attachment not sent", "chat", ref.Channel.String(), "err", err)
	}
	return nil
}

// attach sends m's attachment (a full job log) as a document, or a picture
// as a photo, replying to message id, unless this ref already got it. The
// outbox relay edits one card at a time, so two sends of one attachment do
// not race.
func (a *Adapter) attach(ctx context.Context, ref notify.Ref, chatID int64, thread, id int, m notify.Message) error {
	if m.Attachment == nil {
		return nil
	}
	if !a.attached.Due(ref) {
		return nil
	}
	name := m.Attachment.Name
	if name == "" {
		name = "shipbot.txt"
	}
	caption := clipHeadFit(chat.OneLine(m.Title), 1024)
	// The message may have been deleted meanwhile; the file is still worth having.
	reply := &models.ReplyParameters{MessageID: id, AllowSendingWithoutReply: true}
	var err error
	method := "sendDocument"
	if m.Attachment.Type == notify.MediaPNG {
		// A picture (the delivery chart) is shown inline as a photo.
		method = "sendPhoto"
		_, err = a.b.SendPhoto(ctx, &bot.SendPhotoParams{ChatID: chatID, MessageThreadID: thread,
			Photo:   &models.InputFileUpload{Filename: name, Data: bytes.NewReader(m.Attachment.Content)},
			Caption: caption, ReplyParameters: reply})
	} else {
		_, err = a.b.SendDocument(ctx, &bot.SendDocumentParams{ChatID: chatID, MessageThreadID: thread,
			Document: &models.InputFileUpload{Filename: name, Data: bytes.NewReader(m.Attachment.Content)},
			Caption:  caption, ReplyParameters: reply})
	}
	if err != nil {
		a.attached.Failed(ref)
		return a.apiErr(method, err)
	}
	a.attached.Sent(ref)
	return nil
}
