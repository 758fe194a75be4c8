package slack_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
)

// A pipeline card as the pipeline package renders it from a merged record:
// the link is a Slack link (<url|text>), not a bare URL that verbatim
// mrkdwn leaves unlinked; the job lists are bounded.
func TestRenderPipelineCards(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	rec := pipeline.Event{Source: pipeline.GitHub, Kind: pipeline.KindPipeline, Project: "octo-org/octo-repo", ID: "30433642",
		Ref: "main", SHA: "acb5820ced9479c074f688cc328bf03f341a511d", CommitTitle: "Update README.md", Author: "Octo Cat",
		Status: pipeline.StatusRunning, Workflow: "CI", URL: "https://github.com/octo-org/octo-repo/actions/runs/30433642", Time: t0}
	for i := range 12 {
		rec.Jobs = append(rec.Jobs, pipeline.Job{Name: fmt.Sprintf("test (shard %02d)", i), Status: pipeline.StatusRunning, Time: t0})
	}
	rec.Jobs = append(rec.Jobs, pipeline.Job{Name: "lint", Status: pipeline.StatusFailed, Time: t0})
	golden(t, "pipeline-running", render(t, pipeline.Card(rec, nil)))

	rec.Status, rec.Duration = pipeline.StatusFailed, 2*time.Minute
	got := render(t, pipeline.Card(rec, nil))
	golden(t, "pipeline-failed", got)
	if !strings.Contains(got, "<https://github.com/octo-org/octo-repo/actions/runs/30433642|github.com/octo-org/octo-repo/actions/runs/30433642>") {
		t.Fatalf("the link is not a Slack link:\n%s", got)
	}
	if strings.Contains(got, "running jobs") {
		t.Fatalf("a failed pipeline lists running jobs:\n%s", got)
	}
}

// Only a plain http(s) URL becomes a link; anything that could close the
// link early, hide another target or ping someone stays escaped text.
func TestRenderLinksOnlyPlainURLs(t *testing.T) {
	cases := map[string]string{
		"https://ci.example/p?a=1&b=2":        "<https://ci.example/p?a=1&amp;b=2|ci.example/p?a=1&amp;b=2>",
		"https://evil.example|docs":           "https://evil.example|docs",
		"https://evil.example><!channel>":     "https://evil.example&gt;&lt;!channel&gt;",
		"javascript:alert(1)":                 "javascript:alert(1)",
		"https://a.example/x y":               "https://a.example/x y",
		"see https://ci.example/p for detail": "see https://ci.example/p for detail",
	}
	for value, want := range cases {
		got := render(t, notify.Message{Title: "t", Fields: []notify.Field{{Name: "link", Value: value}}})
		if !strings.Contains(got, `"*link*\n`+want+`"`) {
			t.Errorf("%q rendered as %s; want %q", value, got, want)
		}
	}
}
