package slack_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/chat/slack/slackfake"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

var update = flag.Bool("update", false, "rewrite golden files")

// render is the Block Kit JSON of m, indented, with its fallback text; it
// fails unless Slack would accept the blocks.
func render(t *testing.T, m notify.Message) string {
	t.Helper()
	blocks, text := slack.Render(m)
	raw, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	if e := slackfake.CheckBlocks(string(raw)); e != "" {
		t.Fatalf("Slack would answer %s to:\n%s", e, raw)
	}
	// Unescaped, so a reviewer reads "&lt;" as Slack will get it.
	var pretty strings.Builder
	enc := json.NewEncoder(&pretty)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(blocks); err != nil {
		t.Fatal(err)
	}
	return "fallback: " + text + "\n" + pretty.String()
}

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

func TestRenderApprovalCard(t *testing.T) {
	j := deploy.Job{ID: 12, App: "helpdesk", Env: "production", Action: deploy.ActionDeploy, Ref: "v1.4.2",
		State: deploy.AwaitingApproval, RequestedBy: deploy.Who{User: "alice"}, ApprovalID: "k3j4h5g6f7d8s9a0q1w2e3r4", ApproverRoles: []string{"lead"}}
	golden(t, "approval", render(t, notify.JobCard(j)))
}

func TestRenderProgressCard(t *testing.T) {
	j := deploy.Job{ID: 13, App: "helpdesk", Env: "staging", Action: deploy.ActionDeploy, Ref: "main", Release: "20261122-101500",
		FromRelease: "20261121-090000", State: deploy.Running, RequestedBy: deploy.Who{User: "bob"},
		Steps: []deploy.Step{{Name: "fetch", State: deploy.StepDone, Detail: "2.1s"}, {Name: "build", State: deploy.StepRunning},
			{Name: "switch", State: deploy.StepPending}},
		Output: []string{"npm ci", "added 312 packages in 9s"}}
	golden(t, "progress", render(t, notify.JobCard(j)))
}

func TestRenderEscapesHostileValues(t *testing.T) {
	m := notify.Message{Title: "Deploy <!channel> & <https://evil.example|docs>", Style: notify.StyleDanger,
		Text:    "reason: <@U0ADMIN> said *no*",
		Fields:  []notify.Field{{Name: "ref <b>", Value: "feature/<!here>"}},
		Code:    []string{"```", "rm -rf / <&>", "\x1b[31mred\x1b[0m"},
		Buttons: []notify.Button{{Label: "Approve <now>", Data: "approve:abc", Style: notify.StyleSuccess}}}
	m.Steps = []notify.Step{{Name: "build <x>", State: "failed", Detail: "exit 1 & more"}}
	out := render(t, m)
	for _, bad := range []string{"<!channel>", "<!here>", "<@U0ADMIN>", "<https://", "rm -rf / <&>", "\x1b"} {
		if strings.Contains(out, bad) {
			t.Errorf("%q survived rendering", bad)
		}
	}
	golden(t, "hostile", out)
}

func TestRenderCutsToBlockKitLimits(t *testing.T) {
	long := strings.Repeat("x", 5000)
	var out []string
	for i := range 400 {
		out = append(out, "line "+strings.Repeat("y", i%50))
	}
	out = append(out, "the last line says what failed")
	var fields []notify.Field
	for range 25 {
		fields = append(fields, notify.Field{Name: "n", Value: long})
	}
	var buttons []notify.Button
	for range 5 {
		buttons = append(buttons, notify.Button{Label: long, Data: "cancel:1"})
	}
	blocks, text := slack.Render(notify.Message{Title: long, Text: long, Fields: fields, Code: out, Buttons: buttons})
	raw, _ := json.Marshal(blocks)
	if e := slackfake.CheckBlocks(string(raw)); e != "" {
		t.Fatalf("Slack would refuse: %s", e)
	}
	if !strings.Contains(string(raw), "the last line says what failed") {
		t.Fatal("the last output line was cut")
	}
	if len(text) > 4000 {
		t.Fatalf("fallback %d bytes", len(text))
	}
}
