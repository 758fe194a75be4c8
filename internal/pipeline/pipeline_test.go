package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestParseRealSamples(t *testing.T) {
	cases := []struct {
		source, file string
		h            http.Header
		want         Event
	}{
		{GitLab, "gitlab_pipeline.json", hdr("X-Gitlab-Event", "Pipeline Hook"), Event{Source: GitLab, Kind: KindPipeline,
			Project: "gitlab-org/gitlab-test", ID: "31", Ref: "master", SHA: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
			CommitTitle: "test", Author: "User", Status: StatusSuccess, URL: "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31",
			CommitTime: time.Date(2016, 8, 12, 15, 23, 21, 0, time.UTC), // commit.timestamp 17:23:21+02:00
			Duration:   63 * time.Second, Time: time.Date(2016, 8, 12, 15, 26, 29, 0, time.UTC), Untrusted: true, Vetted: true,
			Workflow: "merge_request_event", Jobs: []Job{
				{Name: "production", Status: StatusSkipped, Time: time.Date(2016, 8, 12, 15, 23, 28, 0, time.UTC), AllowFailure: true},
				{Name: "test-image", Status: StatusSuccess, Time: time.Date(2016, 8, 12, 15, 26, 12, 0, time.UTC)},
				{Name: "test-build", Status: StatusSuccess, Time: time.Date(2016, 8, 12, 15, 26, 29, 0, time.UTC)},
				{Name: "build-image", Status: StatusSuccess, Time: time.Date(2016, 8, 12, 15, 23, 28, 0, time.UTC)},
				{Name: "staging", Status: StatusPending, Time: time.Date(2016, 8, 12, 15, 23, 28, 0, time.UTC)}}}},
		{GitLab, "gitlab_job.json", hdr("X-Gitlab-Event", "Job Hook"), Event{Source: GitLab, Kind: KindJob,
			Project: "gitlab-org/gitlab-test", ID: "2366", Ref: "gitlab-script-trigger", SHA: "2293ada6b400935a1378653304eaf6221e0fdb8f",
			CommitTitle: "test", Author: "User", Status: StatusPending, URL: "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/2366",
			Jobs: []Job{{Name: "test", Status: StatusFailed, Time: time.Date(2021, 2, 23, 2, 42, 1, 0, time.UTC)}}}},
		{GitLab, "gitlab_deployment.json", hdr("X-Gitlab-Event", "Deployment Hook"), Event{Source: GitLab, Kind: KindDeployment,
			Project: "root/test-deployment-webhooks", ID: "15", Ref: "main", SHA: "279484c09fbe69ededfced8c1bb6e6d24616b468",
			CommitTitle: "Add new file", Author: "Administrator", Status: StatusSuccess, Environment: "staging",
			URL: "http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796", Time: time.Date(2021, 4, 28, 19, 50, 0, 0, time.UTC)}},
		{GitHub, "github_workflow_run_requested.json", hdr("X-GitHub-Event", "workflow_run"), Event{Source: GitHub, Kind: KindPipeline,
			Project: "octo-org/octo-repo", ID: "30433642", Ref: "main", SHA: "acb5820ced9479c074f688cc328bf03f341a511d",
			CommitTitle: "Update README.md", Author: "Octo Cat", Status: StatusPending, Workflow: "Build", Vetted: true,
			CommitTime: time.Date(2020, 1, 22, 19, 33, 5, 0, time.UTC), // head_commit.timestamp
			URL:        "https://github.com/octo-org/octo-repo/actions/runs/30433642", Time: time.Date(2020, 1, 22, 19, 33, 10, 0, time.UTC)}},
		{GitHub, "github_workflow_run_failure.json", hdr("X-GitHub-Event", "workflow_run"), Event{Source: GitHub, Kind: KindPipeline,
			Project: "octo-org/octo-repo", ID: "30433642", Ref: "main", SHA: "acb5820ced9479c074f688cc328bf03f341a511d",
			CommitTitle: "Update README.md", Author: "Octo Cat", Status: StatusFailed, Duration: 2 * time.Minute, Workflow: "Build", Vetted: true,
			CommitTime: time.Date(2020, 1, 22, 19, 33, 5, 0, time.UTC),
			URL:        "https://github.com/octo-org/octo-repo/actions/runs/30433642", Time: time.Date(2020, 1, 22, 19, 35, 8, 0, time.UTC)}},
		{GitHub, "github_workflow_job_failure.json", hdr("X-GitHub-Event", "workflow_job"), Event{Source: GitHub, Kind: KindJob,
			Project: "octo-org/octo-repo", ID: "30433642", Ref: "main", SHA: "acb5820ced9479c074f688cc328bf03f341a511d",
			URL:  "https://github.com/octo-org/octo-repo/actions/runs/30433642",
			Jobs: []Job{{Name: "test (ubuntu-latest)", Status: StatusFailed, Time: time.Date(2020, 1, 22, 19, 34, 58, 0, time.UTC)}}}},
		{GitHub, "github_deployment_status.json", hdr("X-GitHub-Event", "deployment_status"), Event{Source: GitHub, Kind: KindDeployment,
			Project: "octo-org/octo-repo", ID: "145", Ref: "main", SHA: "acb5820ced9479c074f688cc328bf03f341a511d", Author: "octocat",
			Status: StatusFailed, Error: "Deployment failed: health check", Environment: "production",
			URL: "https://github.com/octo-org/octo-repo/actions/runs/30433642", Time: time.Date(2020, 1, 22, 19, 40, 0, 0, time.UTC)}},
		{Dokploy, "dokploy_build_error.json", http.Header{}, Event{Source: Dokploy, Kind: KindDeployment, Project: "supermock/backend",
			ID: "2026-11-20T10:15:00.000Z", Status: StatusFailed, CommitTitle: "Build failed for SuperMock backend",
			Error: "npm ERR! Missing script: build", Environment: "compose",
			URL:  "https://dokploy.example.com/dashboard/project/p1/services/compose/c1?tab=deployments",
			Time: time.Date(2026, 11, 20, 10, 15, 0, 0, time.UTC)}},
	}
	for _, tc := range cases {
		evs, err := Parse(tc.source, tc.h, sample(t, tc.file))
		if err != nil || len(evs) != 1 {
			t.Errorf("%s: %v %v", tc.file, evs, err)
			continue
		}
		got, _ := json.Marshal(evs[0])
		want, _ := json.Marshal(tc.want)
		if string(got) != string(want) || !evs[0].Time.Equal(tc.want.Time) {
			t.Errorf("%s:\n got %s\nwant %s", tc.file, got, want)
		}
	}
	// workflow_run: the same status "completed" is success or failure by conclusion.
	ok, _ := Parse(GitHub, hdr("X-GitHub-Event", "workflow_run"), sample(t, "github_workflow_run_success.json"))
	if ok[0].Status != StatusSuccess {
		t.Fatalf("completed+success = %s", ok[0].Status)
	}
}

