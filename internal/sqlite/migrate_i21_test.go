package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
)

// openAtVersion makes a database at path with only the first n migrations,
// as a shipbot of that schema left it.
func openAtVersion(t *testing.T, path string, n int) *sql.DB {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, path)
	ms, err := migrations()
	if err != nil || len(ms) < n {
		t.Fatalf("migrations: %d %v", len(ms), err)
	}
	ctx := context.Background()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, m := range ms[:n] {
		if err := apply(ctx, conn, m); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	return raw
}

// A database written before jobs had a column per target keeps every job's
// target: migration 10 moves a rollback's release to rollback_to and a
// backup, drill or restore's to backup, by action.
func TestMigrationSplitsJobTargetsByAction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "shipbot.db")
	raw := openAtVersion(t, path, 9)
	rows := []struct {
		action, release string
	}{
		{"deploy", "20261122-090000-1"},
		{"rollback", "20261121-080000-0"},
		{"backup", "20261122-100000-3"},
		{"verify", "20261122-100000-3"},
		{"restore", "20261122-100000-3"},
		{"stop", ""},
		{"start", ""},
	}
	for _, r := range rows {
		if _, err := raw.Exec(`INSERT INTO jobs (app, env, action, ref, release, from_release, state, reason, req_user,
			req_identity, req_chat, approval_id, approved_by, card_ref, intent_seq, steps, output, created, started, ended, backup_id)
			VALUES ('helpdesk', 'prod', ?, '', ?, '20261122-000000-0', 'succeeded', '', 'alice', 'shell:alice', 'shell:ops',
			'', '', '', 0, '[]', '[]', '2026-11-22T09:00:00Z', '', '', ?)`, r.action, r.release, map[bool]string{true: "pre-1"}[r.action == "deploy"]); err != nil {
			t.Fatalf("%s: %v", r.action, err)
		}
	}
	raw.Close()

	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	js, err := db.Jobs(context.Background(), deploy.JobFilter{})
	if err != nil || len(js) != len(rows) {
		t.Fatalf("jobs: %d %v", len(js), err)
	}
	type target struct{ release, rollbackTo, backup, backupID string }
	want := map[deploy.Action]target{
		deploy.ActionDeploy:   {release: "20261122-090000-1", backupID: "pre-1"},
		deploy.ActionRollback: {rollbackTo: "20261121-080000-0"},
		deploy.ActionBackup:   {backup: "20261122-100000-3"},
		deploy.ActionVerify:   {backup: "20261122-100000-3"},
		deploy.ActionRestore:  {backup: "20261122-100000-3"},
		deploy.ActionStop:     {},
		deploy.ActionStart:    {},
	}
	for _, j := range js {
		got := target{j.Release, j.RollbackTo, j.Backup, j.BackupID}
		if got != want[j.Action] {
			t.Errorf("%s job: %+v, want %+v", j.Action, got, want[j.Action])
		}
		if w := want[j.Action]; j.Target() != w.release+w.rollbackTo+w.backup {
			t.Errorf("%s job: Target() = %q", j.Action, j.Target())
		}
	}
}
