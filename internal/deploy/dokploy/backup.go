package dokploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// backupInfo is backup.one (packages/server/src/db/schema/backups.ts:35-70).
type backupInfo struct {
	BackupID     string `json:"backupId"`
	BackupType   string `json:"backupType"` // database (default) or compose
	DatabaseType string `json:"databaseType"`
	Database     string `json:"database"`
	Prefix       string `json:"prefix"`
	ServiceName  string `json:"serviceName"`
}

// manualBackup maps a database-type backup's engine to its procedure
// (apps/dokploy/server/api/routers/backup.ts:293-458). A compose-type
// backup of any engine is backup.manualBackupCompose.
var manualBackup = map[string]string{"postgres": "backup.manualBackupPostgres", "mysql": "backup.manualBackupMySql",
	"mariadb": "backup.manualBackupMariadb", "mongo": "backup.manualBackupMongo", "libsql": "backup.manualBackupLibsql"}

// Backup implements deploy.Backuper: it runs the env's configured Dokploy
// backup, which Dokploy uploads to its own destination before answering.
func (d *Driver) Backup(ctx context.Context, req deploy.BackupRequest, p deploy.Progress) (deploy.BackupResult, error) {
	if d.t.BackupID == "" {
		return deploy.BackupResult{}, errors.New("no dokploy.backup_id is configured for this env")
	}
	var b backupInfo
	if err := d.c.Get(ctx, "backup.one", url.Values{"backupId": {d.t.BackupID}}, &b); err != nil {
		return deploy.BackupResult{}, err
	}
	proc, ok := manualBackup[b.DatabaseType]
	what := b.DatabaseType + " " + b.Database
	if b.BackupType == "compose" {
		proc, ok = "backup.manualBackupCompose", true
		what = fmt.Sprintf("%s %s in compose service %s", b.DatabaseType, b.Database, orDash(b.ServiceName))
	}
	if !ok {
		return deploy.BackupResult{}, fmt.Errorf("dokploy backup %s is of type %q, which shipbot cannot trigger", d.t.BackupID, b.DatabaseType)
	}
	p.Step("dokploy backup", deploy.StepRunning, what)
	started := time.Now()
	if err := d.c.PostLong(ctx, proc, map[string]string{"backupId": d.t.BackupID}, nil, d.BackupTimeout); err != nil {
		p.Step("dokploy backup", deploy.StepFailed, err.Error())
		return deploy.BackupResult{}, err
	}
	took := time.Since(started).Round(time.Second)
	p.Step("dokploy backup", deploy.StepDone, took.String())
	// The S3 key is <appName>[_<serviceName>]/<prefix>/<timestamp>.*, which
	// Dokploy does not return: name the backup by its prefix and database.
	return deploy.BackupResult{Location: "dokploy backup " + d.t.BackupID + " (its S3 destination)",
		Files: []deploy.BackupFile{{Name: b.Prefix + b.Database, Kind: "dokploy", Source: what}}}, nil
}

// BackupsKeptBy implements deploy.BackupsElsewhere: Dokploy keeps its
// backups in its own S3 destination, which shipbot cannot read, so the
// driver neither verifies, restores nor prunes them (Dokploy's own
// keepLatestCount retention does).
func (d *Driver) BackupsKeptBy() string {
	return "Dokploy in its own destination; check and restore it from Dokploy's UI"
}
