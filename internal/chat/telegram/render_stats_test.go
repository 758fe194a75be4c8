package telegram_test

import (
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
)

// The /stats answer and the weekly digest: a monospace table a phone shows
// whole; the chart goes as a file beside it (see sender tests).
func TestRenderStats(t *testing.T) {
	golden(t, "stats", render(t, chattest.StatsMessage()))
}
