package telegram_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
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

// render is a message and its keyboard as a reviewer reads them: the HTML,
// then one line per button row, "[label | data | style]".
func render(t *testing.T, m notify.Message) string {
	t.Helper()
	text, kb := telegram.Render(m)
	mustBeTelegramHTML(t, text)
	out := text + "\n"
	if kb != nil {
		out += "--- keyboard ---\n" + keyboardText(kb)
	}
	return out
}

func keyboardText(kb *models.InlineKeyboardMarkup) string {
	var b strings.Builder
	for _, row := range kb.InlineKeyboard {
		for i, btn := range row {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "[%s | %s | %s]", btn.Text, btn.CallbackData, btn.Style)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// mustBeTelegramHTML fails unless Telegram would accept text in HTML mode.
func mustBeTelegramHTML(t *testing.T, text string) string {
	t.Helper()
	plain, err := telegramtest.ParseHTML(text)
	if err != nil {
		t.Fatalf("Telegram would refuse this HTML: %v\n%s", err, text)
	}
	if n := len(utf16.Encode([]rune(text))); n > telegram.MaxText {
		t.Fatalf("%d UTF-16 units of HTML, over %d", n, telegram.MaxText)
	}
	return plain
}

func TestRenderApprovalCard(t *testing.T) {
	golden(t, "approval", render(t, notify.Message{
		Title: "Deploy helpdesk → production (job #12)", Style: notify.StyleWarning,
		Text:   "Needs approval by a lead, not alice. Approval id: abcdefghijklmnopqrstuvwx",
		Fields: []notify.Field{{Name: "state", Value: "awaiting approval"}, {Name: "ref", Value: "v2.4.1"}, {Name: "requested by", Value: "alice"}},
		Buttons: []notify.Button{
			{Label: "Approve", Data: "approve:abcdefghijklmnopqrstuvwx", Style: notify.StyleSuccess},
			{Label: "Deny", Data: "deny:abcdefghijklmnopqrstuvwx", Style: notify.StyleDanger},
		},
	}))
}

func TestRenderProgressCardEscapesHostileValues(t *testing.T) {
	m := notify.Message{
		Title: `Deploy <script>alert(1)</script> & "friends"`, Style: notify.StyleInfo,
		Text:   "failed: <b>not bold</b> & <a href=\"x\">link</a>",
		Fields: []notify.Field{{Name: "ref", Value: "feat/<x>&y"}, {Name: "requested by", Value: "bob\n<b>admin</b>: yes"}, {Name: `<i>"n"`, Value: "&amp;"}},
		Steps: []notify.Step{{Name: "fetch", State: "done"}, {Name: "build", State: "running", Detail: "exit 1 </pre><b>"},
			{Name: "switch", State: "pending"}, {Name: "health", State: "failed", Detail: "503 <html>"},
			{Name: "migrate", State: "skipped"}, {Name: "<odd>", State: "exotic"}},
		Code:    []string{"<html>&amp;</html>", `"quoted" 'single'`, "tab\there\x00\x07 and bad utf8 \xff"},
		Buttons: []notify.Button{{Label: "Cancel <now>", Data: "cancel:12", Style: notify.StyleDanger}},
	}
	got := render(t, m)
	golden(t, "hostile", got)
	text, _ := telegram.Render(m)
	for _, bad := range []string{"<script>", "<b>not", "<a href", "</pre><b>", "\n<b>admin", "<html>", "<odd>", "\x00", "\xff"} {
		if strings.Contains(text, bad) {
			t.Errorf("unescaped %q in %s", bad, text)
		}
	}
	plain := mustBeTelegramHTML(t, text)
	for _, want := range []string{`Deploy <script>alert(1)</script> & "friends"`, "feat/<x>&y", "<html>&amp;</html>", "⏳ build: exit 1 </pre><b>"} {
		if !strings.Contains(plain, want) {
			t.Errorf("the reader should see %q:\n%s", want, plain)
		}
	}
}

func TestRenderCutsLongCardsKeepingTheTail(t *testing.T) {
	var code []string
	for i := range 400 {
		code = append(code, fmt.Sprintf("line %03d: <building> & linking", i))
	}
	m := notify.Message{Title: "Deploy demo → staging (job #3)", Style: notify.StyleSuccess,
		Fields: []notify.Field{{Name: "state", Value: "succeeded"}},
		Steps:  []notify.Step{{Name: "build", State: "done"}, {Name: "health", State: "done"}}, Code: code}
	text, _ := telegram.Render(m)
	plain := mustBeTelegramHTML(t, text)
	if !strings.Contains(plain, "(truncated)") || !strings.Contains(plain, "line 399") || strings.Contains(plain, "line 000") ||
		!strings.Contains(plain, "✅ health") || !strings.Contains(plain, "state: succeeded") {
		t.Fatalf("want the head, the tail of the output and a truncation note:\n%s", text)
	}
	golden(t, "long", text+"\n")
}

func TestRenderCutsEveryKindOfLongValue(t *testing.T) {
	cases := map[string]notify.Message{
		"one huge output line keeps its end": {Title: "x", Code: []string{strings.Repeat("<&>", 3000) + "THE END"}},
		"huge paragraph of escaped characters": {Title: "x", Text: strings.Repeat("<&>", 3000),
			Code: []string{"last line"}},
		"astral characters count twice":  {Title: "🚀", Text: strings.Repeat("🚀", 2100)},
		"many steps and a long log":      {Title: "x", Steps: manySteps(300), Code: manyLines(300)},
		"a title no one should write":    {Title: strings.Repeat("T", 10000)},
		"many fields with hostile names": {Fields: manyFields(500)},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			text, _ := telegram.Render(m)
			plain := mustBeTelegramHTML(t, text)
			if len(text) < 100 {
				t.Fatalf("the cut kept almost nothing: %q", text)
			}
			if name != "a title no one should write" && !strings.Contains(plain, "(truncated)") {
				t.Fatalf("no truncation note:\n%s", text)
			}
		})
	}
	text, _ := telegram.Render(cases["one huge output line keeps its end"])
	if !strings.Contains(text, "THE END</pre>") {
		t.Fatalf("the end of the output was lost: %s", text[len(text)-60:])
	}
	text, _ = telegram.Render(cases["huge paragraph of escaped characters"])
	if !strings.Contains(text, "last line") {
		t.Fatal("a long paragraph pushed the output off the card")
	}
	text, _ = telegram.Render(cases["many steps and a long log"])
	if !strings.Contains(text, "step 000") || !strings.Contains(text, "output 299") {
		t.Fatal("the first steps and the last output lines must both stay")
	}
}

