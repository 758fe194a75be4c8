package metrics

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

type backupSource struct{ fakeSource }

func (backupSource) BackupStats(context.Context) ([]deploy.BackupStat, error) {
	return []deploy.BackupStat{
		{App: "helpdesk", Env: "production", LastOK: time.Unix(1763870000, 0),
			States: map[deploy.BackupState]int{deploy.BackupOK: 30, deploy.BackupFailed: 2, deploy.BackupPruned: 5}},
		{App: "helpdesk", Env: "staging", States: map[deploy.BackupState]int{deploy.BackupFailed: 1}},
	}, nil
}

func TestBackupGaugesForAlerting(t *testing.T) {
	out := scrape(t, New(backupSource{}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	for _, want := range []string{
		`shipbot_backup_last_success_timestamp_seconds{app="helpdesk",env="production"} 1.76387e+09`,
		`shipbot_backups{app="helpdesk",env="production",state="ok"} 30`,
		`shipbot_backups{app="helpdesk",env="production",state="failed"} 2`,
		`shipbot_backups{app="helpdesk",env="staging",state="failed"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
	// An env that never had a good backup has no timestamp: "absent" alerts fire.
	if strings.Contains(out, `shipbot_backup_last_success_timestamp_seconds{app="helpdesk",env="staging"}`) {
		t.Error("a timestamp for an env without a good backup")
	}
}
