package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// The lifecycle tests replay whole pipelines, built from real payloads
// (testdata/lifecycle/README.md), through the real webhook handler into the
// real SQLite store, in order, shuffled, with duplicates and late
// deliveries, and check every card a chat would show on the way.

// delivery is one webhook POST.
type delivery struct {
	label string
	event string // X-GitHub-Event or X-Gitlab-Event
	id    string // X-GitHub-Delivery / X-Gitlab-Event-UUID: the same id is the same delivery
	body  []byte
	// passes/fails: this delivery says the pipeline itself passed/failed.
	passes, fails bool
	failedJob     string // this delivery says this job failed
	// workflow: this delivery names the workflow / pipeline source.
	workflow bool
}

// payload is a real payload to change the way a later delivery differs.
type payload map[string]any

func loadPayload(t *testing.T, name string) payload {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "lifecycle", name))
	if err != nil {
		t.Fatal(err)
	}
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// set changes the value at a dotted path ("workflow_run.conclusion").
func (p payload) set(path string, v any) payload {
	keys := strings.Split(path, ".")
	m := map[string]any(p)
	for _, k := range keys[:len(keys)-1] {
		m = m[k].(map[string]any)
	}
	m[keys[len(keys)-1]] = v
	return p
}

func (p payload) get(path string) any {
	keys := strings.Split(path, ".")
	m := map[string]any(p)
	for _, k := range keys[:len(keys)-1] {
		m = m[k].(map[string]any)
	}
	return m[keys[len(keys)-1]]
}

