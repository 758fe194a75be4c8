package deploy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
)

// takeOnly is a driver that can take backups and nothing more, as Dokploy's:
// its records hold ordinary file kinds, so only its type says it cannot
// verify or restore them.
type takeOnly struct {
	deploy.Driver
	bd *deploytest.BackupDriver
}

func (d takeOnly) Backup(ctx context.Context, req deploy.BackupRequest, p deploy.Progress) (deploy.BackupResult, error) {
	return d.bd.Backup(ctx, req, p)
}

func (takeOnly) BackupsKeptBy() string { return "the vault; restore it there" }

// Verify and restore are refused by the driver's capabilities, never by the
// kind of file a backup holds, and before any job exists.
func TestBackupsADriverCannotRestoreAreRefusedByType(t *testing.T) {
	r := newBackupRig(t, deploy.BackupPolicy{})
	b := r.backupOK(t)
	r.engine = deploy.NewEngine(deploy.Options{Store: r.store, Observer: r.obs, Now: r.clock,
		Drivers: func(app, env string) (deploy.Driver, bool) { return takeOnly{Driver: r.bd.Driver, bd: r.bd}, true }})
	before, _ := r.store.Jobs(context.Background(), deploy.JobFilter{})
	for _, a := range []deploy.Action{deploy.ActionVerify, deploy.ActionRestore} {
		_, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "prod", Action: a, Backup: b.ID,
			Approval: deploy.ApprovalPolicy{Roles: []string{"lead"}}})
		var ref *deploy.Refusal
		if !errors.As(err, &ref) || !strings.Contains(err.Error(), "backup "+b.ID+" is kept by the vault; restore it there") {
			t.Errorf("%s: %v", a, err)
		}
	}
	if after, _ := r.store.Jobs(context.Background(), deploy.JobFilter{}); len(after) != len(before) {
		t.Fatalf("a refused request made a job")
	}
	// It still takes backups.
	j, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: alice, App: "demo", Env: "prod", Action: deploy.ActionBackup})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, r.store, j.ID, deploy.Succeeded)
	r.engine.Drain(context.Background())
}
