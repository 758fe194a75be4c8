// Package notify is shipbot's platform-neutral message model and the Sender
// seam chat adapters implement. Adapters render a Message for their platform
// (Telegram HTML, Slack Block Kit, terminal text); nothing here knows any of them.
package notify

import (
	"context"
	"errors"
)

// ErrMessageGone is what an adapter's Edit wraps when the platform says the
// message no longer exists (someone deleted it). The outbox relay then posts
// a new card instead of retrying an edit that can never succeed.
var ErrMessageGone = errors.New("the message to edit is gone")

// Message is one chat message, described without any platform's markup. Every
// string is plain text: renderers escape it for their platform.
type Message struct {
	Title   string
	Style   Style
	Text    string   // a paragraph under the title
	Fields  []Field  // short "name: value" facts
	Steps   []Step   // a checklist (progress cards)
	Code    []string // monospace lines (command output), shown last
	Buttons []Button
	// Attachment is a long text (full job log) or a picture (a chart)
	// sent as a file where the platform allows; renderers that cannot
	// attach ignore it.
	Attachment *Attachment
	// ReplyTo is the id of a message in the same chat this one answers
	// (a deploy notice under its pipeline's message). Platforms without
	// replies ignore it; Slack threads through Channel.Thread instead.
	ReplyTo string `json:",omitempty"`
}

// Style colours a message.
type Style string

const (
	StyleInfo    Style = "info"
	StyleSuccess Style = "success"
	StyleWarning Style = "warning"
	StyleDanger  Style = "danger"
)

// Field is one short fact.
type Field struct{ Name, Value string }

// Step is one checklist line; State is a deploy.StepState value.
type Step struct{ Name, State, Detail string }

// Button is a chat button. Data is opaque to adapters and comes back verbatim
// in Request.Action when pressed; it is at most 64 bytes (Telegram's limit).
type Button struct {
	Label string
	Data  string
	Style Style
}

// Attachment is a file.
type Attachment struct {
	Name    string
	Content []byte
	// Type is the file's media type; "image/png" is shown as a picture
	// where the platform can (a Telegram photo). "" is text.
	Type string `json:",omitempty"`
}

// MediaPNG is the Type of a PNG picture (the delivery chart).
const MediaPNG = "image/png"

// Platforms are the chat platforms a Channel may name; each chat adapter's
// Platform constant is one of them (cmd/bot's tests hold them together).
var Platforms = []string{"shell", "telegram", "slack"}

// Channel addresses a chat: Platform is "shell", "telegram" or "slack"; ID is
// the platform's chat/channel id; Thread is a forum topic or thread ts.
type Channel struct {
	Platform string
	ID       string
	Thread   string
}

// String is "platform:id" (with "/thread" when set), the form used in config
// and the audit log.
func (c Channel) String() string {
	s := c.Platform + ":" + c.ID
	if c.Thread != "" {
		s += "/" + c.Thread
	}
	return s
}

// Ref identifies a sent message so it can be edited. ID is adapter-specific.
type Ref struct {
	Channel Channel
	ID      string
}

// Sender posts and edits messages on one platform.
type Sender interface {
	// Send posts m to ch and returns a reference for later edits: a ref or
	// an error, never both. An error means nothing was posted, so the
	// caller may send again; once the message is out, Send returns its ref
	// and no error even if a part that follows it (an Attachment) failed,
	// which the adapter logs and retries on the next Edit. chattest's
	// SenderContract holds every adapter to this.
	Send(ctx context.Context, ch Channel, m Message) (Ref, error)
	// Edit replaces the message ref with m. Editing to identical content is not an error.
	Edit(ctx context.Context, ref Ref, m Message) error
}
