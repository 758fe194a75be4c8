// Package commands turns chat requests into engine calls: it resolves the
// Actor from the platform's verified user id, parses the command, checks the
// default-deny Policy, records denials, and replies through notify.Sender.
package commands

import (
	"context"

	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/notify"
)

// Request is one inbound chat event, built by a chat adapter.
type Request struct {
	// Platform is "shell", "telegram" or "slack".
	Platform string
	// UserID is the platform's verified user id (Telegram from.id, Slack user
	// id, the shell's current /as user). Never taken from message text.
	UserID string
	// UserName is a display name, only for messages.
	UserName string
	// Chat is where the request came from; replies go there.
	Chat notify.Channel
	// Text is a command line ("/deploy demo staging"). Empty for button presses.
	Text string
	// Action is the Data of a pressed button. Empty for text.
	Action string
	// Message is the platform's id of the message the pressed button is on
	// (the same form as its notify.Ref ID); a button is only good on the
	// message it was posted with. Empty for text, and in the shell.
	Message string
	// ReplyTo is the id of the command's message in a group chat: the
	// answer replies to it and names the person, so in a busy group it is
	// clear whose command it answers. Empty in private chats.
	ReplyTo string
	// Via names the door a request came through when it is not a chat
	// ("api": the HTTP API, Platform "api" and UserID the token's name;
	// "auto": an auto-deploy rule). Such a request's answer comes back in
	// the Reply instead of being sent, and it can never approve or deny:
	// approval is a person's act in chat.
	Via string
	// As is the configured user an in-process door (an auto-deploy rule's
	// "as:") acts as. Never set from anything a client sends; chat adapters
	// leave it empty so the user comes from Platform and UserID.
	As string
}

// Reply is what the adapter tells the person who pressed a button (Telegram
// answerCallbackQuery, Slack ephemeral message). Text commands are answered
// through the Sender and get an empty Reply.
type Reply struct {
	Notice  string
	Refused bool
	// Denial is the kind of refusal ("permission", "locked", "bad input",
	// "unknown app", …), the first word of its audit row; doors map it to
	// their own codes (HTTP 403, 409, 400).
	Denial string
	// JobID is the job a deploy-like command created.
	JobID int64
	// Message is the whole answer to a door's request (Via set), as it
	// would have been posted in chat: doors that show more than Notice
	// (the MCP tools) render it, so they bound and redact exactly as chat.
	Message *notify.Message
	// Stats is the report /stats computed, for doors that answer with
	// data (the API's GET /api/v1/stats).
	Stats *insights.Report
}

// Handler is what chat adapters call. Handle returns once the request is
// accepted; long work (jobs) goes on in the background and reports through
// the Sender.
type Handler interface {
	Handle(ctx context.Context, req Request) Reply
}
