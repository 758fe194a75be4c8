package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

var statusWord = map[string]string{
	StatusPending: "pending", StatusRunning: "running", StatusSuccess: "passed",
	StatusFailed: "failed", StatusCancelled: "cancelled", StatusSkipped: "skipped",
}

var statusStyle = map[string]notify.Style{
	StatusSuccess: notify.StyleSuccess, StatusFailed: notify.StyleDanger,
	StatusCancelled: notify.StyleWarning, StatusSkipped: notify.StyleWarning,
}

// maxJobsListed bounds each job list on a card: a matrix of 200 jobs must
// not push the link off the message.
const maxJobsListed = 10

// Card is the one message a pipeline (or deployment) keeps in a chat,
// rendered from its merged record. offer, when set and the pipeline itself
// passed, adds a "Deploy to ENV" button.
func Card(e Event, offer *DeployOffer) notify.Message {
	status := e.Shown()
	what := "pipeline #" + e.ID
	switch {
	case e.Kind == KindDeployment && e.Environment != "":
		what = "deploy to " + e.Environment
	case e.Kind == KindDeployment:
		what = "deploy"
	case e.Kind == KindBackup:
		what = "backup of " + e.Environment
	case e.Source == GitHub && e.Workflow != "":
		what = e.Workflow + " #" + e.ID // the workflow's name: "CI #30433642"
	}
	title := e.Project
	if e.Ref != "" {
		title += " · " + e.Ref
	}
	m := notify.Message{Title: title + " · " + what + " " + statusWord[status], Style: statusStyle[status]}
	if m.Style == "" {
		m.Style = notify.StyleInfo
	}
	if e.SHA != "" || e.CommitTitle != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "commit", Value: strings.TrimSpace(short(e.SHA) + " " + e.CommitTitle)})
	}
	if e.Author != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "author", Value: e.Author})
	}
	if e.Source == GitLab && e.Workflow != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "source", Value: e.Workflow})
	}
	if e.Duration > 0 {
		m.Fields = append(m.Fields, notify.Field{Name: "duration", Value: e.Duration.Round(time.Second).String()})
	}
	var running []string
	failed := append([]string(nil), e.FailedJobs...)
	for _, j := range e.Jobs {
		switch {
		case j.Status == StatusRunning:
			running = append(running, j.Name)
		case j.Status == StatusFailed && !j.AllowFailure && !slices.Contains(failed, j.Name):
			failed = append(failed, j.Name)
		}
	}
	// A finished pipeline has no running jobs, whatever events went missing.
	if len(running) > 0 && !Final(status) {
		m.Fields = append(m.Fields, notify.Field{Name: "running jobs", Value: jobList(running)})
	}
	if len(failed) > 0 {
		m.Fields = append(m.Fields, notify.Field{Name: "failed jobs", Value: jobList(failed)})
	}
	if e.URL != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "link", Value: e.URL})
	}
	m.Text = e.Error
	if offer := offer; offer != nil && status == StatusSuccess {
		ref := e.SHA
		if offer.ByName {
			ref = e.Ref
		}
		data := fmt.Sprintf("%s:%s:%s:%s", notify.ButtonDeploy, offer.App, offer.Env, ref)
		if len(data) > 64 || deploy.ValidateRef(ref) != nil {
			// Too long for a button (Telegram allows 64 bytes): deploy the
			// ref by name instead; the approval card shows which.
			ref = e.Ref
			data = fmt.Sprintf("%s:%s:%s:%s", notify.ButtonDeploy, offer.App, offer.Env, ref)
		}
		if len(data) <= 64 && deploy.ValidateRef(ref) == nil {
			m.Buttons = []notify.Button{{Label: "Deploy to " + offer.Env, Data: data, Style: notify.StyleSuccess}}
		}
	}
	return m
}

// jobList names up to maxJobsListed jobs and counts the rest.
func jobList(names []string) string {
	if len(names) <= maxJobsListed {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxJobsListed], ", ") + fmt.Sprintf(", +%d more", len(names)-maxJobsListed)
}

func short(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}
