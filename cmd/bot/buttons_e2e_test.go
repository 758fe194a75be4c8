package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
)

// approvalEnv is a Telegram shipbot whose production needs a lead's approval.
func approvalEnv(t *testing.T) (*testEnv, *telegramtest.Server) {
	t.Helper()
	fake := telegramtest.Start(t, tgToken)
	dir := t.TempDir()
	demo, _ := filepath.Abs("../../examples/demo")
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 3s
chat:
  telegram:
    enabled: true
    token: "%[4]s"
    api_url: %[2]s
    chats: [-100777]
users:
  alice: {identities: ["telegram:100"], roles: [dev]}
  bob: {identities: ["telegram:200"], roles: [lead]}
roles:
  dev: {permissions: ["deploy:*", "status:*"]}
  lead: {permissions: ["deploy:*", "approve:*", "status:*"]}
apps:
  demo:
    envs:
      production:
        driver: local
        path: %[1]s/var/deploy/demo/production
        fetch: {copy: %[3]s, ref: main}
        build: [["sh", "build.sh", "{{release}}", "{{ref}}"]]
        restart: [["true"]]
        health: {command: ["true"]}
        approval: {required: true, approver_roles: [lead]}
`, dir, fake.URL, demo, tgToken)
	path := filepath.Join(dir, "shipbot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, config: path}, fake
}

const tgGroup = int64(-100777)

// cardOf waits for the bot's message showing job id and returns its id.
func cardOf(t *testing.T, fake *telegramtest.Server, job int, has string) telegramtest.Message {
	t.Helper()
	var found telegramtest.Message
	waitFor(t, fmt.Sprintf("the card of job #%d with %q", job, has), func() bool {
		for _, m := range fake.Messages(tgGroup) {
			if strings.Contains(m.Text, fmt.Sprintf("(job #%d)", job)) && strings.Contains(m.Text, has) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// press pushes bob's press of data on message id and returns the answer.
func press(t *testing.T, fake *telegramtest.Server, id int, data string) telegramtest.Call {
	t.Helper()
	u, query := fake.NewPress(telegramtest.User(200, "bob"), tgGroup, id, data, true)
	fake.Push(u)
	var answer telegramtest.Call
	waitFor(t, "the answer to a press", func() bool {
		var ok bool
		answer, ok = fake.Answer(query)
		return ok
	})
	return answer
}

// A press acts only on the card it was pressed on: job #1's Approve data
// pressed on job #2's card, or data naming job #2's approval in clear, is
// refused as forged and audited; job #2's own button approves it.
func TestBinaryButtonDataIsBoundToItsCard(t *testing.T) {
	t.Parallel()
	e, fake := approvalEnv(t)
	p := e.startBot(nil)
	defer func() {
		p.cmd.Process.Signal(os.Interrupt)
		p.wait(exitTimeout)
	}()
	fake.Push(fake.NewMessage(telegramtest.Group(tgGroup), 0, telegramtest.User(100, "alice"), "/deploy demo production v1"))
	one := cardOf(t, fake, 1, "awaiting approval")
	fake.Push(fake.NewMessage(telegramtest.Group(tgGroup), 0, telegramtest.User(100, "alice"), "/deploy demo production v2"))
	two := cardOf(t, fake, 2, "awaiting approval")

	approveOne := fake.ButtonData(tgGroup, one.ID, "Approve")
	if !regexp.MustCompile(`^b:[a-z2-7]{24}$`).MatchString(approveOne) {
		t.Fatalf("Approve carries %q, want only a random id", approveOne)
	}
	cross := press(t, fake, two.ID, approveOne)
	if cross.Fields["show_alert"] != "true" || !strings.Contains(cross.Fields["text"], "belongs to another message") {
		t.Fatalf("job #1's Approve on job #2's card answered %+v", cross.Fields)
	}
	approvalTwo := regexp.MustCompile(`Approval id: ([a-z2-7]{24})`).FindStringSubmatch(two.Text)
	if approvalTwo == nil {
		t.Fatalf("no approval id on %q", two.Text)
	}
	forged := press(t, fake, two.ID, "approve:"+approvalTwo[1])
	if forged.Fields["show_alert"] != "true" || !strings.Contains(forged.Fields["text"], "not one of shipbot's") {
		t.Fatalf("clear approval data answered %+v", forged.Fields)
	}
	for _, id := range []int{one.ID, two.ID} {
		if m, _ := fake.Message(tgGroup, id); !strings.Contains(m.Text, "awaiting approval") {
			t.Fatalf("a refused press changed message %d: %q", id, m.Text)
		}
	}

	ok := press(t, fake, two.ID, fake.ButtonData(tgGroup, two.ID, "Approve"))
	if ok.Fields["show_alert"] == "true" {
		t.Fatalf("job #2's own Approve refused: %+v", ok.Fields)
	}
	cardOf(t, fake, 2, "succeeded")
	if m, _ := fake.Message(tgGroup, one.ID); !strings.Contains(m.Text, "awaiting approval") {
		t.Fatalf("approving job #2 touched job #1: %q", m.Text)
	}

	p.cmd.Process.Signal(os.Interrupt)
	p.wait(exitTimeout)
	denials := 0
	for _, ev := range e.auditExport() {
		if ev.Kind == "denial" && ev.Actor == "bob" && strings.HasPrefix(ev.Outcome, "forged or stale button") {
			denials++
		}
	}
	if denials != 2 {
		t.Fatalf("%d forged-button denials audited, want 2", denials)
	}
}