func manySteps(n int) []notify.Step {
	var out []notify.Step
	for i := range n {
		out = append(out, notify.Step{Name: fmt.Sprintf("step %03d", i), State: "done", Detail: "ok & <fine>"})
	}
	return out
}

func manyLines(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("output %03d <&>", i))
	}
	return out
}

func manyFields(n int) []notify.Field {
	var out []notify.Field
	for i := range n {
		out = append(out, notify.Field{Name: fmt.Sprintf("<f%d>", i), Value: `"v" & <w>`})
	}
	return out
}

func TestRenderEmptyAndButtons(t *testing.T) {
	text, kb := telegram.Render(notify.Message{})
	mustBeTelegramHTML(t, text)
	if kb != nil {
		t.Fatal("a message without buttons has no keyboard")
	}
	var bs []notify.Button
	for i := range 5 {
		bs = append(bs, notify.Button{Label: fmt.Sprint("b", i), Data: fmt.Sprint("d", i)})
	}
	bs = append(bs, notify.Button{Label: "", Data: "unlabelled", Style: notify.StyleWarning})
	_, kb = telegram.Render(notify.Message{Title: "t", Buttons: bs})
	got := keyboardText(kb)
	want := "[b0 | d0 | ] [b1 | d1 | ] [b2 | d2 | ]\n[b3 | d3 | ] [b4 | d4 | ] [• | unlabelled | ]\n"
	if got != want {
		t.Fatalf("keyboard:\n%s\nwant:\n%s", got, want)
	}
}
