package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
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

// An audit chain written before rows had a via (schema 10) still verifies
// after the upgrade, and continues with rows that carry one.
func TestAuditChainFromBeforeViaVerifiesAfterUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "shipbot.db")
	raw := openAtVersion(t, path, 10)
	prev := ""
	for i, e := range []*audit.Event{
		audit.Intent(audit.Who{User: "alice", Identity: "telegram:1", Chat: "telegram:-100"}, "lock", "helpdesk", "prod", []string{"migration"}),
		audit.Denial(audit.Who{Identity: "telegram:9", Chat: "telegram:-100"}, "deploy", nil, "", "", "unknown identity"),
	} {
		audit.Prepare(prev, int64(i+1), time.Date(2026, 11, 20, 9, 0, i, 0, time.UTC), e)
		prev = e.Hash
		args, _ := json.Marshal(append([]string{}, e.Args...))
		if _, err := raw.Exec(`INSERT INTO audit (seq, time, kind, actor, identity, chat, command, args, app, env, decision,
			job_id, intent_seq, outcome, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			e.Seq, formatTime(e.Time), string(e.Kind), e.Actor, e.Identity, e.Chat, e.Command, string(args), e.App, e.Env,
			string(e.Decision), e.JobID, e.IntentSeq, e.Outcome, e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`UPDATE audit_head SET seq = 2, hash = ? WHERE id = 1`, prev); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustVerify(t, db, 2)
	in := audit.Intent(audit.Who{User: "ci", Identity: "api:ci", Chat: "api:ci", Via: "api"}, "deploy", "helpdesk", "staging", nil)
	if err := db.Append(context.Background(), in, audit.Closing(in, 0, "ok")); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, db, 4)
	evs, err := db.AuditEvents(context.Background(), audit.Filter{})
	if err != nil || len(evs) != 4 {
		t.Fatalf("events: %d %v", len(evs), err)
	}
	for _, e := range evs { // newest first
		if want := map[bool]string{true: "api"}[e.Seq > 2]; e.Via != want {
			t.Errorf("row %d via %q, want %q", e.Seq, e.Via, want)
		}
	}
}

// A job keeps the door it was asked through, so the outcome the engine
// writes later (after a restart, too) names it.
func TestJobKeepsItsVia(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	who := deploy.Who{User: "ci", Identity: "api:ci", Chat: "api:ci", Via: "api"}
	j := &deploy.Job{App: "helpdesk", Env: "staging", Action: deploy.ActionDeploy, State: deploy.AwaitingApproval, RequestedBy: who}
	if err := db.CreateJob(ctx, j, nil, audit.Intent(who, "deploy", "helpdesk", "staging", nil)); err != nil {
		t.Fatal(err)
	}
	got, err := db.Job(ctx, j.ID)
	if err != nil || got.RequestedBy != who {
		t.Fatalf("job requested by %+v %v, want %+v", got.RequestedBy, err, who)
	}
}
