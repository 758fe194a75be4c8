package slack_test

import (
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// The cards of issue 7: a restore awaiting its second person (with the
// data-loss warning) and a finished backup that pruned old ones.
func restoreApprovalJob() deploy.Job {
	return deploy.Job{ID: 21, App: "helpdesk", Env: "production", Action: deploy.ActionRestore, Release: "20261123-023000-17",
		State: deploy.AwaitingApproval, RequestedBy: deploy.Who{User: "olga"}, ApprovalID: "m2n3b4v5c6x7z8l9k0j1h2g3",
		Created: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
}

func backupDoneJob() deploy.Job {
	return deploy.Job{ID: 22, App: "helpdesk", Env: "production", Action: deploy.ActionBackup, Release: "20261123-090500-22",
		State: deploy.Succeeded, RequestedBy: deploy.Who{User: "alice"},
		Reason: "backup 20261123-090500-22: 2 files, 41.3 MiB; pruned 20261020-023000-3",
		Steps: []deploy.Step{{Name: "archive", State: deploy.StepDone, Detail: "/var/www/flask_helpdesk/shared/uploads"},
			{Name: "dump main", State: deploy.StepDone, Detail: "mariadb helpdesk"},
			{Name: "checksum", State: deploy.StepDone, Detail: "2 files, 41.3 MiB"},
			{Name: "prune", State: deploy.StepDone, Detail: "pruned 20261020-023000-3"}}}
}

func TestRenderBackupCards(t *testing.T) {
	golden(t, "restore-approval", render(t, notify.JobCard(restoreApprovalJob())))
	golden(t, "backup-done", render(t, notify.JobCard(backupDoneJob())))
}
