package slack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/shipbot/shipbot/internal/chat"
	"github.com/shipbot/shipbot/internal/notify"
)

// apiErr turns the library's errors into what the rest of shipbot expects:
// a rate limit carries its wait, and no error ever quotes a token.
func (a *Adapter) apiErr(method string, err error) error {
	err = fmt.Errorf("slack %s: %w", method, a.redact(err))
	var limited *slackgo.RateLimitedError
	if errors.As(err, &limited) {
		after := limited.RetryAfter
		if after <= 0 {
			after = time.Second
		}
		return notify.SlowDown(err, after) // the relay waits as told
	}
	return err
}

func checkButtons(bs []notify.Button) error {
	for _, b := range bs {
		if n := len(b.Data); n == 0 || n > maxButtonValue {
			return fmt.Errorf("slack: button %q: value must be 1-%d bytes, is %d", b.Label, maxButtonValue, n)
		}
	}
	return nil
}

// Send posts m to ch (ID a channel id; Thread a thread's ts, to reply in it).
// A message with an Attachment is followed by the file, in the message's thread.
func (a *Adapter) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	if ch.ID == "" {
		return notify.Ref{}, errors.New("slack: no channel id")
	}
	if err := checkButtons(m.Buttons); err != nil {
		return notify.Ref{}, err
	}
	blocks, text := Render(m)
	opts := []slackgo.MsgOption{slackgo.MsgOptionBlocks(blocks...), slackgo.MsgOptionText(text, false),
		slackgo.MsgOptionDisableLinkUnfurl(), slackgo.MsgOptionDisableMediaUnfurl()}
	if ch.Thread != "" {
		opts = append(opts, slackgo.MsgOptionTS(ch.Thread))
	}
	channel, ts, err := a.api.PostMessageContext(ctx, ch.ID, opts...)
	if err != nil {
		return notify.Ref{}, a.apiErr("chat.postMessage", err)
	}
	if channel != "" {
		ch.ID = channel // Slack answers a DM's user id with the conversation id
	}
	ref := notify.Ref{Channel: ch, ID: ts}
	if err := a.attach(ctx, ref, m.Attachment); err != nil {
		// The message is out: an error now would make the caller post it
		// again (notify.Sender: a ref or an error, never both). The next
		// Edit of this ref uploads the file instead.
		a.log.Warn("slack: attachment not uploaded; the next edit retries it", "channel", ch.ID, "err", err)
	}
	return ref, nil
}

// Edit replaces the message ref with m (chat.update). The Attachment goes
// along once per message: a card edited again after it ended does not post
// its log twice.
func (a *Adapter) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	if ref.Channel.ID == "" || ref.ID == "" {
		return fmt.Errorf("slack: message ref %q is not a channel and ts", ref.Channel.String()+"@"+ref.ID)
	}
	if err := checkButtons(m.Buttons); err != nil {
		return err
	}
	blocks, text := Render(m)
	if _, _, _, err := a.api.UpdateMessageContext(ctx, ref.Channel.ID, ref.ID,
		slackgo.MsgOptionBlocks(blocks...), slackgo.MsgOptionText(text, false)); err != nil {
		// chat.update answers {"ok":false,"error":"message_not_found"} for a
		// deleted message (https://api.slack.com/methods/chat.update#errors).
		var se slackgo.SlackErrorResponse
		if errors.As(err, &se) && se.Err == "message_not_found" {
			return fmt.Errorf("%w: %w", notify.ErrMessageGone, a.apiErr("chat.update", err))
		}
		return a.apiErr("chat.update", err)
	}
	if err := a.attach(ctx, ref, m.Attachment); err != nil {
		// The card is updated; a channel that refuses files must not make
		// it look undelivered and be updated (and uploaded) again and again.
		a.log.Warn("slack: attachment not uploaded", "channel", ref.Channel.ID, "err", err)
	}
	return nil
}

// attach uploads att as a file in the thread of ref's message, once (tried
// at most chat.AttachTries times).
func (a *Adapter) attach(ctx context.Context, ref notify.Ref, att *notify.Attachment) error {
	if att == nil || len(att.Content) == 0 {
		return nil
	}
	if !a.attached.Due(ref) {
		return nil
	}
	thread := ref.Channel.Thread
	if thread == "" {
		thread = ref.ID
	}
	up := slackgo.UploadFileParameters{
		Filename: att.Name, Title: att.Name, FileSize: len(att.Content),
		Channel: ref.Channel.ID, ThreadTimestamp: thread,
	}
	if att.Type == notify.MediaPNG {
		// A picture: Slack previews an image file inline; a snippet type
		// would make it text.
		up.Reader = bytes.NewReader(att.Content)
	} else {
		up.Content, up.SnippetType = string(att.Content), "text"
	}
	_, err := a.api.UploadFileContext(ctx, up)
	if err != nil {
		a.attached.Failed(ref)
		return a.apiErr("files.upload", err)
	}
	a.attached.Sent(ref)
	return nil
}

// ephemeral tells one person something only they see, in the channel (and
// thread) they acted in.
func (a *Adapter) ephemeral(ctx context.Context, ch notify.Channel, user, text string) {
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(chat.ClipHeadBytes(escape(text), maxSectionText), false)}
	if ch.Thread != "" {
		opts = append(opts, slackgo.MsgOptionTS(ch.Thread))
	}
	if _, err := a.api.PostEphemeralContext(ctx, ch.ID, user, opts...); err != nil {
		a.log.Warn("slack: ephemeral reply failed", "channel", ch.ID, "user", user, "err", a.redact(err))
	}
}
