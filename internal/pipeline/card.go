package pipeline

import (
	"fmt"
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

// Card is the one message a pipeline (or deployment) keeps in a chat.
// offer, when set and the pipeline passed, adds a "Deploy to ENV" button.
func Card(e Event, offer *DeployOffer) notify.Message {
	what := "pipeline #" + e.ID
	switch {
	case e.Kind == KindDeployment && e.Environment != "":
		what = "deploy to " + e.Environment
	case e.Kind == KindDeployment:
		what = "deploy"
	case e.Kind == KindBackup:
		what = "backup of " + e.Environment
	}
	title := e.Project
	if e.Ref != "" {
		title += " · " + e.Ref
	}
	m := notify.Message{Title: title + " · " + what + " " + statusWord[e.Status], Style: statusStyle[e.Status]}
	if m.Style == "" {
		m.Style = notify.StyleInfo
	}
	if e.SHA != "" || e.CommitTitle != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "commit", Value: strings.TrimSpace(short(e.SHA) + " " + e.CommitTitle)})
	}
	if e.Author != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "author", Value: e.Author})
	}
	if e.Duration > 0 {
		m.Fields = append(m.Fields, notify.Field{Name: "duration", Value: e.Duration.Round(time.Second).String()})
	}
	if len(e.FailedJobs) > 0 {
		m.Fields = append(m.Fields, notify.Field{Name: "failed jobs", Value: strings.Join(e.FailedJobs, ", ")})
	}
	if e.URL != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "link", Value: e.URL})
	}
	m.Text = e.Error
	if offer := offer; offer != nil && e.Status == StatusSuccess {
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

func short(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}

// jobStatus is a job's state in routing terms; ok is false for states
// not worth a notice.
func jobStatus(s deploy.State) (string, bool) {
	switch s {
	case deploy.Running:
		return StatusRunning, true
	case deploy.Succeeded:
		return StatusSuccess, true
	case deploy.Failed, deploy.Interrupted, deploy.RolledBack:
		return StatusFailed, true
	}
	return "", false
}

// DeployNotice is the message shipbot posts about its own deploy and
// rollback jobs through the pipeline routes: started, succeeded, failed,
// rolled back, edited in place as the job goes.
func DeployNotice(j deploy.Job) notify.Message {
	verb := j.Action.Noun()
	state := string(j.State)
	style := notify.StyleInfo
	switch j.State {
	case deploy.Running:
		state = "started"
	case deploy.Succeeded:
		style = notify.StyleSuccess
	case deploy.RolledBack:
		state, style = "rolled back (health check failed)", notify.StyleWarning
	case deploy.Failed, deploy.Interrupted:
		style = notify.StyleDanger
	}
	m := notify.Message{Title: fmt.Sprintf("%s %s → %s %s (job #%d)", verb, j.App, j.Env, state, j.ID), Style: style}
	if j.Ref != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "ref", Value: j.Ref})
	}
	if j.Release != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "release", Value: j.Release})
	}
	m.Fields = append(m.Fields, notify.Field{Name: "by", Value: j.RequestedBy.User})
	if j.ApprovedBy != "" {
		m.Fields = append(m.Fields, notify.Field{Name: "approved by", Value: j.ApprovedBy})
	}
	m.Text = j.Reason
	return m
}
