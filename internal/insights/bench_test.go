package insights_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/insights"
)

// BenchmarkStats90Days: /stats over 90 days (and the 90 before) of one
// env deploying 10 times a day, every commit's pipeline recorded, beside
// the floor of reading the same jobs with the store's plain job listing.
// Run: go test -run '^$' -bench Stats90 ./internal/insights
func BenchmarkStats90Days(b *testing.B) {
	h := openStore(b)
	end := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	n := 0
	for d := 0; d < 180; d++ {
		for k := 0; k < 10; k++ {
			ended := end.Add(-time.Duration(d)*24*time.Hour - time.Duration(k)*time.Hour - time.Minute)
			sha := fmt.Sprintf("%040x", n)
			h.pipelineAt("acme/app", sha, ended.Add(-3*time.Hour))
			state := deploy.Succeeded
			if k == 3 {
				state = deploy.RolledBack
			}
			j := &deploy.Job{App: "app", Env: "prod", Action: deploy.ActionDeploy, State: state, Ref: sha,
				Release: fmt.Sprintf("r%d", n), RequestedBy: alice, Ended: ended}
			if err := h.db.CreateJob(ctx, j, nil); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	s := insights.New(insights.Options{Store: h.db, Projects: map[string]string{"app": "acme/app"}, Now: func() time.Time { return end }})
	b.Run("stats", func(b *testing.B) {
		for b.Loop() {
			r, err := s.Stats(ctx, insights.Query{Days: 90})
			if err != nil || r.Envs[0].Current.Deploys != 900 || r.Envs[0].Current.LeadTime.N != 810 {
				b.Fatalf("%v %+v", err, r.Envs)
			}
		}
	})
	b.Run("floor-jobs-listing", func(b *testing.B) {
		for b.Loop() {
			js, err := h.db.Jobs(ctx, deploy.JobFilter{App: "app", Env: "prod"})
			if err != nil || len(js) != 1800 {
				b.Fatalf("%v %d", err, len(js))
			}
		}
	})
}