// clone deep-copies p through JSON, as each delivery is its own body.
func (p payload) clone(t *testing.T) payload {
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var c payload
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (p payload) bytes(t *testing.T) []byte {
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func ghTime(s int) string { return t0.Add(time.Duration(s) * time.Second).Format(time.RFC3339) }
func glTime(s int) string {
	return t0.Add(time.Duration(s) * time.Second).Format("2006-01-02 15:04:05 UTC")
}

// ghRun is one GitHub Actions run of workflow name: its workflow_run and
// workflow_job deliveries, as GitHub sends them in one real run.
type ghRun struct {
	t        *testing.T
	run, job payload
	id       int
	workflow string
	n        int
}

func newGHRun(t *testing.T, id int, workflow string) *ghRun {
	run := loadPayload(t, "github_workflow_run.json")
	run.set("workflow_run.id", id).set("workflow_run.name", workflow).set("workflow.name", workflow).
		set("workflow_run.html_url", fmt.Sprintf("https://github.com/octo-org/octo-repo/actions/runs/%d", id))
	job := loadPayload(t, "github_workflow_job.json")
	// One run's deliveries share its repository, run id, commit and workflow.
	job.set("repository", run.clone(t).get("repository")).set("workflow_job.run_id", id).
		set("workflow_job.run_url", fmt.Sprintf("https://api.github.com/repos/octo-org/octo-repo/actions/runs/%d", id)).
		set("workflow_job.head_sha", run.get("workflow_run.head_sha")).
		set("workflow_job.head_branch", run.get("workflow_run.head_branch")).set("workflow_job.workflow_name", workflow)
	return &ghRun{t: t, run: run, job: job, id: id, workflow: workflow}
}

func (g *ghRun) next(label string) string {
	g.n++
	return fmt.Sprintf("%s-%d-%d", label, g.id, g.n)
}

// runEvent: action requested|in_progress|completed at second at.
func (g *ghRun) runEvent(action, conclusion string, at int) delivery {
	p := g.run.clone(g.t)
	status := map[string]string{"requested": "queued", "in_progress": "in_progress", "completed": "completed"}[action]
	var c any
	if conclusion != "" {
		c = conclusion
	}
	p.set("action", action).set("workflow_run.status", status).set("workflow_run.conclusion", c).
		set("workflow_run.created_at", ghTime(0)).set("workflow_run.run_started_at", ghTime(2)).
		set("workflow_run.updated_at", ghTime(at))
	return delivery{label: g.workflow + " run " + action + " " + conclusion, event: "workflow_run", id: g.next("run"),
		body: p.bytes(g.t), passes: conclusion == "success", fails: conclusion == "failure", workflow: true}
}

// jobEvent: action queued|in_progress|completed of job name; created at
// 1s, started at started, completed at done.
func (g *ghRun) jobEvent(name, action, conclusion string, started, done int) delivery {
	p := g.job.clone(g.t)
	var c, completed any
	if action == "completed" {
		c, completed = conclusion, ghTime(done)
	}
	startedAt := ghTime(started)
	if action == "queued" {
		startedAt = ghTime(1) // a queued job's started_at is its created_at (payload-examples workflow_job/queued)
	}
	p.set("action", action).set("workflow_job.name", name).set("workflow_job.status", action).
		set("workflow_job.conclusion", c).set("workflow_job.created_at", ghTime(1)).
		set("workflow_job.started_at", startedAt).set("workflow_job.completed_at", completed)
	d := delivery{label: fmt.Sprintf("%s job %s %s %s", g.workflow, name, action, conclusion), event: "workflow_job",
		id: g.next("job"), body: p.bytes(g.t), workflow: true} // workflow_job.workflow_name
	if conclusion == "failure" {
		d.failedJob = name
	}
	return d
}

// ghLifecycle is a run of two jobs, build and test, where test ends with
// testEnd and the run with runEnd; late are deliveries after the run ended
// in any order; last comes after all of them.
func ghLifecycle(g *ghRun, testEnd, runEnd string) (inOrder, late, last []delivery) {
	inOrder = []delivery{
		g.runEvent("requested", "", 0),
		g.runEvent("in_progress", "", 2),
		g.jobEvent("build", "queued", "", 0, 0),
		g.jobEvent("test", "queued", "", 0, 0),
		g.jobEvent("build", "in_progress", "", 5, 0),
		g.jobEvent("test", "in_progress", "", 6, 0),
		g.jobEvent("build", "completed", "success", 5, 40),
		g.jobEvent("test", "completed", testEnd, 6, 60),
		g.runEvent("completed", runEnd, 62),
	}
	late = []delivery{
		g.jobEvent("test", "in_progress", "", 6, 0),        // a stale job event, delivered late
		g.jobEvent("lint", "completed", "success", 3, 70),  // reported late, successful, stamped after the run ended
		g.runEvent("in_progress", "", 2),                   // a stale run event
		inOrder[3],                                         // a redelivery: the same delivery id
		g.jobEvent("build", "completed", "success", 5, 40), // the same news under a new delivery id
	}
	// The same updated_at with the other conclusion, after the real one: not
	// strictly later, so it must change nothing (and must not count).
	last = []delivery{g.runEvent("completed", map[string]string{"success": "failure", "failure": "success"}[runEnd], 62)}
	last[0].passes, last[0].fails = false, false
	return inOrder, late, last
}

// glPipeline is one GitLab pipeline's Pipeline and Job Hook deliveries.
type glPipeline struct {
	t         *testing.T
	pipe, job payload
	n         int
	webURL    string
}

func newGLPipeline(t *testing.T) *glPipeline {
	pipe := loadPayload(t, "gitlab_pipeline_hook.json")
	web := pipe.get("project.web_url").(string)
	// A branch pipeline (the docs' example is a merge request's), whose
	// url is its project's web_url + /-/pipelines/ID as GitLab builds it.
	pipe.set("object_attributes.source", "push").set("object_attributes.url", web+"/-/pipelines/31")
	delete(pipe, "merge_request")
	job := loadPayload(t, "gitlab_job_hook.json")
	job.set("pipeline_id", 31).set("commit.id", 31).set("sha", pipe.get("object_attributes.sha")).
		set("ref", pipe.get("object_attributes.ref"))
	return &glPipeline{t: t, pipe: pipe, job: job, webURL: web}
}

// jobs of the pipeline: name -> [status, started, finished] as of a moment.
type glJobs map[string][3]any

func (g *glPipeline) pipeline(status string, jobs glJobs, finished int) delivery {
	p := g.pipe.clone(g.t)
	var fin, dur any
	if finished > 0 {
		fin, dur = glTime(finished), 63
	}
	p.set("object_attributes.status", status).set("object_attributes.created_at", glTime(0)).
		set("object_attributes.finished_at", fin).set("object_attributes.duration", dur)
	var builds []any
	base := p.get("builds").([]any)[1].(map[string]any) // test-image, a job that ran
	names := make([]string, 0, len(jobs))
	for name := range jobs {
		names = append(names, name)
	}
	slices.Sort(names)
	failed := ""
	for _, name := range names {
		j := jobs[name]
		b := payload(base).clone(g.t)
		b.set("name", name).set("status", j[0]).set("created_at", glTime(0)).set("started_at", j[1]).set("finished_at", j[2])
		builds = append(builds, map[string]any(b))
		if j[0] == "failed" {
			failed = name
		}
	}
	p.set("builds", builds)
	g.n++
	return delivery{label: "pipeline " + status, event: "Pipeline Hook", id: fmt.Sprintf("gl-pipe-%d", g.n), body: p.bytes(g.t),
		passes: status == "success", fails: status == "failed", failedJob: failed, workflow: true} // object_attributes.source
}

// jobHook: job name at status, started/finished seconds (0: not yet), with
// the pipeline's status at that moment in commit.status.
func (g *glPipeline) jobHook(name, status string, started, finished int, pipelineStatus string, pipelineFinished int) delivery {
	p := g.job.clone(g.t)
	var s, f, pf, pd any
	if started > 0 {
		s = glTime(started)
	}
	if finished > 0 {
		f = glTime(finished)
	}
	if pipelineFinished > 0 {
		pf, pd = glTime(pipelineFinished), 63
	}
	p.set("build_name", name).set("build_status", status).set("build_created_at", glTime(0)).
		set("build_started_at", s).set("build_finished_at", f).
		set("commit.status", pipelineStatus).set("commit.finished_at", pf).set("commit.duration", pd)
	g.n++
	d := delivery{label: fmt.Sprintf("job %s %s (pipeline %s)", name, status, pipelineStatus), event: "Job Hook",
		id: fmt.Sprintf("gl-job-%d", g.n), body: p.bytes(g.t), passes: pipelineStatus == "success", fails: pipelineStatus == "failed"}
	if status == "failed" {
		d.failedJob = name
	}
	return d
}

func glLifecycle(g *glPipeline, testEnd, end string) (inOrder, late []delivery) {
	j := func(st string, s, f int) [3]any {
		var sv, fv any
		if s > 0 {
			sv = glTime(s)
		}
		if f > 0 {
			fv = glTime(f)
		}
		return [3]any{st, sv, fv}
	}
	inOrder = []delivery{
		g.pipeline("pending", glJobs{"build-image": j("pending", 0, 0), "test-image": j("created", 0, 0), "test-build": j("created", 0, 0)}, 0),
		g.jobHook("build-image", "pending", 0, 0, "pending", 0),
		g.pipeline("running", glJobs{"build-image": j("running", 5, 0), "test-image": j("created", 0, 0), "test-build": j("created", 0, 0)}, 0),
		g.jobHook("build-image", "running", 5, 0, "running", 0),
		g.jobHook("build-image", "success", 5, 30, "running", 0),
		g.jobHook("test-image", "running", 31, 0, "running", 0),
		g.jobHook("test-build", "running", 31, 0, "running", 0),
		g.jobHook("test-image", "success", 31, 50, "running", 0),
		// The last job's hook already carries the pipeline's final status.
		g.jobHook("test-build", testEnd, 31, 60, end, 61),
		g.pipeline(end, glJobs{"build-image": j("success", 5, 30), "test-image": j("success", 31, 50), "test-build": j(testEnd, 31, 60)}, 61),
	}
	late = []delivery{
		g.jobHook("build-image", "running", 5, 0, "running", 0),             // stale, late
		g.jobHook("test-image", "pending", 0, 0, "pending", 0),              // stale, late
		g.pipeline("running", glJobs{"build-image": j("running", 5, 0)}, 0), // stale pipeline state
		inOrder[4], // a redelivery
	}
	return inOrder, late
}

// harness is the real handler on the real store, with the relay's view:
// after each delivery it takes the new card versions and marks them sent.
type harness struct {
	t      *testing.T
	db     *sqlite.DB
	h      map[string]http.Handler
	ch     notify.Channel
	cards  map[string][]notify.Message // topic -> every card version, in order
	latest map[string]notify.Message
}

const ghSecret, glToken = "gh-secret", "gl-token"

func newHarness(t *testing.T) *harness {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "shipbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ch := notify.Channel{Platform: "slack", ID: "C0CI"}
	svc := pipeline.New(pipeline.Options{Store: db,
		Secrets: pipeline.Secrets{GitHub: audit.NewSecret(ghSecret), GitLab: audit.NewSecret(glToken)},
		Routes:  pipeline.Routes{{Chats: []notify.Channel{ch}}},
		Offers: []pipeline.DeployOffer{
			{Project: "octo-org/octo-repo", Ref: "master", Workflows: []string{"CI"}, App: "web", Env: "staging"},
			{Project: "gitlab-org/gitlab-test", Ref: "master", Workflows: []string{"push"}, App: "web", Env: "staging"}}})
	h := map[string]http.Handler{}
	for _, r := range svc.Routes() {
		h[r.Path] = r.Handler
	}
	return &harness{t: t, db: db, h: h, ch: ch, cards: map[string][]notify.Message{}, latest: map[string]notify.Message{}}
}

func (h *harness) post(d delivery) int {
	h.t.Helper()
	path := "/hooks/github"
	if strings.HasSuffix(d.event, "Hook") {
		path = "/hooks/gitlab"
	}
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(d.body)))
	if path == "/hooks/github" {
		req.Header.Set("X-GitHub-Event", d.event)
		req.Header.Set("X-GitHub-Delivery", d.id)
		req.Header.Set(pipeline.GitHubSigHeader, pipeline.Sign(d.body, ghSecret))
	} else {
		req.Header.Set("X-Gitlab-Event", d.event)
		req.Header.Set("X-Gitlab-Event-UUID", d.id)
		req.Header.Set(pipeline.GitLabTokenHeader, glToken)
	}
	rec := httptest.NewRecorder()
	h.h[path].ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		h.t.Fatalf("%s: %d %s", d.label, rec.Code, rec.Body.String())
	}
	return rec.Code
}

