package pipeline

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/notify"
)

// A signed body with no pipeline id (a workflow_job under
// X-GitHub-Event: workflow_run, a Job Hook without pipeline_id) is a 400,
// never "pipeline #0", and nothing is stored.
func TestNoPipelineIDIsRefused(t *testing.T) {
	store := newMem()
	svc := New(Options{Store: store, Secrets: Secrets{GitHub: audit.NewSecret("gh"), GitLab: audit.NewSecret("gl")},
		Routes: Routes{{Chats: []notify.Channel{{Platform: "slack", ID: "C1"}}}}})
	handlers := map[string]http.Handler{}
	for _, r := range svc.Routes() {
		handlers[r.Path] = r.Handler
	}
	job := sample(t, "github_workflow_job_failure.json")
	cases := []struct {
		path, header, kind string
		body               []byte
	}{
		{"/hooks/github", "X-GitHub-Event", "workflow_run", job},
		{"/hooks/github", "X-GitHub-Event", "workflow_job", []byte(strings.Replace(string(job), `"run_id": 30433642`, `"run_id": 0`, 1))},
		{"/hooks/gitlab", "X-Gitlab-Event", "Job Hook", []byte(strings.Replace(string(sample(t, "gitlab_job.json")), `"pipeline_id": 2366`, `"pipeline_id": null`, 1))},
		{"/hooks/gitlab", "X-Gitlab-Event", "Pipeline Hook", []byte(`{"object_attributes":{"status":"failed"},"project":{"path_with_namespace":"a/b"}}`)},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(string(tc.body)))
		req.Header.Set(tc.header, tc.kind)
		req.Header.Set(GitHubSigHeader, Sign(tc.body, "gh"))
		req.Header.Set(GitLabTokenHeader, "gl")
		rec := httptest.NewRecorder()
		handlers[tc.path].ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "pipeline id") {
			t.Errorf("%s %s: %d %s", tc.path, tc.kind, rec.Code, rec.Body.String())
		}
	}
	if len(store.posts) != 0 || len(store.tracked) != 0 || len(store.seen) != 0 {
		t.Fatalf("a refused delivery changed something: %+v %+v", store.posts, store.tracked)
	}
}

func TestSupersedes(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	var zero time.Time
	cases := []struct {
		prev  string
		prevT time.Time
		next  string
		nextT time.Time
		want  bool
		why   string
	}{
		{"", zero, StatusPending, zero, true, "anything starts a record"},
		{StatusPending, at(0), StatusRunning, at(1), true, "in order"},
		{StatusRunning, at(1), StatusPending, at(0), false, "an older pending"},
		{StatusRunning, zero, StatusPending, zero, false, "no times: running is further"},
		{StatusPending, at(5), StatusRunning, at(5), true, "same time: running is further"},
		{StatusRunning, at(1), StatusFailed, at(0), true, "a final state ends an unfinished one"},
		{StatusFailed, at(9), StatusRunning, at(20), false, "a final state is never undone by one in progress"},
		{StatusFailed, at(9), StatusSuccess, at(9), false, "same updated_at, other conclusion: not strictly later"},
		{StatusFailed, at(9), StatusSuccess, zero, false, "an unknown time is not strictly later"},
		{StatusFailed, at(9), StatusSuccess, at(10), true, "a strictly later final state (a retry that passed)"},
		{StatusSuccess, at(9), StatusSuccess, at(3), false, "an older final state"},
		{StatusRunning, at(1), "exploded", at(9), false, "an unknown status"},
	}
	for _, tc := range cases {
		if got := supersedes(tc.prev, tc.prevT, tc.next, tc.nextT); got != tc.want {
			t.Errorf("%s: %s@%v -> %s@%v = %v", tc.why, tc.prev, tc.prevT, tc.next, tc.nextT, got)
		}
	}
}

