package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/chat/slack/slackfake"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
)

const slackSigning = "e2e-signing-secret-0123456789"

// slackEnv is a shipbot on Telegram (polling) and Slack at once, both
// pointed at fakes; bob is one person on both platforms.
func slackEnv(t *testing.T, slackMode, listen string) (*testEnv, *telegramtest.Server, *slackfake.Server) {
	t.Helper()
	tg := telegramtest.Start(t, tgToken)
	sl := slackfake.Start(t)
	dir := t.TempDir()
	demo, _ := filepath.Abs("../../examples/demo")
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 3s
http:
  listen: "%[5]s"
chat:
  telegram:
    enabled: true
    token: "%[6]s"
    api_url: %[2]s
    chats: [-100777]
  slack:
    enabled: true
    mode: %[3]s
    bot_token: %[7]s
    app_token: %[8]s
    signing_secret: %[9]s
    api_url: %[10]s
    channels: [C0DEPLOYS]
users:
  alice: {identities: ["telegram:100"], roles: [dev]}
  bob: {identities: ["telegram:200", "slack:U0BOB"], roles: [lead]}
roles:
  dev: {permissions: ["deploy:*", "status:*"]}
  lead: {permissions: ["deploy:*", "status:*", "approve:production"]}
apps:
  demo:
    envs:
      production:
        driver: local
        path: %[1]s/var/deploy/demo/production
        fetch: {copy: %[4]s, ref: main}
        shared: [app.log]
        build: [["sh", "build.sh", "{{release}}", "{{ref}}"]]
        restart: [["sh", "restart.sh", "{{shared_path}}"]]
        health: {command: ["sh", "{{current_path}}/healthcheck.sh", "{{shared_path}}"], retries: 3, interval: 1s}
        approval: {required: true, approver_roles: [lead], ttl: 30m}
`, dir, tg.URL, slackMode, demo, listen, tgToken, sl.BotToken, sl.AppToken, slackSigning, sl.URL)
	path := filepath.Join(dir, "shipbot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, config: path}, tg, sl
}

// A Telegram request approved from Slack by the same person's Slack identity.
func TestBinarySlackUserApprovesTelegramRequest(t *testing.T) {
	t.Parallel()
	e, tg, sl := slackEnv(t, "socket", "")
	p := e.startBot(nil)
	tg.Push(tgMessage(1, "/deploy@shipbot demo production"))
	waitTG(t, tg, "sendMessage", "awaiting approval")
	var id string
	for _, c := range tg.Calls("sendMessage") {
		if m := regexp.MustCompile(`Approval id: ([a-z0-9]+)`).FindStringSubmatch(c.Fields["text"]); m != nil {
			id = m[1]
		}
	}
	if id == "" {
		t.Fatal("no approval id on the card")
	}
	sl.Push(t, "slash_commands", slackfake.SlashCommand("U0BOB", "C0DEPLOYS", "/shipbot", "approve "+id))
	waitTG(t, tg, "editMessageText", "succeeded")
	if cur := e.currentRelease("production"); cur == "" {
		t.Fatal("no release went live")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d after SIGTERM: %s", st.ExitCode(), p.errOut)
	}
	var approved bool
	for _, ev := range e.auditExport() {
		if ev.Command == "approve" && ev.Identity == "slack:U0BOB" && ev.Actor == "bob" && ev.Decision == "allowed" {
			approved = true
		}
	}
	if !approved {
		t.Fatal("the Slack approval is not in the audit log")
	}
	for _, s := range []string{tgToken, sl.BotToken, sl.AppToken, slackSigning} {
		if strings.Contains(p.errOut.String(), s) || strings.Contains(p.out.String(), s) {
			t.Fatalf("a secret reached the logs: %s", s)
		}
	}
	e.mustVerify()
}

func TestBinarySlackHTTPMode(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e, _, sl := slackEnv(t, "http", addr)
	p := e.startBot(nil)
	post := func(path string, body []byte, h http.Header) int {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(string(body)))
			for k, v := range h {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	body := slackfake.Form(slackfake.SlashCommand("U0BOB", "C0DEPLOYS", "/shipbot", "whoami"))
	if code := post("/slack/commands", body, slackfake.Signed("wrong", time.Now(), body)); code != http.StatusUnauthorized {
		t.Fatalf("mis-signed: %d", code)
	}
	if code := post("/slack/commands", body, slackfake.Signed(slackSigning, time.Now(), body)); code != http.StatusOK {
		t.Fatalf("signed: %d", code)
	}
	sl.Eventually(t, "the answer", func() bool {
		for _, m := range sl.Messages() {
			if strings.Contains(string(m.Blocks), "You are bob") {
				return true
			}
		}
		return false
	})
	// A retried event runs once: the dedupe is the database's, so it
	// would hold across a restart too.
	ev := []byte(`{"type":"event_callback","event_id":"Ev0E2E","team_id":"T0FAKE","event":{"type":"app_mention","user":"U0BOB","text":"<@U0SHIPBOT> whoami","ts":"1.1","channel":"C0DEPLOYS","event_ts":"1.1"}}`)
	for range 2 {
		if code := post("/slack/events", ev, slackfake.Signed(slackSigning, time.Now(), ev)); code != http.StatusOK {
			t.Fatalf("event: %d", code)
		}
	}
	sl.Eventually(t, "the mention's answer", func() bool {
		n := 0
		for _, m := range sl.Messages() {
			if strings.Contains(string(m.Blocks), "You are bob") {
				n++
			}
		}
		return n == 2
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), p.errOut)
	}
	n := 0
	for _, m := range sl.Messages() {
		if strings.Contains(string(m.Blocks), "You are bob") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d answers; the retried event ran twice", n)
	}
	e.mustVerify()
}