// drain takes the card versions written since the last drain, as the
// relay would send them, and marks them delivered.
func (h *harness) drain() (changed []string) {
	h.t.Helper()
	ctx := context.Background()
	due, err := h.db.Due(ctx, time.Now().Add(time.Hour), 100, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, d := range due {
		if d.Channel != h.ch {
			h.t.Fatalf("card for %v", d.Channel)
		}
		if prev, ok := h.latest[d.Topic]; ok && reflectEqual(prev, d.Message) {
			h.t.Fatalf("%s: a card identical to the last one was queued again (a wasted edit): %+v", d.Topic, d.Message)
		}
		h.cards[d.Topic] = append(h.cards[d.Topic], d.Message)
		h.latest[d.Topic] = d.Message
		changed = append(changed, d.Topic)
		if err := h.db.Delivered(ctx, d.ID, d.Version); err != nil {
			h.t.Fatal(err)
		}
	}
	return changed
}

func reflectEqual(a, b notify.Message) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func field(m notify.Message, name string) string {
	for _, f := range m.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// invariants follows one pipeline's deliveries and checks each card
// against what has been delivered so far.
type invariants struct {
	t              *testing.T
	link           string
	buttonWorkflow bool // a passed card of this pipeline carries the Deploy button
	passed, failed bool // the pipeline itself said so (a pipeline-level event)
	workflowKnown  bool // a delivery named the workflow (GitLab: only Pipeline Hooks do)
	failedJobs     []string
	final          string // the final word a card has shown: "passed" or "failed"
	cardsSeen      int
}

func (iv *invariants) delivered(d delivery) {
	iv.passed = iv.passed || d.passes
	iv.failed = iv.failed || d.fails
	iv.workflowKnown = iv.workflowKnown || d.workflow
	if d.failedJob != "" && !slices.Contains(iv.failedJobs, d.failedJob) {
		iv.failedJobs = append(iv.failedJobs, d.failedJob)
	}
}

func (iv *invariants) check(after string, m notify.Message) {
	iv.t.Helper()
	iv.cardsSeen++
	word := ""
	for _, w := range []string{"passed", "failed", "running", "pending"} {
		if strings.HasSuffix(m.Title, " "+w) {
			word = w
		}
	}
	switch {
	case word == "":
		iv.t.Fatalf("after %s: card title %q says no status", after, m.Title)
	case word == "passed" && !iv.passed:
		iv.t.Fatalf("after %s: card says passed while the pipeline has not passed: %q", after, m.Title)
	case word == "failed" && !iv.failed:
		iv.t.Fatalf("after %s: card says failed while the pipeline has not failed: %q", after, m.Title)
	case iv.final != "" && word != iv.final:
		iv.t.Fatalf("after %s: the final state %q was undone: %q", after, iv.final, m.Title)
	}
	if word == "passed" || word == "failed" {
		iv.final = word
		if field(m, "running jobs") != "" {
			iv.t.Fatalf("after %s: a finished pipeline lists running jobs: %+v", after, m)
		}
	}
	for _, j := range iv.failedJobs {
		if !strings.Contains(field(m, "failed jobs"), j) {
			iv.t.Fatalf("after %s: failed job %q not on the card: %+v", after, j, m)
		}
	}
	if got := field(m, "link"); got != iv.link {
		iv.t.Fatalf("after %s: link %q, want %q", after, got, iv.link)
	}
	wantButton := word == "passed" && iv.buttonWorkflow && iv.workflowKnown
	if (len(m.Buttons) == 1) != wantButton || len(m.Buttons) > 1 {
		iv.t.Fatalf("after %s: buttons %+v (a Deploy button only on a passed run of the configured workflow)", after, m.Buttons)
	}
}

// orders returns the deliveries in order, then shuffled with duplicates
// and late deliveries mixed in, for a few seeds; last always ends them.
func orders(inOrder, late, last []delivery) map[string][]delivery {
	out := map[string][]delivery{
		"in order":         slices.Concat(inOrder, last),
		"in order, late":   slices.Concat(inOrder, late, last),
		"reversed, late":   slices.Concat(reversed(inOrder), late, last),
		"final first":      slices.Concat(inOrder[len(inOrder)-1:], inOrder[:len(inOrder)-1], late, last),
		"all twice":        slices.Concat(inOrder, inOrder, late, late, last),
		"late interleaved": slices.Concat(interleave(inOrder, late), last),
	}
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 15))
		all := slices.Concat(inOrder, late)
		for range 4 { // duplicates: the same delivery id again, anywhere
			all = append(all, all[r.IntN(len(all))])
		}
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		out[fmt.Sprintf("shuffled %d", seed)] = append(all, last...)
	}
	return out
}