// Facts stay from whichever event carried them; a job event never moves
// the pipeline's status; a job moves only by its own times.
func TestMergeKeepsWhatEachEventCarried(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	run := Event{Source: GitHub, Kind: KindPipeline, Project: "o/r", ID: "7", Ref: "main", SHA: "abc", Author: "Ann",
		CommitTitle: "Fix", URL: "https://github.com/o/r/actions/runs/7", Workflow: "CI", Status: StatusFailed,
		Duration: time.Minute, Time: at(60)}
	job := func(name, st string, s int) Event {
		return Event{Source: GitHub, Kind: KindJob, Project: "o/r", ID: "7", Workflow: "CI", Jobs: []Job{{Name: name, Status: st, Time: at(s)}}}
	}
	rec := Merge(Event{}, job("test", StatusFailed, 50))
	if rec.Kind != KindPipeline || rec.Status != "" || rec.Shown() != StatusRunning {
		t.Fatalf("a job event made a pipeline status: %+v", rec)
	}
	rec = Merge(rec, run)
	rec = Merge(rec, job("build", StatusSuccess, 70)) // late, successful
	rec = Merge(rec, job("test", StatusRunning, 10))  // late, stale
	if rec.Status != StatusFailed || rec.Author != "Ann" || rec.URL != run.URL || rec.Duration != time.Minute || rec.Workflow != "CI" {
		t.Fatalf("record lost what the run said: %+v", rec)
	}
	if len(rec.Jobs) != 2 || rec.Jobs[1] != (Job{Name: "test", Status: StatusFailed, Time: at(50)}) {
		t.Fatalf("jobs %+v", rec.Jobs)
	}
	m := Card(rec, nil)
	if !strings.HasSuffix(m.Title, "CI #7 failed") || fieldOf(m, "failed jobs") != "test" || fieldOf(m, "link") != run.URL {
		t.Fatalf("card %+v", m)
	}
	// A fork's run stays untrusted whatever order its events come in.
	fork := run
	fork.Untrusted = true
	if !Merge(fork, job("x", StatusRunning, 1)).Untrusted || !Merge(Merge(Event{}, job("x", StatusRunning, 1)), fork).Untrusted {
		t.Fatal("untrusted lost in a merge")
	}
}

