package pipeline

import (
	"strings"
	"testing"
)

// A fork's branch may be called main: its green run must never carry a
// Deploy button, and neither may a merge request pipeline or a lone job.
func TestNoDeployOfferForForksMergeRequestsOrJobs(t *testing.T) {
	offers := []DeployOffer{{Project: "octo-org/octo-repo", Ref: "main", App: "web", Env: "staging"},
		{Project: "gitlab-org/gitlab-test", Ref: "master", App: "web", Env: "staging"}}
	run := string(sample(t, "github_workflow_run_success.json"))
	parse := func(source, kind, body string) Event {
		t.Helper()
		h := hdr("X-GitHub-Event", kind)
		if source == GitLab {
			h = hdr("X-Gitlab-Event", kind)
		}
		evs, err := Parse(source, h, []byte(body))
		if err != nil || len(evs) != 1 {
			t.Fatalf("parse: %v %v", evs, err)
		}
		return evs[0]
	}
	own := parse(GitHub, "workflow_run", strings.Replace(run, `"actor": {`,
		`"head_repository": {"full_name": "octo-org/octo-repo"}, "actor": {`, 1))
	if own.Untrusted || offerFor(offers, own) == nil {
		t.Fatalf("the project's own green main lost its Deploy button: %+v", own)
	}
	fork := parse(GitHub, "workflow_run", strings.Replace(run, `"actor": {`,
		`"head_repository": {"full_name": "mallory/octo-repo"}, "actor": {`, 1))
	if !fork.Untrusted || offerFor(offers, fork) != nil || len(Card(fork, offerFor(offers, fork)).Buttons) != 0 {
		t.Fatalf("a fork's green main offers a deploy: %+v", fork)
	}
	mr := parse(GitLab, "Pipeline Hook", string(sample(t, "gitlab_pipeline.json")))
	if !mr.Untrusted || offerFor(offers, mr) != nil {
		t.Fatalf("a merge request pipeline offers a deploy: %+v", mr)
	}
	branch := strings.Replace(string(sample(t, "gitlab_pipeline.json")), `"source": "merge_request_event"`, `"source": "push"`, 1)
	branch = strings.Replace(branch, `"merge_request": {`, `"merge_request_unused": {`, 1)
	if e := parse(GitLab, "Pipeline Hook", branch); e.Untrusted || offerFor(offers, e) == nil {
		t.Fatalf("a branch pipeline of master lost its button: %+v", e)
	}
	job := own
	job.Kind = KindJob
	if offerFor(offers, job) != nil {
		t.Fatal("one green job offers a deploy of its pipeline")
	}
}
