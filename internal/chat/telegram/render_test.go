package telegram_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/notify"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n%s", name, path, got)
	}
}

func render(m notify.Message) string {
	text, kb := telegram.Render(m)
	out := text
	if kb != nil {
		b, _ := json.Marshal(kb)
		out += "\n--- reply_markup ---\n" + string(b)
	}
	return out + "\n"
}

func TestRenderApprovalCard(t *testing.T) {
	golden(t, "approval", render(notify.Message{
		Title: "Deploy helpdesk → production (job #12)", Style: notify.StyleWarning,
		Text:   "Needs approval by another person (not alice). Approval id: abcdefghijklmnopqrstuvwx",
		Fields: []notify.Field{{Name: "state", Value: "awaiting approval"}, {Name: "ref", Value: "v2.4.1"}, {Name: "requested by", Value: "alice"}},
		Buttons: []notify.Button{
			{Label: "Approve", Data: "approve:abcdefghijklmnopqrstuvwx", Style: notify.StyleSuccess},
			{Label: "Deny", Data: "deny:abcdefghijklmnopqrstuvwx", Style: notify.StyleDanger},
		},
	}))
}

func TestRenderEscapesHostileValues(t *testing.T) {
	m := notify.Message{
		Title: `Deploy <script>alert(1)</script> & "friends"`, Style: notify.StyleDanger,
		Text:   "failed: <b>not bold</b> & <a href=\"x\">link</a>",
		Fields: []notify.Field{{Name: "ref", Value: "feat/<x>&y"}, {Name: "requested by", Value: "bob\n<b>admin</b>: yes"}},
		Steps:  []notify.Step{{Name: "build", State: "failed", Detail: "exit 1 </pre><b>"}, {Name: "switch", State: "pending"}},
		Code:   []string{"<html>&amp;</html>", `"quoted" 'single'`},
	}
	got := render(m)
	golden(t, "hostile", got)
	text, _ := telegram.Render(m)
	for _, bad := range []string{"<script>", "<b>not", "<a href", "</pre><b>", "\n<b>admin"} {
		if strings.Contains(text, bad) {
			t.Errorf("unescaped %q in %s", bad, text)
		}
	}
}

func TestRenderCutsLongCardsKeepingTheTail(t *testing.T) {
	var code []string
	for i := range 400 {
		code = append(code, fmt.Sprintf("line %03d: <building> & linking", i))
	}
	m := notify.Message{Title: "Deploy demo → staging (job #3)", Style: notify.StyleSuccess,
		Fields: []notify.Field{{Name: "state", Value: "succeeded"}}, Code: code}
	text, _ := telegram.Render(m)
	if n := utf8.RuneCountInString(text); n > telegram.MaxText {
		t.Fatalf("%d characters, over %d", n, telegram.MaxText)
	}
	if !strings.Contains(text, "(truncated)") || !strings.Contains(text, "line 399") || strings.Contains(text, "line 000") {
		t.Fatalf("want the tail kept and a truncation note:\n%s", text)
	}
	if strings.Count(text, "<pre>") != 1 || strings.Count(text, "</pre>") != 1 || strings.Contains(text, "&am\n") {
		t.Fatal("markup broken by the cut")
	}
	golden(t, "long", text+"\n")

	// A huge paragraph full of characters that grow when escaped.
	huge := notify.Message{Title: "x", Text: strings.Repeat("<&>", 3000)}
	text, _ = telegram.Render(huge)
	if n := utf8.RuneCountInString(text); n > telegram.MaxText || !strings.Contains(text, "(truncated)") {
		t.Fatalf("huge text: %d characters", n)
	}
	if strings.HasSuffix(strings.TrimSuffix(text, " …"), "&") || strings.Contains(text, "&am ") {
		t.Fatal("an entity was split")
	}
}
