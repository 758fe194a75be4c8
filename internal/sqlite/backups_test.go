package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

func TestBackupRecordsRoundTrip(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b := deploy.Backup{App: "helpdesk", Env: "prod", ID: "20261123-100000-4", JobID: 4, By: "alice", Reason: "manual",
		Created: t0, State: deploy.BackupOK, Location: "/var/backups/helpdesk/20261123-100000-4",
		Files: []deploy.BackupFile{{Name: "files.tar.gz", Kind: "files", Source: "/srv/a", Size: 42, SHA256: "ab"}}}
	if err := db.PutBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	older := b
	older.ID, older.Created, older.State, older.Files = "20261122-100000-2", t0.Add(-24*time.Hour), deploy.BackupFailed, nil
	if err := db.PutBackup(ctx, older); err != nil {
		t.Fatal(err)
	}
	b.Verified, b.Drill = t0.Add(time.Hour), "2 tables, 5 rows"
	if err := db.PutBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := db.Backup(ctx, "helpdesk", "prod", b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Drill != b.Drill || !got.Verified.Equal(b.Verified) || len(got.Files) != 1 || got.Files[0] != b.Files[0] || got.Location != b.Location {
		t.Errorf("got %+v", got)
	}
	all, err := db.Backups(ctx, "helpdesk", "prod")
	if err != nil || len(all) != 2 || all[0].ID != b.ID || all[1].State != deploy.BackupFailed || len(all[1].Files) != 0 {
		t.Errorf("list = %+v, %v", all, err)
	}
	if _, err := db.Backup(ctx, "helpdesk", "staging", b.ID); !errors.Is(err, deploy.ErrNotFound) {
		t.Errorf("other env: %v", err)
	}
	if err := db.PutRelease(ctx, deploy.Release{App: "helpdesk", Env: "prod", ID: "r1", State: deploy.ReleaseActive, BackupID: b.ID, Created: t0}); err != nil {
		t.Fatal(err)
	}
	rels, _ := db.Releases(ctx, "helpdesk", "prod")
	if len(rels) != 1 || rels[0].BackupID != b.ID {
		t.Errorf("release backup id lost: %+v", rels)
	}
}

// A job's outbox rows commit with the job change they report: every
// stored change (a step too: the card shows it), none for a refused one;
// a new job is reported, as new, with the update that completes it.
func TestJobRowsCommitWithTheJobChange(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	woken := make(chan struct{}, 10)
	var reported []string
	err := db.ReportJobs(ctx, func(_ context.Context, prev deploy.State, j deploy.Job) []notify.Post {
		reported = append(reported, string(prev)+">"+string(j.State))
		return []notify.Post{{Topic: fmt.Sprintf("job:%d", j.ID), Channel: notify.Channel{Platform: "slack", ID: "C1"},
			Message: notify.Message{Title: string(j.State)}}}
	}, func() { woken <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	j := &deploy.Job{App: "a", Env: "e", Action: deploy.ActionDeploy, State: deploy.Queued}
	if err := db.CreateJob(ctx, j, nil); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 0 {
		t.Fatalf("reported %v before the update that completes the job", reported)
	}
	j.State = deploy.Running
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Running}); err != nil { // a step: same state
		t.Fatal(err)
	}
	// A refused change (wrong from state) writes no notice either.
	j.State = deploy.Succeeded
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Queued}); !errors.Is(err, deploy.ErrConflict) {
		t.Fatalf("conflict: %v", err)
	}
	if err := db.UpdateJob(ctx, j, []deploy.State{deploy.Running}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(reported, ","); got != ">running,running>running,running>succeeded" {
		t.Fatalf("reported %s", got)
	}
	pending, _, err := db.OutboxDepth(ctx)
	if err != nil || pending != 1 {
		t.Fatalf("outbox pending = %d, %v; want one row (job:%d) at its newest version", pending, err, j.ID)
	}
	if len(woken) != 3 {
		t.Errorf("relay woken %d times, want 3", len(woken))
	}
}

func TestBackupStats(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC)
	for i, st := range []deploy.BackupState{deploy.BackupOK, deploy.BackupOK, deploy.BackupFailed, deploy.BackupPruned} {
		b := deploy.Backup{App: "hd", Env: "prod", ID: fmt.Sprintf("b%d", i), State: st, Created: t0.Add(time.Duration(i) * time.Hour)}
		if err := db.PutBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutBackup(ctx, deploy.Backup{App: "hd", Env: "staging", ID: "x", State: deploy.BackupFailed, Created: t0}); err != nil {
		t.Fatal(err)
	}
	stats, err := db.BackupStats(ctx)
	if err != nil || len(stats) != 2 {
		t.Fatalf("stats %+v %v", stats, err)
	}
	prod := stats[0]
	if prod.Env != "prod" || !prod.LastOK.Equal(t0.Add(time.Hour)) || prod.States[deploy.BackupOK] != 2 || prod.States[deploy.BackupFailed] != 1 ||
		prod.States[deploy.BackupPruned] != 1 {
		t.Errorf("prod %+v", prod)
	}
	if st := stats[1]; st.Env != "staging" || !st.LastOK.IsZero() || st.States[deploy.BackupFailed] != 1 {
		t.Errorf("staging %+v", st)
	}
}

// A dump's manifest and a failed drill survive the store: restores and
// drills hold loaded copies to the manifest, and /backups shows the drill.
func TestBackupManifestAndFailedDrillRoundTrip(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	m := &deploy.DBManifest{Rows: map[string]int64{"tickets": 5000, "users": 0}, Objects: map[string]int{"views": 1, "events": 0},
		Charset: "utf8mb4", Collation: "utf8mb4_unicode_ci"}
	b := deploy.Backup{App: "helpdesk", Env: "prod", ID: "b1", Created: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), State: deploy.BackupOK,
		Files:    []deploy.BackupFile{{Name: "db-main.sql.gz", Kind: "mysql", Source: "main", Size: 9, SHA256: "cd", Manifest: m}},
		Verified: time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC), Drill: deploy.DrillFailedPrefix + "ERROR 1227 (42000) at line 40"}
	if err := db.PutBackup(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := db.Backup(ctx, "helpdesk", "prod", "b1")
	if err != nil {
		t.Fatal(err)
	}
	gm := got.Files[0].Manifest
	if gm == nil || fmt.Sprint(*gm) != fmt.Sprint(*m) {
		t.Errorf("manifest = %+v, want %+v", gm, m)
	}
	if !got.DrillFailed() || !strings.Contains(got.Drill, "ERROR 1227") {
		t.Errorf("drill = %q", got.Drill)
	}
}
