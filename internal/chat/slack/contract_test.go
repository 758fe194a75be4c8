package slack_test

import (
	"net/http"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/chat/slack/slackfake"
	"github.com/shipbot/shipbot/internal/notify"
)

func TestSenderContract(t *testing.T) {
	chattest.SenderContract(t, func(t *testing.T) chattest.SenderRig {
		b := newBot(t, nil)
		return chattest.SenderRig{Sender: b.a, Channel: notify.Channel{Platform: slack.Platform, ID: channel},
			RefuseNextMessage: func() {
				b.fake.FailNext("chat.postMessage", 1, slackfake.Failure{Error: "channel_not_found"})
			},
			// files.getUploadURLExternal is the first call of slack-go's
			// UploadFileContext.
			RefuseNextFile: func() {
				b.fake.FailNext("files.getUploadURLExternal", 1, slackfake.Failure{Status: http.StatusInternalServerError})
			},
			Posted: func() int { return len(b.fake.Messages()) }}
	})
}