// A record stored by an older shipbot from a job event carries that job's
// status as if it were the pipeline's: it is not trusted.
func TestMergeForgetsAJobStatusStoredAsThePipelines(t *testing.T) {
	old := Event{Source: GitHub, Kind: KindJob, Project: "o/r", ID: "7", Status: StatusSuccess, FailedJobs: []string{"lint"},
		Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rec := Merge(old, Event{Source: GitHub, Kind: KindJob, Project: "o/r", ID: "7", Jobs: []Job{{Name: "test", Status: StatusRunning}}})
	if rec.Kind != KindPipeline || rec.Status != "" || rec.Shown() != StatusRunning || rec.FailedJobs[0] != "lint" {
		t.Fatalf("%+v", rec)
	}
}

// A Job Hook whose commit.status is final but carries no finished_at says
// nothing of the pipeline (a later retry could never replace it).
func TestJobHookFinalPipelineStatusNeedsItsTime(t *testing.T) {
	body := strings.Replace(string(sample(t, "lifecycle/gitlab_job_hook.json")), `"status": "created"`, `"status": "failed"`, 1)
	evs, err := Parse(GitLab, hdr("X-Gitlab-Event", "Job Hook"), []byte(body))
	if err != nil || evs[0].Status != "" || len(evs[0].Jobs) != 1 {
		t.Fatalf("%+v %v", evs, err)
	}
	body = strings.Replace(body, `"finished_at": null`, `"finished_at": "2021-02-23 02:43:00 UTC"`, 1)
	evs, err = Parse(GitLab, hdr("X-Gitlab-Event", "Job Hook"), []byte(body))
	if err != nil || evs[0].Status != StatusFailed || evs[0].Time.IsZero() {
		t.Fatalf("%+v %v", evs, err)
	}
}

func fieldOf(m notify.Message, name string) string {
	for _, f := range m.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func TestCardBoundsJobLists(t *testing.T) {
	rec := Event{Source: GitLab, Kind: KindPipeline, Project: "g/p", ID: "9", Status: StatusRunning, Workflow: "schedule"}
	for i := range 25 {
		rec.Jobs = append(rec.Jobs, Job{Name: fmt.Sprintf("job%02d", i), Status: StatusRunning})
	}
	rec.Jobs = append(rec.Jobs, Job{Name: "lint", Status: StatusFailed, AllowFailure: true})
	m := Card(rec, nil)
	if got := fieldOf(m, "running jobs"); !strings.HasSuffix(got, "job09, +15 more") || strings.Contains(got, "job10") {
		t.Fatalf("running jobs %q", got)
	}
	if fieldOf(m, "failed jobs") != "" || fieldOf(m, "source") != "schedule" {
		t.Fatalf("an allowed failure is listed, or the source is missing: %+v", m)
	}
}

// deploy_buttons and routes filter by workflow (globs); with a filter a
// pipeline whose workflow is unknown matches neither.
func TestWorkflowFilters(t *testing.T) {
	offers := []DeployOffer{{Project: "o/r", Ref: "main", Workflows: []string{"CI", "Deploy*"}, App: "web", Env: "staging"}}
	green := func(wf string) Event {
		return Event{Source: GitHub, Kind: KindPipeline, Project: "o/r", ID: "1", Ref: "main", SHA: "abc", Status: StatusSuccess, Workflow: wf, Vetted: true}
	}
	for wf, want := range map[string]bool{"CI": true, "Deploy prod": true, "CodeQL": false, "": false} {
		if got := offerFor(offers, green(wf)) != nil; got != want {
			t.Errorf("workflow %q: offer %v, want %v", wf, got, want)
		}
	}
	if offerFor([]DeployOffer{{Project: "o/r", App: "web", Env: "staging"}}, green("")) == nil {
		t.Error("without a filter any green run of the project is offered")
	}
	// A GitLab Job Hook's commit.status may say success before any
	// Pipeline Hook said whether it is a merge request's code: no button yet.
	unvetted := green("")
	unvetted.Vetted = false
	if offerFor([]DeployOffer{{Project: "o/r", App: "web", Env: "staging"}}, unvetted) != nil {
		t.Error("a pipeline nobody vetted offers a deploy")
	}
	ch := notify.Channel{Platform: "slack", ID: "C1"}
	routes := Routes{{Workflows: []string{"Deploy*"}, Chats: []notify.Channel{ch}}}
	if len(routes.Match(green("Deploy prod"))) != 1 || len(routes.Match(green("CI"))) != 0 || len(routes.Match(green(""))) != 0 {
		t.Error("route workflow filter")
	}
	if (Rule{Workflows: []string{"[x"}, Chats: []notify.Channel{ch}}).Validate() == nil {
		t.Error("a bad workflow glob was accepted")
	}
}

func TestGitHubRunURL(t *testing.T) {
	cases := []struct{ repo, id, jobHTML, runAPI, want string }{
		{"https://github.com/o/r", "7", "", "", "https://github.com/o/r/actions/runs/7"},
		// payload-examples workflow_job/waiting: html_url .../actions/runs/RUN/jobs/JOB
		{"", "", "https://github.com/l/e/actions/runs/4747967848/jobs/8433573014", "", "https://github.com/l/e/actions/runs/4747967848"},
		{"", "7", "https://github.com/o/r/runs/1291536064", "https://api.github.com/repos/o/r/actions/runs/7", "https://github.com/o/r/actions/runs/7"},
		{"", "7", "", "https://ghe.example/api/v3/repos/o/r/actions/runs/7", "https://ghe.example/o/r/actions/runs/7"},
		{"", "7", "", "", ""},
	}
	for _, tc := range cases {
		if got := githubRunURL(tc.repo, tc.id, tc.jobHTML, tc.runAPI); got != tc.want {
			t.Errorf("%+v: %q", tc, got)
		}
	}
}

// BenchmarkMergeInto200Jobs: what ingest adds per event on a big matrix
// run (a 200-job record read, merged with one job event, written back as
// JSON), beside the floor every delivery pays anyway: decoding GitHub's
// 8 KB example workflow_job body.
func BenchmarkMergeInto200Jobs(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := Event{Source: GitHub, Kind: KindPipeline, Project: "o/r", ID: "7", Status: StatusRunning, Workflow: "CI", Vetted: true}
	for i := range 200 {
		rec.Jobs = append(rec.Jobs, Job{Name: fmt.Sprintf("test (shard %03d)", i), Status: StatusRunning, Time: at})
	}
	stored, _ := json.Marshal(rec)
	ev := Event{Source: GitHub, Kind: KindJob, Project: "o/r", ID: "7", Jobs: []Job{{Name: "test (shard 150)", Status: StatusSuccess, Time: at.Add(time.Minute)}}}
	b.Run("merge", func(b *testing.B) {
		for b.Loop() {
			var r Event
			if err := json.Unmarshal(stored, &r); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(Merge(r, ev)); err != nil {
				b.Fatal(err)
			}
		}
	})
	body := sample(b, "lifecycle/github_workflow_job.json")
	b.Run("floor-decode-body", func(b *testing.B) {
		for b.Loop() {
			var v map[string]any
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
