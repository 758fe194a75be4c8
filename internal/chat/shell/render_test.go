package shell

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/notify"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// counter numbers buttons 1, 2, 3... as a fresh Shell would.
// counter labels buttons as message #1 would.
func counter() func(int, notify.Button) string {
	return func(i int, _ notify.Button) string { return fmt.Sprintf("1%c", 'a'+i) }
}

func TestRenderGolden(t *testing.T) {
	cases := []struct {
		name string
		msg  notify.Message
	}{
		{"progress", notify.Message{
			Title: "Deploying demo v1.4.2 to staging",
			Style: notify.StyleInfo,
			Text:  "Job #42 started by alice.",
			Fields: []notify.Field{
				{Name: "app", Value: "demo"},
				{Name: "env", Value: "staging"},
			},
			Steps: []notify.Step{
				{Name: "fetch", State: "done"},
				{Name: "build", State: "done"},
				{Name: "migrate", State: "running"},
				{Name: "switch", State: "pending"},
				{Name: "health", State: "failed", Detail: "HTTP 502 after 5 tries"},
				{Name: "cleanup", State: "skipped"},
				{Name: "notify", State: "exploded"},
			},
			Code: []string{"Applying migration 0007_add_index...", "\tOK\nApplying 0008_backfill...\n"},
			Buttons: []notify.Button{
				{Label: "Cancel", Data: "cancel:42", Style: notify.StyleDanger},
				{Label: "Logs", Data: "logs:42"},
			},
			Attachment: &notify.Attachment{Name: "job-42.log", Content: []byte("0123456789")},
		}},
		{"approval", notify.Message{
			Title: "Approval needed: deploy demo v1.4.2 to production",
			Style: notify.StyleWarning,
			Text:  "Requested by alice. Anyone with the approver role except alice may decide.",
			Fields: []notify.Field{
				{Name: "expires", Value: "in 30m"},
			},
			Buttons: []notify.Button{
				{Label: "Approve", Data: "approve:Zx81", Style: notify.StyleSuccess},
				{Label: "Deny", Data: "deny:Zx81", Style: notify.StyleDanger},
			},
		}},
		{"plain", notify.Message{
			Text: "demo: staging runs v1.4.1 (deployed 2h ago)\nproduction runs v1.4.0\n",
		}},
		{"hostile", notify.Message{
			Title: "\x1b]0;pwned\x07Deploy \x1b[31mfailed\x1b[0m\r\n",
			Style: notify.StyleDanger,
			Text:  "line one\r\x1b[2K\x1b[1Aover\x08\x08written\x00 bell\x07 \u202eevil\u202c \u009b31m c1 \xff bad",
			Fields: []notify.Field{
				{Name: "ref\nfake: field", Value: "\x1b(Bmain\x1bc"},
			},
			Steps: []notify.Step{{Name: "build\n  [x] forged", State: "failed", Detail: "\x1bP+q\x1b\\exit 1"}},
			Code:  []string{"\x1b[32mok\x1b[0m\r", "unterminated \x1b]8;;http://x"},
			Buttons: []notify.Button{
				{Label: "Re\x1b[7mtry", Data: "retry:1"},
			},
			Attachment: &notify.Attachment{Name: "log\x1b[1m.txt", Content: []byte("\x1b[31m")},
		}},
	}
	backup := chattest.BackupCards()
	for _, name := range []string{"restore-approval", "rollback-with-db"} {
		cases = append(cases, struct {
			name string
			msg  notify.Message
		}{name, notify.JobCard(backup[name])})
	}
	cases = append(cases, struct {
		name string
		msg  notify.Message
	}{"stats", chattest.StatsMessage()})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Render(c.msg, counter())
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Render mismatch for %s\n--- got ---\n%s--- want ---\n%s", c.name, got, want)
			}
			for i, r := range got {
				if r == 0x1b || r == '\r' || (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) {
					t.Errorf("control character %U left at byte %d", r, i)
				}
			}
		})
	}
}

func TestRenderAsksLabelPerButtonInOrder(t *testing.T) {
	var asked []string
	got := Render(notify.Message{Buttons: []notify.Button{{Label: "A", Data: "a"}, {Label: "B", Data: "b"}}},
		func(i int, b notify.Button) string {
			asked = append(asked, b.Data)
			return fmt.Sprintf("%d%c", 10*len(asked), 'a'+i)
		})
	if got != "[10a] A  [20b] B\n" {
		t.Errorf("got %q", got)
	}
	if strings.Join(asked, ",") != "a,b" {
		t.Errorf("number asked for %v, want a,b", asked)
	}
	if got := Render(notify.Message{Buttons: []notify.Button{{Label: "A"}}}, nil); got != "[?] A\n" {
		t.Errorf("nil number: got %q", got)
	}
}

func TestClean(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text\nline two", "plain text\nline two"},
		{"\x1b[1;31mred\x1b[0m", "red"},
		{"a\x1b[?25lb", "ab"},                   // private-mode CSI
		{"title\x1b]0;evil\x07end", "titleend"}, // OSC ended by BEL
		{"x\x1b]8;;http://e\x1b\\y", "xy"},      // OSC ended by ST
		{"\x1bPdcs\x1b\\z", "z"},                // DCS
		{"a\x1b(Bb\x1b7c", "abc"},               // short ESC forms
		{"tail\x1b[31", "tail"},                 // unterminated CSI
		{"tail\x1b", "tail"},                    // lone ESC
		{"a\x1b[3\x01b", "ab"},                  // malformed CSI stops at the control byte
		{"cr\r\nlf", "cr\nlf"},
		{"tab\there", "tab here"},
		{"nul\x00del\x7fbs\x08", "nuldelbs"},
		{"c1\u009b31m", "c131m"},
		{"bidi\u202eolleh\u202c", "bidiolleh"},
		{"bad\xffbyte", "bad\ufffdbyte"},
		{"ünïcödé ✔", "ünïcödé ✔"},
	}
	for _, c := range cases {
		if got := clean(c.in); got != c.want {
			t.Errorf("clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRenderStripsReordering(t *testing.T) {
	chattest.NoReordering(t, Render(chattest.Reordered(), nil))
}
