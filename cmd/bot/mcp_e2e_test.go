package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"

	"github.com/shipbot/shipbot/internal/audit"
)

var (
	// The assistant's token (user ai, a developer) and a viewer's.
	aiToken      = strings.Repeat("a", 21) + "-mcp-" + strings.Repeat("z", 21)
	aiViewToken  = strings.Repeat("w", 44)
	mcpOrigin    = "https://assistant.example.com"
	mcpConfigFmt = `bot:
  data_dir: %[1]s/var
  shutdown_timeout: 5s
http:
  listen: "%[2]s"
chat:
  shell: {enabled: true, user: alice}
api:
  tokens:
    assistant: ${SHIPBOT_AI_TOKEN}
    viewer-ai: ${SHIPBOT_AI_VIEW_TOKEN}
mcp:
  enabled: true
  approval_chat: shell:terminal
  allowed_origins: ["%[5]s"]
users:
  alice: {identities: ["shell:alice"], roles: [developer]}
  bob: {identities: ["shell:bob"], roles: [lead]}
  ai: {identities: ["api:assistant"], roles: [developer]}
  watcher: {identities: ["api:viewer-ai"], roles: [viewer]}
roles:
  developer: {permissions: ["deploy:*", "status:*", "logs:*", "cancel:*", "lock:staging"]}
  lead: {permissions: ["deploy:*", "status:*", "logs:*", "approve:*", "audit:read"]}
  viewer: {permissions: ["status:*"]}
apps:
  demo:
    defaults:
      driver: local
      fetch: {copy: %[3]s, ref: main}
      shared: [app.log]
      build: [["sh", "build.sh", "{{release}}", "{{ref}}"]]
      restart: [["sh", "restart.sh", "{{shared_path}}"]]
      health: {command: ["sh", "{{current_path}}/healthcheck.sh", "{{shared_path}}"], retries: 3, interval: 1s}
      logs: {file: "{{shared_path}}/app.log", max_lines: %[4]d, max_bytes: 65536}
    envs:
      staging:
        path: %[1]s/var/deploy/demo/staging
      production:
        path: %[1]s/var/deploy/demo/production
        approval: {required: true, approver_roles: [lead]}
`
)

// logCap is the env's logs.max_lines in the MCP test's config.
const logCap = 40

// bearer adds a token (and an Origin, when set) to every request.
type bearer struct {
	token, origin string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	if b.origin != "" {
		r.Header.Set("Origin", b.origin)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// mcpClient is the SDK's own client on the real endpoint, recording every
// tool result so the test can check no secret reached one.
type mcpClient struct {
	t       *testing.T
	s       *sdk.ClientSession
	mu      sync.Mutex
	results []string
	notes   []string // progress messages
}

func connectMCP(t *testing.T, url, token, origin string) *mcpClient {
	t.Helper()
	httpStatus(t, url, "", "") // waits for the listener
	c := &mcpClient{t: t}
	client := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "1"}, &sdk.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *sdk.ProgressNotificationClientRequest) {
			c.mu.Lock()
			c.notes = append(c.notes, req.Params.Message)
			c.mu.Unlock()
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := &sdk.StreamableClientTransport{Endpoint: url, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearer{token: token, origin: origin}, Timeout: 2 * time.Minute}}
	s, err := client.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c.s = s
	return c
}

// call calls a tool and returns its result, its text and its structured content.
func (c *mcpClient) call(name string, args map[string]any, progress bool) (*sdk.CallToolResult, string, map[string]any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := &sdk.CallToolParams{Name: name, Arguments: args}
	if progress {
		p.SetProgressToken("p-" + name)
	}
	res, err := c.s.CallTool(ctx, p)
	if err != nil {
		c.t.Fatalf("%s %v: %v", name, args, err)
	}
	raw, _ := json.Marshal(res)
	c.mu.Lock()
	c.results = append(c.results, string(raw))
	c.mu.Unlock()
	var text string
	for _, ct := range res.Content {
		if tc, ok := ct.(*sdk.TextContent); ok {
			text += tc.Text
		}
	}
	var sc map[string]any
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &sc)
	}
	return res, text, sc
}

