package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
)

const tgToken = "424242:e2e-token"

// telegramEnv is a shipbot whose only chat is Telegram, pointed at a fake
// Bot API through chat.telegram.api_url, as a user would point it at a
// local telegram-bot-api server.
func telegramEnv(t *testing.T, mode, listen string) (*testEnv, *telegramtest.Server) {
	t.Helper()
	fake := telegramtest.Start(t, tgToken)
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
    mode: %[3]s
    webhook_url: https://bot.example.com/hooks/telegram
    webhook_secret: hook_secret
    chats: [-100777]
users:
  alice: {identities: ["telegram:100"], roles: [dev]}
roles:
  dev: {permissions: ["deploy:*", "status:*"]}
apps:
  demo:
    envs:
      staging:
        driver: local
        path: %[1]s/var/deploy/demo/staging
        fetch: {copy: %[4]s, ref: main}
        shared: [app.log]
        build: [["sh", "build.sh", "{{release}}", "{{ref}}"]]
        restart: [["sh", "restart.sh", "{{shared_path}}"]]
        health: {command: ["sh", "{{current_path}}/healthcheck.sh", "{{shared_path}}"], retries: 3, interval: 1s}
`, dir, fake.URL, mode, demo, listen, tgToken)
	path := filepath.Join(dir, "shipbot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, config: path}, fake
}

func tgMessage(id int, text string) map[string]any {
	cmd := strings.Fields(text)[0]
	return map[string]any{"update_id": id, "message": map[string]any{"message_id": id, "date": 0, "text": text,
		"from":     map[string]any{"id": 100, "is_bot": false, "first_name": "Alice"},
		"chat":     map[string]any{"id": -100777, "type": "supergroup"},
		"entities": []any{map[string]any{"type": "bot_command", "offset": 0, "length": len(cmd)}}}}
}

func waitTG(t *testing.T, fake *telegramtest.Server, method, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range fake.Calls(method) {
			if strings.Contains(c.Fields["text"], text) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s with %q; got %+v", method, text, fake.Calls(method))
}

func TestBinaryTelegramPollingDeploys(t *testing.T) {
	t.Parallel()
	e, fake := telegramEnv(t, "polling", "")
	p := e.startBot(nil)
	fake.Push(tgMessage(1, "/deploy@shipbot demo staging"))
	waitTG(t, fake, "editMessageText", "succeeded")
	if cur := e.currentRelease("staging"); cur == "" {
		t.Fatal("no release went live")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d after SIGTERM: %s", st.ExitCode(), p.errOut)
	}
	if strings.Contains(p.errOut.String(), tgToken) || strings.Contains(p.out.String(), tgToken) {
		t.Fatal("the bot token reached the logs")
	}
	e.mustVerify()
}

func TestBinaryTelegramWebhook(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e, fake := telegramEnv(t, "webhook", addr)
	p := e.startBot(nil)
	deadline := time.Now().Add(20 * time.Second)
	for len(fake.Calls("setWebhook")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if c := fake.Calls("setWebhook"); len(c) == 0 || c[0].Fields["secret_token"] != "hook_secret" {
		t.Fatalf("setWebhook %+v", c)
	}
	post := func(secret string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/telegram", strings.NewReader(
			`{"update_id":7,"message":{"message_id":7,"date":0,"text":"/whoami","from":{"id":100,"is_bot":false,"first_name":"A"},"chat":{"id":-100777,"type":"supergroup"},"entities":[{"type":"bot_command","offset":0,"length":7}]}}`))
		if secret != "" {
			req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != http.StatusForbidden {
		t.Fatalf("wrong secret: %d", code)
	}
	if code := post("hook_secret"); code != http.StatusOK {
		t.Fatalf("right secret: %d", code)
	}
	waitTG(t, fake, "sendMessage", "You are alice")
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), p.errOut)
	}
}

// Telegram's own /start (opening the chat) is the welcome; "/start APP ENV"
// is the start command (alice may not start apps: the refusal, not the help,
// proves it reached the command, and in the group it replies to her message
// naming her); the menu has no /start of its own.
func TestBinaryTelegramStart(t *testing.T) {
	t.Parallel()
	e, fake := telegramEnv(t, "polling", "")
	p := e.startBot(nil)
	fake.Push(tgMessage(1, "/start"))
	waitTG(t, fake, "sendMessage", "shipbot commands")
	fake.Push(tgMessage(2, "/start demo staging"))
	waitTG(t, fake, "sendMessage", "alice: permission denied: you need start:staging")
	for _, c := range fake.Calls("sendMessage") {
		if strings.Contains(c.Fields["text"], "you need start:staging") && !strings.Contains(c.Fields["reply_parameters"], `"message_id":2`) {
			t.Fatalf("the refusal does not reply to the command: %v", c.Fields)
		}
	}
	for _, c := range fake.Commands() {
		if c.Command == "start" {
			t.Fatal("the menu lists /start, which clashes with Telegram's own")
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(exitTimeout)
}

// The card is durable: Telegram refuses every edit while the job runs to
// its end, shipbot is killed -9 with the final state undelivered, and the
// next shipbot edits that same message to the final state from the outbox
// (no second card, nothing lost).
func TestBinaryTelegramCardSurvivesAnOutageAndAKill(t *testing.T) {
	t.Parallel()
	e, fake := telegramEnv(t, "polling", "")
	fake.FailNext("editMessageText", 10000, http.StatusBadGateway, 0)
	p := e.startBot(nil)
	fake.Push(tgMessage(1, "/deploy@shipbot demo staging"))
	waitTG(t, fake, "sendMessage", "Deploy demo")
	// An attempt to show the final state was refused: the job ended.
	waitTG(t, fake, "editMessageText", "succeeded")
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(exitTimeout)
	fake.Heal("editMessageText")
	cards := func() (ids []string) {
		for _, c := range fake.Calls("sendMessage") {
			if strings.Contains(c.Fields["text"], "Deploy demo") && c.Status == http.StatusOK {
				ids = append(ids, c.Fields["text"])
			}
		}
		return ids
	}
	if n := len(cards()); n != 1 {
		t.Fatalf("%d cards before the restart", n)
	}
	if m, _ := fake.Message(-100777, firstCardID(t, fake)); strings.Contains(m.Text, "succeeded") {
		t.Fatal("the final state got through the outage; the test proves nothing")
	}
	e.startBot(nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, ok := fake.Message(-100777, firstCardID(t, fake))
		if ok && strings.Contains(m.Text, "succeeded") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the card never showed the final state: %+v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(cards()); n != 1 {
		t.Fatalf("%d cards after the restart: the final state must edit the first", n)
	}
	e.mustVerify()
}

// firstCardID is the message id of the first job card the fake holds.
func firstCardID(t *testing.T, fake *telegramtest.Server) int {
	t.Helper()
	for id := 1; id < 100; id++ {
		if m, ok := fake.Message(-100777, id); ok && strings.Contains(m.Text, "Deploy demo") {
			return id
		}
	}
	t.Fatal("no job card in the chat")
	return 0
}
