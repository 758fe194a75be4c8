package backup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/backup"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/deploy/local"
)

// BenchmarkBackupDrillRestore measures one backup, one restore drill and
// one restore of a 100,000-row MariaDB table and a 100,000-row PostgreSQL
// table (about 20 MB of rows each) with the real client tools on this
// machine: go test -run x -bench BackupDrill -benchtime 3x ./internal/deploy/backup
func BenchmarkBackupDrillRestore(b *testing.B) {
	my, pgdb := seedMaria(b), seedPG(b)
	maria(b, "USE "+my.Database+"; INSERT INTO tickets (title, body) SELECT CONCAT('bulk ', seq), REPEAT('y', 200) FROM seq_1_to_95000;")
	pg(b, pgdb.Database, "INSERT INTO interviews (candidate, score) SELECT 'bulk' || g, g % 100 FROM generate_series(1, 97000) g;")
	r := &backup.Runner{Spec: backup.Spec{Dir: b.TempDir(), Databases: []backup.Database{my, pgdb}}, Host: local.NewHost()}
	ctx := context.Background()
	var size int64
	var tBackup, tDrill, tRestore time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("bench-%d", i)
		t0 := time.Now()
		res, err := r.Backup(ctx, deploy.BackupRequest{ID: id}, &deploytest.Progress{})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		rec := deploy.Backup{ID: id, Location: res.Location, Files: res.Files, State: deploy.BackupOK}
		if _, err := r.VerifyBackup(ctx, rec, &deploytest.Progress{}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := r.Restore(ctx, rec, true, &deploytest.Progress{}); err != nil {
			b.Fatal(err)
		}
		tBackup, tDrill, tRestore = tBackup+t1.Sub(t0), tDrill+t2.Sub(t1), tRestore+time.Since(t2)
		size = rec.Size()
	}
	n := float64(b.N)
	b.ReportMetric(tBackup.Seconds()/n, "s-backup")
	b.ReportMetric(tDrill.Seconds()/n, "s-drill")
	b.ReportMetric(tRestore.Seconds()/n, "s-restore")
	b.ReportMetric(float64(size)/(1<<20), "MiB-backup")
}
