package main

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
)

const glToken = "e2e-gitlab-token"

// pipelineEnv is a shipbot on Telegram that takes GitLab webhooks and
// routes acme/web to the ops chat.
func pipelineEnv(t *testing.T) (*testEnv, *telegramtest.Server, string) {
	t.Helper()
	addr := freeAddr(t)
	tg := telegramtest.Start(t, tgToken)
	dir := t.TempDir()
	demo, _ := filepath.Abs("../../examples/demo")
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 3s
http:
  listen: "%[3]s"
chat:
  telegram:
    enabled: true
    token: "%[4]s"
    api_url: %[2]s
    chats: [-100777]
pipelines:
  gitlab_token: %[5]s
  routes:
    - projects: ["acme/*"]
      chats: ["telegram:-100777"]
  deploy_buttons:
    - {project: acme/web, ref: main, app: demo, env: staging}
users:
  alice: {identities: ["telegram:100"], roles: [dev]}
roles:
  dev: {permissions: ["deploy:*", "status:*"]}
apps:
  demo:
    project: acme/web
    envs:
      staging:
        driver: local
        path: %[1]s/var/deploy/demo/staging
        fetch: {copy: %[6]s, ref: main}
        shared: [app.log]
        build: [["sh", "build.sh", "{{release}}", "{{ref}}"]]
        restart: [["sh", "restart.sh", "{{shared_path}}"]]
        health: {command: ["sh", "{{current_path}}/healthcheck.sh", "{{shared_path}}"], retries: 3, interval: 1s}
`, dir, tg.URL, addr, tgToken, glToken, demo)
	path := filepath.Join(dir, "shipbot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, config: path}, tg, addr
}

func glPipeline(id int, status string) []byte {
	return []byte(fmt.Sprintf(`{"object_kind":"pipeline","object_attributes":{"id":%d,"ref":"main","sha":"bcbb5ec396a2c0f828686f14fac9b80b780504f2","status":%q,"created_at":"2026-11-22 10:00:0%d UTC","duration":63},"project":{"path_with_namespace":"acme/web","web_url":"https://gitlab.example.com/acme/web"},"commit":{"message":"Fix login\n","author":{"name":"Alice"}},"builds":[]}`,
		id, status, map[string]int{"pending": 0, "running": 1, "success": 2, "failed": 2}[status]))
}

// postHook delivers a GitLab webhook, waiting for the listener.
func postHook(t *testing.T, addr, token, uuid string, body []byte) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/gitlab", strings.NewReader(string(body)))
		req.Header.Set("X-Gitlab-Event", "Pipeline Hook")
		req.Header.Set("X-Gitlab-Event-UUID", uuid)
		if token != "" {
			req.Header.Set("X-Gitlab-Token", token)
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

func pipelineMessages(tg *telegramtest.Server) []telegramtest.Message {
	var out []telegramtest.Message
	for _, m := range tg.Messages(-100777) {
		if strings.Contains(m.Text, "acme/web") {
			out = append(out, m)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBinaryPipelineWebhookEditsOneMessage(t *testing.T) {
	t.Parallel()
	e, tg, addr := pipelineEnv(t)
	p := e.startBot(nil)
	if code := postHook(t, addr, "wrong", "u0", glPipeline(41, "running")); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	for i, st := range []string{"pending", "running", "running", "success"} {
		uuid := fmt.Sprintf("u%d", i+1)
		if i == 2 {
			uuid = "u2" // a redelivery
		}
		if code := postHook(t, addr, glToken, uuid, glPipeline(41, st)); code != http.StatusOK {
			t.Fatalf("%s: %d", st, code)
		}
	}
	waitFor(t, "the passed pipeline", func() bool {
		ms := pipelineMessages(tg)
		return len(ms) == 1 && strings.Contains(ms[0].Text, "passed")
	})
	msg := pipelineMessages(tg)[0]
	// The button carries a random id; what it does is bound server-side
	// to this chat and message.
	button := regexp.MustCompile(`"callback_data":"b:([a-z2-7]{24})"[^}]*"text":"Deploy to staging"`).FindStringSubmatch(msg.Markup)
	if button == nil {
		t.Fatalf("no deploy button: %+v", msg)
	}
	// /metrics counts what happened. The relay marks a row delivered just
	// after the chat shows it, so the outbox depth may lag a moment.
	wants := []string{`shipbot_webhook_events_total{result="accepted",source="gitlab"} 3`,
		`shipbot_webhook_events_total{result="duplicate",source="gitlab"} 1`,
		`shipbot_webhook_events_total{result="unverified",source="gitlab"} 1`, `shipbot_outbox_depth{state="pending"} 0`}
	var body []byte
	waitFor(t, "the metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				return false
			}
		}
		return true
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), p.errOut)
	}
	if strings.Contains(p.errOut.String(), glToken) {
		t.Fatal("the webhook token reached the log")
	}
	db, err := sql.Open("sqlite", "file:"+e.database())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var data, chat, message string
	if err := db.QueryRow(`SELECT data, chat, message FROM buttons WHERE id = ?`, button[1]).Scan(&data, &chat, &message); err != nil ||
		data != "deploy:demo:staging:bcbb5ec396a2c0f828686f14fac9b80b780504f2" || chat != "telegram:-100777" || message != strconv.Itoa(msg.ID) {
		t.Fatalf("button %s is bound to %q in %q on %q (%v)", button[1], data, chat, message, err)
	}
}

// kill -9 between a send and its mark: the restarted bot sends again (at
// most one duplicate) and the final state still arrives (no loss).
func TestBinaryOutboxSurvivesKillBetweenSendAndMark(t *testing.T) {
	t.Parallel()
	e, tg, addr := pipelineEnv(t)
	p := e.startBot(nil, crashAfterSendEnv+"=1")
	if code := postHook(t, addr, glToken, "k1", glPipeline(77, "running")); code != http.StatusOK {
		t.Fatalf("hook: %d", code)
	}
	p.wait(exitTimeout) // killed itself right after the send
	if n := len(pipelineMessages(tg)); n != 1 {
		t.Fatalf("%d messages before the restart", n)
	}
	p2 := e.startBot(nil)
	waitFor(t, "the redelivery", func() bool { return len(pipelineMessages(tg)) == 2 })
	if code := postHook(t, addr, glToken, "k2", glPipeline(77, "failed")); code != http.StatusOK {
		t.Fatalf("hook: %d", code)
	}
	waitFor(t, "the final state", func() bool {
		for _, m := range pipelineMessages(tg) {
			if strings.Contains(m.Text, "failed") {
				return true
			}
		}
		return false
	})
	if n := len(pipelineMessages(tg)); n != 2 {
		t.Fatalf("%d messages; at most one duplicate allowed", n)
	}
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p2.wait(exitTimeout)
	e.mustVerify()
}
