package main

import (
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

	"github.com/shipbot/shipbot/internal/chat/telegram/telegramtest"
	"github.com/shipbot/shipbot/internal/pipeline"
)

const ghE2ESecret = "e2e-github-secret"

// githubPipelineEnv is a shipbot on Telegram that takes GitHub webhooks,
// routes octo-org/* to the ops chat and offers a deploy on green CI runs.
func githubPipelineEnv(t *testing.T) (*testEnv, *telegramtest.Server, string) {
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
  github_secret: %[5]s
  routes:
    - projects: ["octo-org/*"]
      chats: ["telegram:-100777"]
  deploy_buttons:
    - {project: octo-org/octo-repo, ref: master, app: demo, env: staging, workflows: [CI]}
users:
  alice: {identities: ["telegram:100"], roles: [dev]}
roles:
  dev: {permissions: ["deploy:*", "status:*"]}
apps:
  demo:
    project: octo-org/octo-repo
    envs:
      staging:
        driver: local
        path: %[1]s/var/deploy/demo/staging
        fetch: {copy: %[6]s, ref: main}
        build: [["sh", "build.sh", "{{release}}", "{{ref}}"]]
        shared: [app.log]
        restart: [["sh", "restart.sh", "{{shared_path}}"]]
        health: {command: ["sh", "{{current_path}}/healthcheck.sh", "{{shared_path}}"], retries: 3, interval: 1s}
`, dir, tg.URL, addr, tgToken, ghE2ESecret, demo)
	path := filepath.Join(dir, "shipbot.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, dir: dir, config: path}, tg, addr
}

// ghPayload is one of GitHub's example payloads (octokit/webhooks
// payload-examples, copied under internal/pipeline/testdata/lifecycle),
// changed the way a later delivery of the same run differs.
func ghPayload(t *testing.T, file string, set map[string]any) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "internal", "pipeline", "testdata", "lifecycle", file))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	for path, v := range set {
		keys := strings.Split(path, ".")
		m := p
		for _, k := range keys[:len(keys)-1] {
			m = m[k].(map[string]any)
		}
		m[keys[len(keys)-1]] = v
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// postGitHub delivers a signed GitHub webhook, waiting for the listener,
// and returns the status and the result word.
func postGitHub(t *testing.T, addr, event, id string, body []byte) (int, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/github", strings.NewReader(string(body)))
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set(pipeline.GitHubSigHeader, pipeline.Sign(body, ghE2ESecret))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var answer struct{ Result string }
			_ = json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			return resp.StatusCode, answer.Result
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A GitHub CI run fails; a successful job event arrives after the run
// completed, then a stale run event and one with the same updated_at and the
// other conclusion. The chat's one message stays "failed", keeps the failed
// job, the author and the link, offers no deploy, and is not edited again
// for news that changes nothing on it.
func TestBinaryGitHubFailureSurvivesLateJobEvents(t *testing.T) {
	t.Parallel()
	e, tg, addr := githubPipelineEnv(t)
	p := e.startBot(nil)
	const runID = 289782451
	at := func(s int) string { return time.Date(2026, 11, 22, 10, 0, s, 0, time.UTC).Format(time.RFC3339) }
	run := func(action, status string, conclusion any, updated int) []byte {
		return ghPayload(t, "github_workflow_run.json", map[string]any{"action": action, "workflow_run.status": status,
			"workflow_run.conclusion": conclusion, "workflow_run.name": "CI", "workflow_run.run_started_at": at(2),
			"workflow_run.updated_at": at(updated)})
	}
	// One run's deliveries share its repository (the job example's is another).
	var runDoc struct{ Repository map[string]any }
	if err := json.Unmarshal(ghPayload(t, "github_workflow_run.json", nil), &runDoc); err != nil {
		t.Fatal(err)
	}
	repo := runDoc.Repository
	job := func(action, name string, conclusion any, started, completed int) []byte {
		var done any
		if completed > 0 {
			done = at(completed)
		}
		return ghPayload(t, "github_workflow_job.json", map[string]any{"action": action, "repository": repo,
			"workflow_job.run_id": runID, "workflow_job.name": name, "workflow_job.status": action,
			"workflow_job.conclusion": conclusion, "workflow_job.workflow_name": "CI",
			"workflow_job.head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625", "workflow_job.head_branch": "master",
			"workflow_job.created_at": at(1), "workflow_job.started_at": at(started), "workflow_job.completed_at": done})
	}
	type hook struct {
		event string
		body  []byte
	}
	for i, h := range []hook{
		{"workflow_run", run("requested", "queued", nil, 0)},
		{"workflow_run", run("in_progress", "in_progress", nil, 2)},
		{"workflow_job", job("queued", "build", nil, 1, 0)},
		{"workflow_job", job("in_progress", "build", nil, 5, 0)},
		{"workflow_job", job("in_progress", "test", nil, 6, 0)},
		{"workflow_job", job("completed", "build", "success", 5, 40)},
		{"workflow_job", job("completed", "test", "failure", 6, 60)},
		{"workflow_run", run("completed", "completed", "failure", 62)},
	} {
		if code, _ := postGitHub(t, addr, h.event, fmt.Sprintf("g%d", i), h.body); code != http.StatusOK {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	ciMessages := func() []telegramtest.Message {
		var out []telegramtest.Message
		for _, m := range tg.Messages(-100777) {
			if strings.Contains(m.Text, "octo-org/octo-repo") {
				out = append(out, m)
			}
		}
		return out
	}
	waitFor(t, "the failed run", func() bool {
		ms := ciMessages()
		return len(ms) == 1 && strings.Contains(ms[0].Text, "CI #289782451 failed")
	})
	outboxEmpty := func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `shipbot_outbox_depth{state="pending"} 0`)
	}
	waitFor(t, "the outbox to drain", outboxEmpty)
	before := ciMessages()[0]
	editsBefore := len(tg.Calls("editMessageText"))

	for i, h := range []hook{
		// Reported late, successful, and stamped after the run's updated_at
		// (the job and run clocks are not one): a job's end is not its run's.
		{"workflow_job", job("completed", "lint", "success", 3, 65)},
		{"workflow_job", job("in_progress", "test", nil, 6, 0)},        // stale
		{"workflow_run", run("in_progress", "in_progress", nil, 2)},    // stale
		{"workflow_run", run("completed", "completed", "success", 62)}, // same updated_at, other conclusion
	} {
		if code, result := postGitHub(t, addr, h.event, fmt.Sprintf("late%d", i), h.body); code != http.StatusOK ||
			(result != pipeline.ResultAccepted && result != pipeline.ResultStale) {
			t.Fatalf("late delivery %d: %d %s", i, code, result)
		}
	}
	// Each answer came after its transaction committed: an edit, had there
	// been one, is in the outbox now, and the relay drains it.
	waitFor(t, "the outbox to drain", outboxEmpty)
	ms := ciMessages()
	if len(ms) != 1 {
		t.Fatalf("%d messages for one run", len(ms))
	}
	final := ms[0]
	for _, want := range []string{"CI #289782451 failed", "<b>failed jobs:</b> test", "<b>author:</b> Matthias Fax",
		"<b>link:</b> https://github.com/octo-org/octo-repo/actions/runs/289782451", "<b>duration:</b> 1m0s"} {
		if !strings.Contains(final.Text, want) {
			t.Fatalf("final message lacks %q:\n%s", want, final.Text)
		}
	}
	if strings.Contains(final.Text, "passed") || final.Markup != "" {
		t.Fatalf("a failed run says passed or offers a deploy:\n%s\n%s", final.Text, final.Markup)
	}
	// Not even an edit Telegram would answer "message is not modified".
	if edits := len(tg.Calls("editMessageText")); edits != editsBefore || final.Text != before.Text {
		t.Fatalf("late news that changes nothing edited the message (%d -> %d edits):\n%s", editsBefore, edits, final.Text)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), p.errOut)
	}
	if strings.Contains(p.errOut.String(), ghE2ESecret) {
		t.Fatal("the webhook secret reached the log")
	}
}
