package commands_test

import (
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/commands"
)

// /help fits one Slack section (3,000 characters) and one Telegram message
// (4,096), so no platform cuts it.
func TestHelpFitsOneMessage(t *testing.T) {
	n := len([]rune(strings.Join(commands.HelpLines(), "\n")))
	if n > 3000 {
		t.Fatalf("/help is %d characters", n)
	}
}
