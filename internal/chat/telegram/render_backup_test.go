package telegram_test

import (
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/notify"
)

func TestRenderBackupCards(t *testing.T) {
	cards := chattest.BackupCards()
	for _, name := range []string{"restore-approval", "backup-done"} {
		golden(t, name, render(t, notify.JobCard(cards[name])))
	}
}
