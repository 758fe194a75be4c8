package telegram_test

import (
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/pipeline"
)

// A passed GitHub run as the pipeline package renders it from its merged
// record: the workflow in the title, the link kept, the Deploy button.
// Telegram links a bare URL in the text itself, so the link is a plain value.
func TestRenderPipelineCard(t *testing.T) {
	rec := pipeline.Event{Source: pipeline.GitHub, Kind: pipeline.KindPipeline, Project: "octo-org/octo-repo", ID: "30433642",
		Ref: "main", SHA: "acb5820ced9479c074f688cc328bf03f341a511d", CommitTitle: "Update README.md", Author: "Octo Cat",
		Status: pipeline.StatusSuccess, Workflow: "CI", Duration: 2 * time.Minute,
		URL:  "https://github.com/octo-org/octo-repo/actions/runs/30433642",
		Jobs: []pipeline.Job{{Name: "build", Status: pipeline.StatusSuccess}, {Name: "test", Status: pipeline.StatusSuccess}}}
	offer := &pipeline.DeployOffer{Project: "octo-org/octo-repo", Ref: "main", App: "web", Env: "staging"}
	golden(t, "pipeline-passed", render(t, pipeline.Card(rec, offer)))
}
