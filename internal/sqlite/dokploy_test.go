package sqlite

import (
	"context"
	"testing"
	"time"
)

func TestDokployDeploymentsRoundTrip(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	d := DokployDeployment{App: "supermock", Env: "staging", Release: "20261123-090000-1", Posted: t0, Before: []string{"dpl_a", "dpl_b"}, Ref: "main"}
	if err := db.PutDokployDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	d.DeploymentID, d.SHA = "dpl_c", "3f2a9c1d7e3f2a9c1d7e3f2a9c1d7e3f2a9c1d7e"
	if err := db.PutDokployDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDokployDeployment(ctx, DokployDeployment{App: "supermock", Env: "staging", Release: "20261123-100000-2", Posted: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := db.DokployDeployments(ctx, "supermock", "staging")
	if err != nil || len(got) != 2 || got[1].DeploymentID != "dpl_c" || got[1].SHA != d.SHA || len(got[1].Before) != 2 ||
		!got[1].Posted.Equal(t0) || got[0].Before == nil {
		t.Fatalf("%+v %v", got, err)
	}
	if other, _ := db.DokployDeployments(ctx, "supermock", "production"); len(other) != 0 {
		t.Fatalf("other env: %+v", other)
	}
}
