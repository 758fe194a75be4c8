package telegram_test

import (
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
)

func TestSenderContract(t *testing.T) {
	chattest.SenderContract(t, func(t *testing.T) chattest.SenderRig {
		b := newBot(t, nil)
		return chattest.SenderRig{Sender: b.a, Channel: topicChannel,
			RefuseNextMessage: func() { b.fake.FailNext("sendMessage", 1, 502, 0) },
			RefuseNextFile:    func() { b.fake.FailNext("sendDocument", 1, 500, 0) },
			Posted: func() int {
				n := 0
				for _, m := range b.fake.Messages(-1001234567890) {
					if m.Document == nil {
						n++
					}
				}
				return n
			}}
	})
}
