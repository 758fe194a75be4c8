package chattest

import (
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/notify"
)

// Reordered is a message with a right-to-left override (U+202E), an
// isolate (U+2066..U+2069) and a colour escape in every part a renderer
// shows: "deploy.sh\u202Egpj.exe" reads as "deploy.shexe.jpg".
func Reordered() notify.Message {
	const v = "v1\u202e2.3\u2066x\u2069 \x1b[31mred\x1b[0m"
	return notify.Message{Title: "Deploy " + v, Text: "reason " + v, Fields: []notify.Field{{Name: "ref " + v, Value: v}},
		Steps: []notify.Step{{Name: "build " + v, State: "failed", Detail: v}}, Code: []string{"out " + v},
		Buttons: []notify.Button{{Label: "Go " + v, Data: "approve:x"}}}
}

// NoReordering fails t if rendered (what an adapter made of Reordered)
// still holds a bidirectional control or an escape sequence.
func NoReordering(t *testing.T, rendered string) {
	t.Helper()
	for _, bad := range []string{"\u202e", "\u2066", "\u2069", "\x1b", "[31m"} {
		if strings.Contains(rendered, bad) {
			t.Errorf("rendered message keeps %q:\n%s", bad, rendered)
		}
	}
	if !strings.Contains(rendered, "v12.3x red") {
		t.Errorf("rendered message lost the text around the controls:\n%s", rendered)
	}
}
