package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
)

// Tokens of the API e2e tests: 43 characters, like `bot token new` prints.
var (
	ciToken     = strings.Repeat("c", 43)
	viewerToken = strings.Repeat("v", 43)
)

const opsChat = -100777

// apiEnv is a shipbot on Telegram (ops chat -100777) with the HTTP API, the
// GitLab webhook and two auto-deploy rules: main → staging, release →
// production (which needs a lead's approval). ci is the CI's user.
func apiEnv(t *testing.T, withCIToken bool) (*testEnv, *telegramtest.Server, string) {
	t.Helper()
	addr := freeAddr(t)
	tg := telegramtest.Start(t, tgToken)
	e := &testEnv{t: t, dir: t.TempDir()}
	e.config = filepath.Join(e.dir, "shipbot.yaml")
	e.writeAPIConfig(tg.URL, addr, withCIToken)
	return e, tg, addr
}

func (e *testEnv) writeAPIConfig(tgURL, addr string, withCIToken bool) {
	demo, _ := filepath.Abs("../../examples/demo")
	ciLine := "    gitlab-ci: ${SHIPBOT_CI_TOKEN}\n"
	if !withCIToken {
		ciLine = "" // revoked
	}
	env := func(name string) string {
		return fmt.Sprintf(`      %[2]s:
        driver: local
        path: %[1]s/var/deploy/demo/%[2]s
        fetch: {copy: %[3]s, ref: main}
        shared: [app.log]
        build: [["sh", "build.sh", "{{release}}", "{{ref}}"]]
        restart: [["sh", "restart.sh", "{{shared_path}}"]]
        health: {command: ["sh", "{{current_path}}/healthcheck.sh", "{{shared_path}}"], retries: 3, interval: 1s}
`, e.dir, name, demo)
	}
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 5s
http:
  listen: "%[3]s"
chat:
  telegram:
    enabled: true
    token: "%[4]s"
    api_url: %[2]s
    chats: [%[8]d]
api:
  tokens:
%[6]s    viewer-ci: %[7]s
pipelines:
  gitlab_token: %[5]s
  routes:
    - projects: ["acme/*"]
      chats: ["telegram:%[8]d"]
  auto_deploy:
    - {project: acme/web, ref: main, workflows: [push], app: demo, env: staging, as: ci}
    - {project: acme/web, ref: release, app: demo, env: production, as: ci}
users:
  alice: {identities: ["telegram:100"], roles: [dev]}
  bob: {identities: ["telegram:200"], roles: [lead]}
  ci: {identities: ["api:gitlab-ci"], roles: [deployer]}
  watcher: {identities: ["api:viewer-ci"], roles: [viewer]}
roles:
  dev: {permissions: ["deploy:*", "status:*", "lock:*", "cancel:*"]}
  lead: {permissions: ["deploy:*", "status:*", "approve:*", "lock:*", "cancel:*"]}
  deployer: {permissions: ["deploy:*", "rollback:*", "status:*"]}
  viewer: {permissions: ["status:*"]}
apps:
  demo:
    project: acme/web
    envs:
%[9]s%[10]s        approval: {required: true, approver_roles: [lead]}
`, e.dir, tgURL, addr, tgToken, glToken, ciLine, viewerToken, opsChat, env("staging"), env("production"))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.env = []string{"SHIPBOT_CI_TOKEN=" + ciToken}
}

func (e *testEnv) startAPIBot() *botProc {
	e.t.Helper()
	return e.startBot(nil, e.env...)
}

func stopBot(t *testing.T, p *botProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), p.errOut)
	}
	for _, tok := range []string{ciToken, viewerToken} {
		if strings.Contains(p.errOut.String(), tok) || strings.Contains(p.out.String(), tok) {
			t.Fatal("an API token reached the log")
		}
	}
}

// call makes one API request, waiting for the listener to come up.
func call(t *testing.T, addr, method, path, token, key, body string) (int, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			defer resp.Body.Close()
			var out map[string]any
			b, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, b)
			}
			return resp.StatusCode, out
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func deployBody(app, env, ref string) string {
	return fmt.Sprintf(`{"action":"deploy","app":%q,"env":%q,"ref":%q}`, app, env, ref)
}

// sse reads a job's event stream to its end: the job events' states and
// steps, and the end event's state.
func sse(t *testing.T, addr string, id int64, token string) (states []string, steps []string, end string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/api/v1/jobs/%d/events", addr, id), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "job":
			var j struct {
				State string `json:"state"`
				Steps []struct{ Name, State string }
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &j); err != nil {
				t.Fatal(err)
			}
			states = append(states, j.State)
			for _, s := range j.Steps {
				steps = append(steps, s.Name+"="+s.State)
			}
		case strings.HasPrefix(line, "data: ") && event == "end":
			return states, steps, strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("stream ended without an end event: %v", sc.Err())
	return
}

func id(t *testing.T, m map[string]any) int64 {
	t.Helper()
	f, ok := m["id"].(float64)
	if !ok {
		t.Fatalf("no id in %v", m)
	}
	return int64(f)
}

// deployCLI runs `bot deploy` as a CI job would.
func (e *testEnv) deployCLI(token string, args ...string) (int, string, string) {
	e.t.Helper()
	saved := e.env
	e.env = append(append([]string(nil), saved...), "SHIPBOT_TOKEN="+token)
	defer func() { e.env = saved }()
	return e.cli(append([]string{"deploy"}, args...)...)
}

func auditRows(e *testEnv, identity string) []audit.Event {
	var out []audit.Event
	for _, ev := range e.auditExport() {
		if ev.Identity == identity {
			out = append(out, ev)
		}
	}
	return out
}

func hasRow(evs []audit.Event, kind audit.Kind, command, outcomePart string) bool {
	for _, ev := range evs {
		if ev.Kind == kind && ev.Command == command && strings.Contains(ev.Outcome, outcomePart) {
			return true
		}
	}
	return false
}

func TestBinaryAPI(t *testing.T) {
	t.Parallel()
	e, tg, addr := apiEnv(t, true)
	p := e.startAPIBot()
	alice, bob := telegramtest.User(100, "alice"), telegramtest.User(200, "bob")

	// Token auth: none, wrong, another scheme.
	for _, tok := range []string{"", strings.Repeat("x", 43), ciToken[:42]} {
		if code, body := call(t, addr, "POST", "/api/v1/jobs", tok, "", deployBody("demo", "staging", "v1")); code != 401 || body["error"] != "unauthorized" {
			t.Fatalf("token %q: %d %v", tok, code, body)
		}
	}
	if code, body := call(t, addr, "GET", "/api/v1/apps", ciToken, "", ""); code != 200 || !strings.Contains(fmt.Sprint(body["apps"]), "staging") {
		t.Fatalf("apps: %d %v", code, body)
	}

	// A deploy through the API, followed over SSE to the end.
	code, body := call(t, addr, "POST", "/api/v1/jobs", ciToken, "ci-run-1", deployBody("demo", "staging", "v1"))
	if code != 202 || body["url"] == nil {
		t.Fatalf("deploy: %d %v", code, body)
	}
	first := id(t, body)
	states, steps, end := sse(t, addr, first, ciToken)
	if !strings.Contains(end, "succeeded") || states[len(states)-1] != "succeeded" || !strings.Contains(strings.Join(steps, " "), "=done") {
		t.Fatalf("events: states %v steps %v end %s", states, steps, end)
	}
	if code, body := call(t, addr, "GET", fmt.Sprintf("/api/v1/jobs/%d", first), ciToken, "", ""); code != 200 || body["state"] != "succeeded" ||
		body["release"] == "" || body["requested_by"] != "ci" {
		t.Fatalf("job: %d %v", code, body)
	} else {
		steps, _ := body["steps"].([]any)
		for _, s := range steps {
			st := s.(map[string]any)
			if st["state"] == "done" && (st["started"] == nil || st["ended"] == nil) {
				t.Fatalf("a done step without its times: %v", st)
			}
		}
		if len(steps) == 0 || body["started"] == nil || body["ended"] == nil {
			t.Fatalf("job without steps or times: %v", body)
		}
	}
	if got := e.currentRelease("staging"); got == "" {
		t.Fatal("nothing deployed")
	}
	// CI's retry with the same key gets the first job back, not a second deploy.
	code, body = call(t, addr, "POST", "/api/v1/jobs", ciToken, "ci-run-1", deployBody("demo", "staging", "v1"))
	if code != 202 || id(t, body) != first || body["replayed"] != true {
		t.Fatalf("replay: %d %v", code, body)
	}

	// Bad input, a refusal by policy, a lock, an approval.
	for _, b := range []string{`{"action":"deploy","app":"demo","env":"staging","ref":"v1; rm -rf /"}`, `{"action":"nuke","app":"demo","env":"staging"}`,
		deployBody("demo", "qa", ""), `{"action":"deploy","app":"demo","env":"staging","extra":1}`, `not json`} {
		if code, body := call(t, addr, "POST", "/api/v1/jobs", ciToken, "", b); code != 400 {
			t.Fatalf("%s: %d %v", b, code, body)
		}
	}
	if code, body := call(t, addr, "POST", "/api/v1/jobs", viewerToken, "", deployBody("demo", "staging", "v2")); code != 403 ||
		!strings.Contains(fmt.Sprint(body["message"]), "deploy:staging") {
		t.Fatalf("viewer: %d %v", code, body)
	}
	tg.Push(tg.NewMessage(telegramtest.Group(opsChat), 0, alice, "/lock demo staging db migration"))
	waitFor(t, "the lock", func() bool {
		code, body := call(t, addr, "GET", "/api/v1/apps", ciToken, "", "")
		return code == 200 && strings.Contains(fmt.Sprint(body["apps"]), "db migration")
	})
	code, body = call(t, addr, "POST", "/api/v1/jobs", ciToken, "ci-run-2", deployBody("demo", "staging", "v2"))
	lock, _ := body["lock"].(map[string]any)
	if code != 409 || lock["holder"] != "alice" || lock["reason"] != "db migration" {
		t.Fatalf("locked: %d %v", code, body)
	}
	if c, out, errOut := e.deployCLI(ciToken, "demo", "staging", "v2", "--server", "http://"+addr, "--wait"); c != 2 || !strings.Contains(errOut, "locked by alice") {
		t.Fatalf("bot deploy into a locked env: exit %d\n%s\n%s", c, out, errOut)
	}
	tg.Push(tg.NewMessage(telegramtest.Group(opsChat), 0, alice, "/unlock demo staging"))
	waitFor(t, "the unlock", func() bool {
		_, body := call(t, addr, "GET", "/api/v1/apps", ciToken, "", "")
		return !strings.Contains(fmt.Sprint(body["apps"]), "db migration")
	})
	code, body = call(t, addr, "POST", "/api/v1/jobs", ciToken, "", deployBody("demo", "production", "v1"))
	if code != 202 || body["state"] != "awaiting_approval" || body["approval_id"] == "" {
		t.Fatalf("production: %d %v", code, body)
	}
	prod := id(t, body)
	// Nobody watches the API: the approval card goes to the routes' chat.
	var card telegramtest.Message
	waitFor(t, "the approval card in the ops chat", func() bool {
		for _, m := range tg.Messages(opsChat) {
			if strings.Contains(e.resolveButtons(m.Markup), "approve:"+body["approval_id"].(string)) {
				card = m
				return true
			}
		}
		return false
	})
	press, _ := tg.NewPress(bob, opsChat, card.ID, tg.ButtonData(opsChat, card.ID, "Approve"), true)
	tg.Push(press)
	if _, _, end := sse(t, addr, prod, ciToken); !strings.Contains(end, "succeeded") {
		t.Fatalf("approved production deploy: %s", end)
	}

	// bot deploy --wait: succeeded, failed, refused, timed out, awaiting approval.
	server := "http://" + addr
	if c, out, errOut := e.deployCLI(ciToken, "demo", "staging", "v3", "--server", server, "--wait"); c != 0 ||
		!strings.Contains(out, "state: running") || !strings.Contains(out, "succeeded") || !strings.Contains(out, "done") {
		t.Fatalf("succeeded: exit %d\n%s\n%s", c, out, errOut)
	}
	if c, out, errOut := e.deployCLI(ciToken, "demo", "staging", "bad-build", "--server", server, "--wait"); c != 1 || !strings.Contains(out, "failed") {
		t.Fatalf("failed: exit %d\n%s\n%s", c, out, errOut)
	}
	saved := e.env
	e.env = append(append([]string(nil), saved...), "SHIPBOT_TOKEN="+ciToken)
	c, out, errOut := e.cli("rollback", "demo", "staging", "--server", server, "--wait")
	e.env = saved
	if c != 0 || !strings.Contains(out, "rollback demo → staging") || !strings.Contains(out, "succeeded") {
		t.Fatalf("bot rollback: exit %d\n%s\n%s", c, out, errOut)
	}
	if c, out, errOut := e.deployCLI(viewerToken, "demo", "staging", "--server", server, "--wait"); c != 2 || !strings.Contains(errOut, "403") {
		t.Fatalf("refused: exit %d\n%s\n%s", c, out, errOut)
	}
	if c, out, errOut := e.deployCLI(ciToken, "demo", "production", "v4", "--server", server, "--wait", "--timeout", "4s"); c != 4 ||
		!strings.Contains(out, "awaiting approval") {
		t.Fatalf("awaiting approval: exit %d\n%s\n%s", c, out, errOut)
	}
	if c, out, errOut := e.deployCLI(ciToken, "demo", "staging", "slow", "--server", server, "--wait", "--timeout", "4s"); c != 3 ||
		!strings.Contains(out, "still running") {
		t.Fatalf("timed out: exit %d\n%s\n%s", c, out, errOut)
	}
	if c, _, _ := e.deployCLI("", "demo", "staging", "--server", server); c != 2 {
		t.Fatalf("no SHIPBOT_TOKEN: exit %d", c)
	}
	stopBot(t, p)

	// Audit: the API's requests are rows like the chat's, from api:NAME.
	ci := auditRows(e, "api:gitlab-ci")
	viewer := auditRows(e, "api:viewer-ci")
	for _, want := range []struct {
		evs     []audit.Event
		kind    audit.Kind
		command string
		outcome string
	}{
		{ci, audit.KindIntent, "deploy", ""}, {ci, audit.KindOutcome, "deploy", "succeeded"}, {ci, audit.KindOutcome, "deploy", "failed"},
		{ci, audit.KindDenial, "deploy", "locked"}, {ci, audit.KindIntent, "apps", ""}, {ci, audit.KindIntent, "job", ""},
		{viewer, audit.KindDenial, "deploy", "permission"},
	} {
		if !hasRow(want.evs, want.kind, want.command, want.outcome) {
			t.Errorf("no %s %s row %q among %+v", want.kind, want.command, want.outcome, want.evs)
		}
	}
	for _, ev := range ci {
		if ev.Chat != "api:gitlab-ci" || ev.Via != "api" || ev.Actor != "ci" {
			t.Fatalf("an API row not marked as via the API: %+v", ev)
		}
	}
	e.mustVerify()

	// Restart: the key still names the first job. Then the token is
	// removed from the config: from the reload (SIGHUP) on, and after a
	// restart, it no longer opens.
	p = e.startAPIBot()
	code, body = call(t, addr, "POST", "/api/v1/jobs", ciToken, "ci-run-1", deployBody("demo", "staging", "v1"))
	if code != 202 || id(t, body) != first {
		t.Fatalf("replay after restart: %d %v", code, body)
	}
	e.writeAPIConfig(tg.URL, addr, false)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return strings.Contains(p.errOut.String(), "config reloaded") })
	if code, body := call(t, addr, "GET", "/api/v1/apps", ciToken, "", ""); code != 401 {
		t.Fatalf("token revoked by reload: %d %v", code, body)
	}
	stopBot(t, p)
	p = e.startAPIBot()
	if code, body := call(t, addr, "GET", "/api/v1/apps", ciToken, "", ""); code != 401 {
		t.Fatalf("revoked token: %d %v", code, body)
	}
	if code, _ := call(t, addr, "GET", "/api/v1/apps", viewerToken, "", ""); code != 200 {
		t.Fatalf("the other token: %d", code)
	}
	stopBot(t, p)
}

// A token shorter than 32 random bytes stops start-up, naming the key and
// not the value.
func TestBinaryAPIShortTokenStopsStartup(t *testing.T) {
	t.Parallel()
	e, _, _ := apiEnv(t, true)
	e.env = []string{"SHIPBOT_CI_TOKEN=too-short-to-be-a-token"}
	code, out, errOut := e.cli("run", "--config", e.config)
	if code == 0 || !strings.Contains(errOut, "api.tokens.gitlab-ci") || !strings.Contains(errOut, "bot token new") ||
		strings.Contains(out+errOut, "too-short-to-be-a-token") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = e.cli("token", "new")
	if tok := strings.TrimSpace(out); code != 0 || len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("bot token new: exit %d %q", code, out)
	}
}
