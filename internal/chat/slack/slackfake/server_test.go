package slackfake

import (
	"encoding/json"
	"strings"
	"testing"
)

// The fake must refuse what Slack refuses, or render tests prove nothing.
func TestCheckBlocksRefusesWhatSlackRefuses(t *testing.T) {
	section := func(text string) map[string]any {
		return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}}
	}
	button := func(id, style, label string) map[string]any {
		return map[string]any{"type": "button", "action_id": id, "value": "v", "style": style,
			"text": map[string]any{"type": "plain_text", "text": label}}
	}
	actions := func(els ...map[string]any) map[string]any { return map[string]any{"type": "actions", "elements": els} }
	many := make([]any, 51)
	for i := range many {
		many[i] = section("x")
	}
	cases := []struct {
		name   string
		blocks any
		want   string
	}{
		{"ok", []any{section("hi"), actions(button("a", "primary", "Go"), button("b", "", "Stop"))}, ""},
		{"51 blocks", many, "invalid_blocks"},
		{"long section", []any{section(strings.Repeat("x", 3001))}, "invalid_blocks"},
		{"empty section", []any{section("")}, "invalid_blocks"},
		{"duplicate action id", []any{actions(button("a", "", "x"), button("a", "", "y"))}, "invalid_blocks"},
		{"unknown style", []any{actions(button("a", "success", "x"))}, "invalid_blocks"},
		{"long label", []any{actions(button("a", "", strings.Repeat("x", 76)))}, "invalid_blocks"},
		{"unknown block", []any{map[string]any{"type": "marquee"}}, "invalid_blocks"},
	}
	for _, tc := range cases {
		raw, _ := json.Marshal(tc.blocks)
		if got := CheckBlocks(string(raw)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := CheckBlocks("{not json"); got != "invalid_blocks_format" {
		t.Errorf("malformed: %q", got)
	}
}
