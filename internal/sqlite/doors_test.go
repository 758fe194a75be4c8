package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/pipeline"
)

func TestIdempotencyKeysSurviveReopen(t *testing.T) {
	db, path := openDB(t)
	ctx := context.Background()
	now := time.Now()
	if id, first, err := db.ClaimKey(ctx, "ci", "k1", now); err != nil || !first || id != 0 {
		t.Fatalf("first claim: %d %v %v", id, first, err)
	}
	if id, first, _ := db.ClaimKey(ctx, "ci", "k1", now); first || id != 0 {
		t.Fatalf("claim while in flight: %d %v", id, first)
	}
	if _, first, _ := db.ClaimKey(ctx, "other", "k1", now); !first {
		t.Fatal("keys are per token")
	}
	if err := db.SetKeyJob(ctx, "ci", "k1", 42); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if id, first, _ := db2.ClaimKey(ctx, "ci", "k1", now.Add(time.Hour)); first || id != 42 {
		t.Fatalf("after reopen: %d %v; want job 42", id, first)
	}
	// A refused first request frees its key; a claim the process died on
	// is taken over once stale, never while fresh.
	_, _, _ = db2.ClaimKey(ctx, "ci", "k2", now)
	if err := db2.DropKey(ctx, "ci", "k2"); err != nil {
		t.Fatal(err)
	}
	if _, first, _ := db2.ClaimKey(ctx, "ci", "k2", now); !first {
		t.Fatal("dropped key not free")
	}
	if _, first, _ := db2.ClaimKey(ctx, "ci", "k2", now.Add(time.Minute)); first {
		t.Fatal("fresh claim taken over")
	}
	if _, first, _ := db2.ClaimKey(ctx, "ci", "k2", now.Add(3*time.Minute)); !first {
		t.Fatal("stale claim not taken over")
	}
	// DropKey never forgets a key that has a job.
	_ = db2.DropKey(ctx, "ci", "k1")
	if id, _, _ := db2.ClaimKey(ctx, "ci", "k1", now); id != 42 {
		t.Fatalf("key with a job dropped: %d", id)
	}
}

func TestAutoDeploysOncePerPipeline(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	a := &pipeline.AutoDeploy{Rule: "web/staging acme/web@main", Pipeline: "gitlab:acme/web:pipeline:7", Source: "gitlab",
		RunID: "7", Order: 7, SHA: "abc", State: pipeline.AutoPending, Created: time.Now()}
	if ok, err := db.AddAutoDeploy(ctx, a); !ok || err != nil || a.ID == 0 {
		t.Fatalf("add: %v %v %d", ok, err, a.ID)
	}
	again := *a
	again.ID = 0
	if ok, err := db.AddAutoDeploy(ctx, &again); ok || err != nil {
		t.Fatalf("second add of the same pipeline: %v %v", ok, err)
	}
	b := &pipeline.AutoDeploy{Rule: a.Rule, Pipeline: "gitlab:acme/web:pipeline:9", Source: "gitlab", RunID: "9", Order: 9,
		SHA: "def", State: pipeline.AutoPending, Created: time.Now()}
	if ok, _ := db.AddAutoDeploy(ctx, b); !ok {
		t.Fatal("another pipeline refused")
	}
	a.State, a.JobID = pipeline.AutoStarted, 3
	if err := db.UpdateAutoDeploy(ctx, *a); err != nil {
		t.Fatal(err)
	}
	all, _ := db.AutoDeploys(ctx, a.Rule)
	if len(all) != 2 || all[0].RunID != "9" || all[1].JobID != 3 || all[1].State != pipeline.AutoStarted {
		t.Fatalf("rows %+v", all)
	}
	open, _ := db.OpenAutoDeploys(ctx)
	if len(open) != 1 || open[0].RunID != "9" {
		t.Fatalf("open %+v", open)
	}
}
