package notify

import (
	"fmt"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Button data verbs. Data is "verb:token"; tokens are opaque random approval
// ids or job numbers, re-checked against the store and the presser's rights.
const (
	ButtonApprove  = "approve"
	ButtonDeny     = "deny"
	ButtonCancel   = "cancel"
	ButtonUnlock   = "unlock"
	ButtonRollback = "rollback"
	ButtonDeploy   = "deploy" // "deploy:APP:ENV:REF", offered on green pipelines
)

// outputLinesOnCard keeps cards short; /job shows more.
const outputLinesOnCard = 8

// JobCard renders a job as its one chat card: approval card while it awaits
// approval, progress card while it runs, result card at its end.
func JobCard(j deploy.Job) Message {
	m := Message{Title: jobTitle(j), Style: jobStyle(j.State)}
	m.Fields = append(m.Fields, Field{"state", stateText(j)})
	if j.Ref != "" {
		m.Fields = append(m.Fields, Field{"ref", j.Ref})
	}
	switch {
	case j.Target() == "":
	case j.Action.OnBackup():
		m.Fields = append(m.Fields, Field{"backup", j.Target()})
	default:
		to := j.Target()
		if j.FromRelease != "" {
			to = j.FromRelease + " → " + to
		}
		m.Fields = append(m.Fields, Field{"release", to})
	}
	if j.BackupID != "" {
		label := "pre-deploy backup"
		switch j.Action {
		case deploy.ActionRestore:
			label = "safety backup"
		case deploy.ActionRollback:
			label = "restores database from"
		}
		m.Fields = append(m.Fields, Field{label, j.BackupID})
	}
	m.Fields = append(m.Fields, Field{"requested by", j.RequestedBy.User})
	if j.ApprovedBy != "" {
		m.Fields = append(m.Fields, Field{"approved by", j.ApprovedBy})
	}
	if j.Reason != "" {
		m.Text = j.Reason
	}
	for _, s := range j.Steps {
		m.Steps = append(m.Steps, Step{Name: s.Name, State: string(s.State), Detail: s.Detail})
	}
	out := j.Output
	if len(out) > outputLinesOnCard {
		out = out[len(out)-outputLinesOnCard:]
	}
	m.Code = append([]string(nil), out...)
	if j.State.Terminal() && len(j.Output) > outputLinesOnCard {
		// The card shows the tail; the whole kept log goes along as a file
		// where the platform can attach one.
		m.Attachment = &Attachment{Name: fmt.Sprintf("job-%d-%s-%s.log", j.ID, j.App, j.Env),
			Content: []byte(strings.Join(j.Output, "\n") + "\n")}
	}
	switch j.State {
	case deploy.AwaitingApproval:
		m.Text = fmt.Sprintf("Needs approval by %s. Approval id: %s", approverText(j), j.ApprovalID)
		if j.Action == deploy.ActionRestore || j.BackupID != "" {
			m.Text = "⚠ Restoring a backup discards everything written since it was taken (a safety backup is taken first). " + m.Text
		}
		m.Buttons = []Button{
			{Label: "Approve", Data: ButtonApprove + ":" + j.ApprovalID, Style: StyleSuccess},
			{Label: "Deny", Data: ButtonDeny + ":" + j.ApprovalID, Style: StyleDanger},
		}
	case deploy.Queued, deploy.Running:
		m.Buttons = []Button{{Label: "Cancel", Data: fmt.Sprintf("%s:%d", ButtonCancel, j.ID), Style: StyleDanger}}
	case deploy.Interrupted:
		m.Text = strings.TrimSpace(m.Text + "\n" + interruptedText(j))
		if j.LockReleasedBy != "" {
			break
		}
		m.Buttons = []Button{{Label: "Release lock", Data: fmt.Sprintf("%s:%d", ButtonUnlock, j.ID), Style: StyleWarning}}
		if canRollBack(j) {
			m.Buttons = append(m.Buttons, Button{Label: "Rollback to " + j.FromRelease,
				Data: fmt.Sprintf("%s:%d", ButtonRollback, j.ID), Style: StyleDanger})
		}
	}
	return m
}

// canRollBack says whether an interrupted job's card offers Rollback: only a
// deploy or rollback that found a release live and may have switched away.
func canRollBack(j deploy.Job) bool {
	return j.Action.Switches() && j.FromRelease != "" && j.Switch != deploy.SwitchNever
}

// interruptedText says what an interrupted job left live and what its
// buttons do, so nobody has to guess what "Rollback" would roll back.
func interruptedText(j deploy.Job) string {
	if j.LockReleasedBy != "" {
		return "The lock of job #" + fmt.Sprint(j.ID) + " was released by " + j.LockReleasedBy + "."
	}
	switch {
	case !j.Action.Switches():
		return "Release the lock once you have checked what it left."
	case j.Switch == deploy.SwitchNever && j.FromRelease != "":
		return fmt.Sprintf("It never switched: %s, the release live before it, is still live. Release the lock to deploy again.", j.FromRelease)
	case j.Switch == deploy.SwitchNever:
		return "It never switched: nothing was live before it and nothing is now. Release the lock to deploy again."
	case j.FromRelease == "":
		return "Nothing was live before it, so there is nothing to roll back to. Release the lock once you have checked the target."
	case j.Switch == deploy.SwitchDone:
		return fmt.Sprintf("It switched away from %s. Rollback makes %s live again (switch, restart, health check) and releases this job's lock.", j.FromRelease, j.FromRelease)
	}
	return fmt.Sprintf("shipbot could not tell whether it switched. Rollback checks, makes %s live again (switch, restart, health check) and releases this job's lock.", j.FromRelease)
}

// approverText says who may approve: "a lead, not alice".
func approverText(j deploy.Job) string {
	var who []string
	for _, r := range j.ApproverRoles {
		article := "a "
		if strings.ContainsRune("aeiou", rune(strings.ToLower(r + "x")[0])) {
			article = "an "
		}
		who = append(who, article+r)
	}
	if len(who) == 0 {
		return "another person, not " + j.RequestedBy.User
	}
	return strings.Join(who, " or ") + ", not " + j.RequestedBy.User
}

func jobTitle(j deploy.Job) string {
	verb := j.Action.Noun()
	if j.Action == deploy.ActionRollback && j.BackupID != "" {
		verb = "Rollback with database"
	}
	if j.Redeploy {
		verb = "Redeploy"
	}
	return fmt.Sprintf("%s %s → %s (job #%d)", verb, j.App, j.Env, j.ID)
}

func stateText(j deploy.Job) string {
	switch j.State {
	case deploy.AwaitingApproval:
		return "awaiting approval"
	case deploy.RolledBack:
		return "rolled back (health check failed)"
	case deploy.Interrupted:
		if j.LockReleasedBy != "" {
			return "interrupted — lock released by " + j.LockReleasedBy
		}
		return "interrupted — lock still held"
	}
	return string(j.State)
}

func jobStyle(s deploy.State) Style {
	switch s {
	case deploy.Succeeded:
		return StyleSuccess
	case deploy.Failed, deploy.Interrupted:
		return StyleDanger
	case deploy.RolledBack, deploy.Cancelled, deploy.AwaitingApproval:
		return StyleWarning
	}
	return StyleInfo
}