func TestParseIgnoresAndRefuses(t *testing.T) {
	if _, err := Parse(GitHub, hdr("X-GitHub-Event", "ping"), sample(t, "github_ping.json")); !errors.Is(err, ErrIgnored) {
		t.Fatalf("ping: %v", err)
	}
	if _, err := Parse(GitLab, hdr("X-Gitlab-Event", "Push Hook"), []byte(`{}`)); !errors.Is(err, ErrIgnored) {
		t.Fatalf("push: %v", err)
	}
	if _, err := Parse(GitLab, hdr("X-Gitlab-Event", "Pipeline Hook"), []byte(`{"object_attributes":`)); err == nil || errors.Is(err, ErrIgnored) {
		t.Fatalf("malformed: %v", err)
	}
	if _, err := Parse(Generic, nil, []byte(`{"project":"a","id":"1","status":"exploded"}`)); err == nil || !strings.Contains(err.Error(), "exploded") {
		t.Fatalf("generic bad status: %v", err)
	}
}

func FuzzParseNeverPanics(f *testing.F) {
	f.Add([]byte(`{"object_kind":"pipeline"}`))
	f.Add([]byte(`{"workflow_run":{"id":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range []string{GitLab, GitHub, Dokploy, Generic} {
			for _, k := range []string{"Pipeline Hook", "Job Hook", "Deployment Hook", "workflow_run", "workflow_job", "deployment_status"} {
				_, _ = Parse(s, hdr("X-Gitlab-Event", k, "X-GitHub-Event", k), body)
			}
		}
	})
}

func TestVerification(t *testing.T) {
	secret := audit.NewSecret("s3cret")
	body := sample(t, "github_workflow_run_success.json")
	flipped := append([]byte(nil), body...)
	flipped[10] ^= 1
	good := Sign(body, "s3cret")
	cases := []struct {
		name string
		err  error
	}{
		{"github valid", VerifyGitHub(hdr(GitHubSigHeader, good), body, secret)},
		{"github flipped byte", VerifyGitHub(hdr(GitHubSigHeader, good), flipped, secret)},
		{"github wrong secret", VerifyGitHub(hdr(GitHubSigHeader, Sign(body, "other")), body, secret)},
		{"github missing", VerifyGitHub(http.Header{}, body, secret)},
		{"github no secret", VerifyGitHub(hdr(GitHubSigHeader, Sign(body, "")), body, audit.Secret{})},
		{"gitlab valid", VerifyGitLab(hdr(GitLabTokenHeader, "s3cret"), secret)},
		{"gitlab wrong", VerifyGitLab(hdr(GitLabTokenHeader, "s3creT"), secret)},
		{"gitlab missing", VerifyGitLab(http.Header{}, secret)},
		{"gitlab no secret", VerifyGitLab(hdr(GitLabTokenHeader, ""), audit.Secret{})},
		{"dokploy valid", VerifyDokploy(hdr("X-Hook", "s3cret"), "X-Hook", secret)},
		{"dokploy other header", VerifyDokploy(hdr("X-Other", "s3cret"), "X-Hook", secret)},
		{"generic valid", VerifyGeneric(hdr(GenericSigHeader, good), body, secret)},
		{"generic not hex", VerifyGeneric(hdr(GenericSigHeader, "sha256=zz"), body, secret)},
	}
	for _, tc := range cases {
		valid := strings.HasSuffix(tc.name, "valid")
		if (tc.err == nil) != valid {
			t.Errorf("%s: err %v", tc.name, tc.err)
		}
		if tc.err != nil && (!errors.Is(tc.err, ErrUnverified) || strings.Contains(tc.err.Error(), "s3cret")) {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
}

func TestRouting(t *testing.T) {
	ops := notify.Channel{Platform: "telegram", ID: "-100", Thread: "7"}
	dev := notify.Channel{Platform: "slack", ID: "C1"}
	routes := Routes{
		{Projects: []string{"acme/*"}, Refs: []string{"main"}, Chats: []notify.Channel{ops}},
		{Refs: []string{"feature/*"}, Statuses: []string{StatusFailed}, Chats: []notify.Channel{dev}},
		{Sources: []string{GitHub}, Chats: []notify.Channel{dev, ops}},
	}
	cases := []struct {
		e    Event
		want []notify.Channel
	}{
		{Event{Source: GitLab, Project: "acme/web", Ref: "main", Status: StatusSuccess}, []notify.Channel{ops}},
		{Event{Source: GitLab, Project: "acme/web", Ref: "feature/x", Status: StatusSuccess}, nil},
		{Event{Source: GitLab, Project: "other/x", Ref: "feature/x", Status: StatusFailed}, []notify.Channel{dev}},
		{Event{Source: GitHub, Project: "acme/web", Ref: "main", Status: StatusRunning}, []notify.Channel{ops, dev}},
		{Event{Source: GitLab, Project: "acme/web/sub", Ref: "main"}, nil},
	}
	for i, tc := range cases {
		got := routes.Match(tc.e)
		if len(got) != len(tc.want) {
			t.Errorf("case %d: %v, want %v", i, got, tc.want)
			continue
		}
		for j := range got {
			if got[j] != tc.want[j] {
				t.Errorf("case %d: %v, want %v", i, got, tc.want)
			}
		}
	}
	for _, bad := range []Rule{{}, {Chats: []notify.Channel{ops}, Refs: []string{"[x"}}, {Chats: []notify.Channel{ops}, Statuses: []string{"green"}}} {
		if bad.Validate() == nil {
			t.Errorf("rule %+v accepted", bad)
		}
	}
}

func TestNewerNeverUndoesAFinalState(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	running := Event{Status: StatusRunning, Time: t0}
	success := Event{Status: StatusSuccess, Time: t0.Add(time.Minute)}
	if !Newer(running, success) || Newer(success, running) {
		t.Fatal("running/success order")
	}
	lateRunning := Event{Status: StatusRunning, Time: t0.Add(time.Hour)}
	if Newer(success, lateRunning) {
		t.Fatal("a late running replaced success")
	}
	retried := Event{Status: StatusSuccess, Time: t0.Add(2 * time.Hour)}
	if !Newer(Event{Status: StatusFailed, Time: t0.Add(time.Minute)}, retried) {
		t.Fatal("a later success of a retried pipeline did not replace failed")
	}
}

// memStore is the Store in memory with the same transaction semantics.
type memStore struct {
	mu      sync.Mutex
	seen    map[string]bool
	tracked map[string]notify.Tracked
	posts   []notify.Post
	fail    error
}

func newMem() *memStore {
	return &memStore{seen: map[string]bool{}, tracked: map[string]notify.Tracked{}}
}

// Ingest stores what plan returns, as sqlite.DB does: the merge is the
// plan's, so this store merges exactly like the real one (the lifecycle
// tests run on the real one).
func (m *memStore) Ingest(_ context.Context, key, topic string, plan func(*notify.Tracked) (*notify.Tracked, []notify.Post, error)) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, m.fail
	}
	if m.seen[key] {
		return true, nil
	}
	var prev *notify.Tracked
	if p, ok := m.tracked[topic]; ok {
		prev = &p
	}
	next, posts, err := plan(prev)
	if err != nil {
		return false, err
	}
	m.seen[key] = true
	if next != nil {
		m.tracked[topic] = *next
		m.posts = append(m.posts, posts...)
	}
	return false, nil
}

func (m *memStore) Enqueue(_ context.Context, posts ...notify.Post) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.posts = append(m.posts, posts...)
	return nil
}

func (m *memStore) PipelineTopics(_ context.Context, project, sha string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for t, p := range m.tracked {
		if p.Project == project && p.SHA == sha {
			out = append(out, t)
		}
	}
	return out, nil
}

func (m *memStore) SentRef(_ context.Context, topic string, ch notify.Channel) (*notify.Ref, error) {
	return &notify.Ref{Channel: ch, ID: "1700000000.000100"}, nil
}

func TestServiceFlow(t *testing.T) {
	store := newMem()
	counts := map[string]int{}
	var mu sync.Mutex
	ops := notify.Channel{Platform: "slack", ID: "C1"}
	svc := New(Options{Store: store, Secrets: Secrets{GitHub: audit.NewSecret("gh"), GitLab: audit.NewSecret("gl")},
		Routes:   Routes{{Projects: []string{"octo-org/*"}, Chats: []notify.Channel{ops}}, {Sources: []string{Shipbot}, Chats: []notify.Channel{ops}}},
		Offers:   []DeployOffer{{Project: "octo-org/octo-repo", Ref: "main", App: "web", Env: "staging"}},
		Projects: map[string]string{"web": "octo-org/octo-repo"},
		Count:    func(s, r string) { mu.Lock(); counts[s+"/"+r]++; mu.Unlock() }})
	routes := svc.Routes()
	if len(routes) != 2 {
		t.Fatalf("routes %+v: only sources with a secret are served", routes)
	}
	var gh http.Handler
	for _, r := range routes {
		if r.Path == "/hooks/github" {
			gh = r.Handler
		}
	}
	deliver := func(file, delivery, sig string) int {
		body := sample(t, file)
		req := httptest.NewRequest(http.MethodPost, "/hooks/github", strings.NewReader(string(body)))
		req.Header.Set("X-GitHub-Event", strings.TrimSuffix(strings.SplitN(strings.TrimPrefix(file, "github_"), "_", 3)[0]+"_"+strings.SplitN(strings.TrimPrefix(file, "github_"), "_", 3)[1], ""))
		req.Header.Set("X-GitHub-Delivery", delivery)
		if sig == "" {
			sig = Sign(body, "gh")
		}
		req.Header.Set(GitHubSigHeader, sig)
		rec := httptest.NewRecorder()
		gh.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := deliver("github_workflow_run_requested.json", "d1", "sha256=00"); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	for _, step := range []struct{ file, id string }{
		{"github_workflow_run_requested.json", "d1"}, {"github_workflow_run_in_progress.json", "d2"},
		{"github_workflow_run_in_progress.json", "d2"}, // redelivery
		{"github_workflow_run_success.json", "d3"},
		{"github_workflow_run_in_progress.json", "d4"}, // late and out of order
	} {
		if code := deliver(step.file, step.id, ""); code != http.StatusOK {
			t.Fatalf("%s: %d", step.file, code)
		}
	}
	store.mu.Lock()
	posts := append([]notify.Post(nil), store.posts...)
	store.mu.Unlock()
	if len(posts) != 3 {
		t.Fatalf("%d posts; want requested, running, success (no redelivery, no late running)", len(posts))
	}
	for _, p := range posts {
		if p.Topic != posts[0].Topic || p.Channel != ops {
			t.Fatalf("posts %+v: one message per pipeline", posts)
		}
	}
	final := posts[2].Message
	if !strings.Contains(final.Title, "passed") || len(final.Buttons) != 1 ||
		final.Buttons[0].Data != "deploy:web:staging:acb5820ced9479c074f688cc328bf03f341a511d" || len(final.Buttons[0].Data) > 64 {
		t.Fatalf("final card %+v", final)
	}
	if counts["github/duplicate"] != 1 || counts["github/stale"] != 1 || counts["github/unverified"] != 1 || counts["github/accepted"] != 3 {
		t.Fatalf("counts %v", counts)
	}
	// shipbot's own deploy of that sha threads under the pipeline message, once per status.
	j := deploy.Job{ID: 9, App: "web", Env: "staging", Action: deploy.ActionDeploy, Ref: "acb5820ced9479c074f688cc328bf03f341a511d",
		State: deploy.Running, RequestedBy: deploy.Who{User: "bob"}}
	jp := notify.NewJobPosts(notify.JobPostsOptions{Routes: svc})
	notice := func(prev deploy.State) {
		if err := store.Enqueue(context.Background(), jp.Posts(context.Background(), prev, j)...); err != nil {
			t.Fatal(err)
		}
	}
	notice(deploy.Queued)
	notice(deploy.Running) // a step change: no new notice (the job has no chat: no card either)
	j.State = deploy.Succeeded
	notice(deploy.Running)
	store.mu.Lock()
	notices := store.posts[3:]
	store.mu.Unlock()
	if len(notices) != 2 || notices[0].Topic != "notice:job:9" || notices[0].Channel.Thread != "1700000000.000100" ||
		!strings.Contains(notices[1].Message.Title, "succeeded") {
		t.Fatalf("notices %+v", notices)
	}
	// A store failure is a 500 (the source retries), not a lost event.
	store.mu.Lock()
	store.fail = errors.New("disk full")
	store.mu.Unlock()
	if code := deliver("github_workflow_run_failure.json", "d9", ""); code != http.StatusInternalServerError {
		t.Fatalf("store failure: %d", code)
	}
}