func reversed(ds []delivery) []delivery {
	out := slices.Clone(ds)
	slices.Reverse(out)
	return out
}

func interleave(a, b []delivery) []delivery {
	var out []delivery
	for i := range max(len(a), len(b)) {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

type finalCard struct {
	word, failedJobs, author, duration string
	button                             bool
}

func checkFinal(t *testing.T, name string, m notify.Message, want finalCard, link string) {
	t.Helper()
	got := finalCard{word: m.Title[strings.LastIndex(m.Title, " ")+1:], failedJobs: field(m, "failed jobs"),
		author: field(m, "author"), duration: field(m, "duration"), button: len(m.Buttons) == 1}
	if got != want || field(m, "link") != link {
		t.Fatalf("%s: final card %+v\n got %+v\nwant %+v, link %s", name, m, got, want, link)
	}
}

func TestGitHubLifecycles(t *testing.T) {
	for _, tc := range []struct {
		name            string
		testEnd, runEnd string
		want            finalCard
	}{
		{"success", "success", "success", finalCard{word: "passed", author: "Matthias Fax", duration: "1m0s", button: true}},
		{"failure", "failure", "failure", finalCard{word: "failed", failedJobs: "test", author: "Matthias Fax", duration: "1m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var finals []string
			ci := newGHRun(t, 289782451, "CI")
			ciIn, ciLate, ciLast := ghLifecycle(ci, tc.testEnd, tc.runEnd)
			// CodeQL on the same commit passes whatever CI does: its green
			// run must not offer the deploy CI holds back.
			cq := newGHRun(t, 289782452, "CodeQL")
			cqIn, cqLate, _ := ghLifecycle(cq, "success", "success")
			for name, ds := range orders(ciIn, ciLate, ciLast) {
				cqOrder := slices.Concat(cqIn, cqLate)
				h := newHarness(t)
				ivs := map[string]*invariants{
					"pipeline:github:octo-org/octo-repo:pipeline:289782451": {t: t, buttonWorkflow: true,
						link: "https://github.com/octo-org/octo-repo/actions/runs/289782451"},
					"pipeline:github:octo-org/octo-repo:pipeline:289782452": {t: t,
						link: "https://github.com/octo-org/octo-repo/actions/runs/289782452"},
				}
				topicOf := func(d delivery) string {
					if strings.Contains(d.label, "CodeQL") {
						return "pipeline:github:octo-org/octo-repo:pipeline:289782452"
					}
					return "pipeline:github:octo-org/octo-repo:pipeline:289782451"
				}
				for _, d := range interleave(ds, cqOrder) {
					h.post(d)
					ivs[topicOf(d)].delivered(d)
					for _, topic := range h.drain() {
						ivs[topic].check(name+": "+d.label, h.latest[topic])
					}
				}
				for topic, iv := range ivs {
					if iv.cardsSeen == 0 {
						t.Fatalf("%s: no card for %s", name, topic)
					}
				}
				final := h.latest["pipeline:github:octo-org/octo-repo:pipeline:289782451"]
				checkFinal(t, name, final, tc.want, "https://github.com/octo-org/octo-repo/actions/runs/289782451")
				if !strings.Contains(final.Title, "CI #289782451") {
					t.Fatalf("%s: the card does not name the workflow: %q", name, final.Title)
				}
				checkFinal(t, name+" CodeQL", h.latest["pipeline:github:octo-org/octo-repo:pipeline:289782452"],
					finalCard{word: "passed", author: "Matthias Fax", duration: "1m0s"}, "https://github.com/octo-org/octo-repo/actions/runs/289782452")
				raw, _ := json.Marshal(final)
				finals = append(finals, string(raw))
			}
			// The final card does not depend on the order things arrived in.
			for _, f := range finals[1:] {
				if f != finals[0] {
					t.Fatalf("final cards differ by order:\n%s\n%s", finals[0], f)
				}
			}
		})
	}
}

func TestGitLabLifecycles(t *testing.T) {
	const topic = "pipeline:gitlab:gitlab-org/gitlab-test:pipeline:31"
	for _, tc := range []struct {
		name         string
		testEnd, end string
		want         finalCard
	}{
		{"success", "success", "success", finalCard{word: "passed", author: "User", duration: "1m3s", button: true}},
		{"failure", "failed", "failed", finalCard{word: "failed", failedJobs: "test-build", author: "User", duration: "1m3s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var finals []string
			g := newGLPipeline(t)
			in, late := glLifecycle(g, tc.testEnd, tc.end)
			for name, ds := range orders(in, late, nil) {
				h := newHarness(t)
				iv := &invariants{t: t, buttonWorkflow: true, link: g.webURL + "/-/pipelines/31"}
				for _, d := range ds {
					h.post(d)
					iv.delivered(d)
					for _, tp := range h.drain() {
						if tp != topic {
							t.Fatalf("card for %s", tp)
						}
						iv.check(name+": "+d.label, h.latest[topic])
					}
				}
				final := h.latest[topic]
				checkFinal(t, name, final, tc.want, g.webURL+"/-/pipelines/31")
				if field(final, "source") != "push" {
					t.Fatalf("%s: the card does not name the pipeline source: %+v", name, final)
				}
				raw, _ := json.Marshal(final)
				finals = append(finals, string(raw))
			}
			for _, f := range finals[1:] {
				if f != finals[0] {
					t.Fatalf("final cards differ by order:\n%s\n%s", finals[0], f)
				}
			}
		})
	}
}
