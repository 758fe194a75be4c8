package chattest

import (
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// BackupCards are the jobs behind the backup and restore cards every
// adapter golden-tests: a restore awaiting its second person (with the
// data-loss warning), a finished backup that pruned an old one, and a
// rollback that also restores the database.
func BackupCards() map[string]deploy.Job {
	return map[string]deploy.Job{
		"restore-approval": {ID: 21, App: "helpdesk", Env: "production", Action: deploy.ActionRestore, Backup: "20261123-023000-17",
			State: deploy.AwaitingApproval, RequestedBy: deploy.Who{User: "olga"}, ApprovalID: "m2n3b4v5c6x7z8l9k0j1h2g3", ApproverRoles: []string{"lead", "admin"},
			Created: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		"backup-done": {ID: 22, App: "helpdesk", Env: "production", Action: deploy.ActionBackup, Backup: "20261123-090500-22",
			State: deploy.Succeeded, RequestedBy: deploy.Who{User: "alice"},
			Reason: "backup 20261123-090500-22: 2 files, 41.3 MiB; pruned 20261020-023000-3",
			Steps: []deploy.Step{{Name: "archive", State: deploy.StepDone, Detail: "/var/www/flask_helpdesk/shared/uploads"},
				{Name: "dump main", State: deploy.StepDone, Detail: "mariadb helpdesk"},
				{Name: "checksum", State: deploy.StepDone, Detail: "2 files, 41.3 MiB"},
				{Name: "prune", State: deploy.StepDone, Detail: "pruned 20261020-023000-3"}}},
		"rollback-with-db": {ID: 23, App: "helpdesk", Env: "production", Action: deploy.ActionRollback, RollbackTo: "20261122-100000-9",
			FromRelease: "20261123-080000-20", BackupID: "20261123-080000-20-predeploy", State: deploy.AwaitingApproval,
			RequestedBy: deploy.Who{User: "olga"}, ApprovalID: "q2w3e4r5t6y7u8i9o0p1a2s3"},
	}
}