// pollJob calls the job tool until the job is in state.
func (c *mcpClient) pollJob(id any, state string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, text, sc := c.call("job", map[string]any{"id": id}, false)
		if res.IsError {
			c.t.Fatalf("job %v: %s", id, text)
		}
		if sc["state"] == state {
			return sc
		}
		if sc["done"] == true || time.Now().After(deadline) {
			c.t.Fatalf("job %v is %v, want %s:\n%s", id, sc["state"], state, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpStatus(t *testing.T, url, token, origin string) int {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
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

// An AI assistant drives shipbot through MCP with the SDK's own client, over
// real HTTP, against the real binary: tools with enum schemas, a deploy to
// succeeded with progress, a policy refusal audited, a production deploy
// that runs only once a person presses Approve in the shell chat, bounded
// and redacted logs, and 401/403 before any MCP processing.
func TestE2EMCP(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := &testEnv{t: t, dir: t.TempDir()}
	e.config = filepath.Join(e.dir, "shipbot.yaml")
	demo, _ := filepath.Abs("../../examples/demo")
	if err := os.WriteFile(e.config, []byte(fmt.Sprintf(mcpConfigFmt, e.dir, addr, demo, logCap, mcpOrigin)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env = []string{"SHIPBOT_AI_TOKEN=" + aiToken, "SHIPBOT_AI_VIEW_TOKEN=" + aiViewToken}
	p := e.startBot(nil, e.env...)
	url := "http://" + addr + "/mcp"

	// No token, a wrong token: 401 before any MCP processing; a foreign
	// browser origin: 403 even with a good token.
	if got := httpStatus(t, url, "", ""); got != http.StatusUnauthorized {
		t.Fatalf("no token: HTTP %d, want 401", got)
	}
	if got := httpStatus(t, url, strings.Repeat("x", 43), ""); got != http.StatusUnauthorized {
		t.Fatalf("wrong token: HTTP %d, want 401", got)
	}
	if got := httpStatus(t, url, aiToken, "https://evil.example"); got != http.StatusForbidden {
		t.Fatalf("foreign origin: HTTP %d, want 403", got)
	}
	if got := httpStatus(t, url, aiToken, mcpOrigin); got != http.StatusOK {
		t.Fatalf("allowed origin: HTTP %d, want 200", got)
	}

	ai := connectMCP(t, url, aiToken, "")

	// Tools: the fifteen, with app/env enums from the config, read tools
	// read-only, deploy destructive, and no way to approve.
	lt, err := ai.s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*sdk.Tool{}
	for _, tl := range lt.Tools {
		byName[tl.Name] = tl
	}
	for _, n := range []string{"apps", "status", "releases", "logs", "jobs", "job", "audit", "deploy", "rollback", "backup",
		"backups", "lock", "unlock", "cancel", "plan"} {
		if byName[n] == nil {
			t.Errorf("tool %s missing", n)
		}
	}
	if byName["approve"] != nil || byName["deny"] != nil || len(lt.Tools) != 15 {
		t.Errorf("tools: %d; an approve or deny tool must not exist", len(lt.Tools))
	}
	dep := byName["deploy"]
	schema, _ := json.Marshal(dep.InputSchema)
	if !strings.Contains(string(schema), `"enum":["demo"]`) || !strings.Contains(string(schema), `"enum":["production","staging"]`) {
		t.Errorf("deploy schema lacks the config's enums: %s", schema)
	}
	if !strings.Contains(dep.Description, "approval") || dep.Annotations == nil || dep.Annotations.DestructiveHint == nil ||
		!*dep.Annotations.DestructiveHint || dep.Annotations.ReadOnlyHint {
		t.Errorf("deploy: description %q, annotations %+v", dep.Description, dep.Annotations)
	}
	if st := byName["status"]; st.Annotations == nil || !st.Annotations.ReadOnlyHint {
		t.Errorf("status is not annotated read-only")
	}

	// The schema holds: an env that is not configured is refused by the SDK.
	if res, text, _ := ai.call("deploy", map[string]any{"app": "demo", "env": "qa"}, false); !res.IsError || !strings.Contains(text, "qa") {
		t.Errorf("deploy to qa: %v %s", res.IsError, text)
	}

	// Deploy to staging and wait: progress notifications, then succeeded.
	res, text, sc := ai.call("deploy", map[string]any{"app": "demo", "env": "staging", "wait": true}, true)
	if res.IsError || sc["state"] != "succeeded" || sc["waited"] != "done" {
		t.Fatalf("deploy staging: %s %v", text, sc)
	}
	ai.mu.Lock()
	notes := slices.Clone(ai.notes)
	ai.mu.Unlock()
	if len(notes) < 2 || !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, "running") }) {
		t.Errorf("progress notifications: %q", notes)
	}
	release := e.currentRelease("staging")
	if sc["release"] != release {
		t.Errorf("deploy says release %v, staging has %s", sc["release"], release)
	}
	if res, text, _ := ai.call("status", map[string]any{"app": "demo", "env": "staging"}, false); res.IsError || !strings.Contains(text, release) {
		t.Errorf("status: %s", text)
	}

	// A policy refusal: a tool error with the reason, and an audit denial.
	viewer := connectMCP(t, url, aiViewToken, "")
	res, text, sc = viewer.call("deploy", map[string]any{"app": "demo", "env": "staging"}, false)
	if !res.IsError || sc["denial"] != "permission" || !strings.Contains(text, "deploy") {
		t.Fatalf("viewer deploy: %v %s %v", res.IsError, text, sc)
	}

	// Four eyes: the assistant's production deploy waits; the card goes to
	// the shell chat, where bob presses Approve; only then does it run.
	res, text, sc = ai.call("deploy", map[string]any{"app": "demo", "env": "production", "wait": true}, false)
	if res.IsError || sc["state"] != "awaiting_approval" || sc["waited"] != "awaiting approval" || !strings.Contains(text, "Approve") {
		t.Fatalf("production deploy: %s %v", text, sc)
	}
	id := int(sc["job_id"].(float64))
	approve := p.waitFor(cardLine(id, `\[(\d+a)\] Approve  \[\d+b\] Deny`))[1]
	if dirs := e.releaseDirs("production"); len(dirs) != 0 {
		t.Fatalf("production has releases %v before anyone approved", dirs)
	}
	p.send("/as bob")
	p.waitFor(`(?m)^you are now bob$`)
	p.send(approve)
	p.waitFor(fmt.Sprintf(`(?m)^Approved job #%d$`, id))
	done := ai.pollJob(id, "succeeded")
	if done["approved_by"] != "bob" {
		t.Errorf("approved_by = %v", done["approved_by"])
	}
	e.currentRelease("production")

	// Logs: capped like chat (the env's max_lines), secrets redacted.
	var big strings.Builder
	for i := range 500 {
		fmt.Fprintf(&big, "line %d token=%s\n", i, aiToken)
	}
	if err := os.WriteFile(filepath.Join(e.envPath("staging"), "shared", "app.log"), []byte(big.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res, text, sc = ai.call("logs", map[string]any{"app": "demo", "env": "staging", "lines": 1000}, false)
	lines, _ := sc["lines"].([]any)
	if res.IsError || len(lines) != logCap || !strings.Contains(text, "line 499") || !strings.Contains(text, "token=[redacted]") || strings.Contains(text, "line 400 ") {
		t.Fatalf("logs: %d lines (want %d):\n%.400s", len(lines), logCap, text)
	}

	// The reads an assistant has: apps, jobs, job, releases, plan, audit
	// (refused: ai lacks audit:read).
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"apps", nil, "demo/production"},
		{"jobs", nil, "deploy"},
		{"releases", map[string]any{"app": "demo", "env": "staging"}, release},
		{"plan", map[string]any{"app": "demo", "env": "staging"}, "nothing runs"},
	} {
		if res, text, _ := ai.call(c.tool, c.args, false); res.IsError || !strings.Contains(text, c.want) {
			t.Errorf("%s: %v %s", c.tool, res.IsError, text)
		}
	}
	if res, text, _ := ai.call("audit", nil, false); !res.IsError || !strings.Contains(text, "permission") {
		t.Errorf("audit without audit:read: %s", text)
	}

	// No tool result carried a token.
	for _, c := range []*mcpClient{ai, viewer} {
		for _, r := range c.results {
			if strings.Contains(r, aiToken) || strings.Contains(r, aiViewToken) {
				t.Fatalf("a token reached a tool result: %.300s", r)
			}
		}
	}
	p.closeInput()
	p.mustExit0()
	for _, tok := range []string{aiToken, aiViewToken} {
		if strings.Contains(p.out.String()+p.errOut.String(), tok) {
			t.Fatal("a token reached the bot's output")
		}
	}

	// Audit: the assistant's rows are api:NAME through the door mcp, the
	// refusal is a denial, and the chain holds.
	evs := e.auditExport()
	var deployed, denied bool
	for _, ev := range evs {
		if ev.Identity == "api:assistant" && ev.Chat == "mcp:assistant" && ev.Via == "mcp" && ev.Actor == "ai" && ev.Kind == audit.KindIntent && ev.Command == "deploy" {
			deployed = true
		}
		if ev.Identity == "api:viewer-ai" && ev.Chat == "mcp:viewer-ai" && ev.Via == "mcp" && ev.Kind == audit.KindDenial && ev.Command == "deploy" &&
			strings.HasPrefix(ev.Outcome, "permission") {
			denied = true
		}
	}
	if !deployed || !denied {
		t.Errorf("audit: deploy intent via mcp %v, denial via mcp %v", deployed, denied)
	}
	e.mustVerify()
}

// Without mcp.approval_chat the approval card of an assistant's job goes
// where the team reads deploy notices (routes of source shipbot), like the
// API's: here the Telegram ops chat, where bob approves it.
func TestE2EMCPApprovalCardToRoutes(t *testing.T) {
	t.Parallel()
	e, tg, addr := apiEnv(t, true)
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("mcp:\n  enabled: true\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := e.startAPIBot()
	ai := connectMCP(t, "http://"+addr+"/mcp", ciToken, "")
	res, text, sc := ai.call("deploy", map[string]any{"app": "demo", "env": "production", "ref": "v1"}, false)
	if res.IsError || sc["state"] != "awaiting_approval" || sc["approval_id"] == "" {
		t.Fatalf("production deploy: %s %v", text, sc)
	}
	var card telegramtest.Message
	waitFor(t, "the approval card in the ops chat", func() bool {
		for _, m := range tg.Messages(opsChat) {
			if strings.Contains(e.resolveButtons(m.Markup), "approve:"+sc["approval_id"].(string)) {
				card = m
				return true
			}
		}
		return false
	})
	press, _ := tg.NewPress(telegramtest.User(200, "bob"), opsChat, card.ID, tg.ButtonData(opsChat, card.ID, "Approve"), true)
	tg.Push(press)
	if done := ai.pollJob(sc["job_id"], "succeeded"); done["approved_by"] != "bob" {
		t.Errorf("approved_by = %v", done["approved_by"])
	}
	stopBot(t, p)
}
