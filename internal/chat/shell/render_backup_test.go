package shell

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

func TestRenderBackupCardsGolden(t *testing.T) {
	restore := deploy.Job{ID: 21, App: "helpdesk", Env: "production", Action: deploy.ActionRestore, Release: "20261123-023000-17",
		State: deploy.AwaitingApproval, RequestedBy: deploy.Who{User: "olga"}, ApprovalID: "m2n3b4v5c6x7z8l9k0j1h2g3",
		Created: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	rollback := deploy.Job{ID: 23, App: "helpdesk", Env: "production", Action: deploy.ActionRollback, Release: "20261122-100000-9",
		FromRelease: "20261123-080000-20", BackupID: "20261123-080000-20-predeploy", State: deploy.AwaitingApproval,
		RequestedBy: deploy.Who{User: "olga"}, ApprovalID: "q2w3e4r5t6y7u8i9o0p1a2s3"}
	for name, j := range map[string]deploy.Job{"restore-approval": restore, "rollback-with-db": rollback} {
		got := Render(notify.JobCard(j), counter())
		path := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s:\n%s", name, got)
		}
	}
}
