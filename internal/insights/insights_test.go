package insights_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
	"github.com/shipbot/shipbot/internal/sqlite"
)

var (
	alice = deploy.Who{User: "alice", Identity: "shell:alice", Chat: "shell:ops"}
	bob   = deploy.Who{User: "bob", Identity: "shell:bob", Chat: "shell:ops"}
	carol = deploy.Who{User: "carol", Identity: "shell:carol", Chat: "shell:ops"}
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func sha(c byte) string { return strings.Repeat(string(c), 40) }

// History is the known history every figure below is computed from by hand.
// The report ends 2026-12-02 12:00 UTC over 7 days: the window is
// Nov 26 00:00 – Dec 2 12:00, the one before Nov 19 00:00 – Nov 26 00:00.
type history struct {
	t   testing.TB
	db  *sqlite.DB
	ctx context.Context
}

func openStore(t testing.TB) *history {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "shipbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &history{t: t, db: db, ctx: context.Background()}
}

// job stores a finished job as the engine leaves it.
func (h *history) job(app, env string, action deploy.Action, state deploy.State, who deploy.Who, ended string, set func(*deploy.Job), a *deploy.Approval) {
	h.t.Helper()
	e := at(ended)
	j := &deploy.Job{App: app, Env: env, Action: action, State: state, RequestedBy: who, Ref: "main",
		Release: e.Format("20060102-150405") + "-1", Started: e.Add(-5 * time.Minute), Ended: e}
	if set != nil {
		set(j)
	}
	if a != nil {
		j.ApprovalID = a.ID
		a.App, a.Env, a.Action, a.Version, a.RequestedBy = app, env, action, j.Ref, who.User
	}
	if err := h.db.CreateJob(h.ctx, j, a); err != nil {
		h.t.Fatal(err)
	}
}

// pipeline stores the record of a pipeline of project at sha made at commit.
func (h *history) pipeline(project, sha, commit string) { h.pipelineAt(project, sha, at(commit)) }

func (h *history) pipelineAt(project, sha string, commit time.Time) {
	h.t.Helper()
	ev := pipeline.Event{Source: pipeline.GitHub, Kind: pipeline.KindPipeline, Project: project, ID: sha, SHA: sha,
		Status: pipeline.StatusSuccess, Time: commit.Add(10 * time.Minute), CommitTime: commit}
	raw, err := json.Marshal(ev)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.db.Ingest(h.ctx, "k:"+sha, ev.Key(), func(*notify.Tracked) (*notify.Tracked, []notify.Post, error) {
		return &notify.Tracked{Topic: ev.Key(), Project: project, SHA: sha, Status: ev.Status, Event: raw}, nil, nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

func approval(id, created, decided string, state deploy.ApprovalState) *deploy.Approval {
	return &deploy.Approval{ID: id, State: state, Created: at(created), Expires: at(created).Add(time.Hour), Decided: at(decided),
		DecidedBy: "zed"}
}

func steps(kv ...string) func(*deploy.Job) {
	return func(j *deploy.Job) {
		for i := 0; i < len(kv); i += 2 {
			j.Steps = append(j.Steps, deploy.Step{Name: kv[i], State: deploy.StepState(kv[i+1])})
		}
	}
}

func seed(t *testing.T) *history {
	h := openStore(t)
	const hp, st = "production", "staging"
	dep, rb := deploy.ActionDeploy, deploy.ActionRollback
	// Too old for either window.
	h.job("helpdesk", hp, dep, deploy.Failed, carol, "2026-11-18 23:59", steps("health", "failed"), nil)
	// The window before: one good deploy (lead 1h), one rolled back by its
	// health check and restored only by J1 five days later.
	h.pipeline("acme/helpdesk", sha('e'), "2026-11-20 09:00")
	h.job("helpdesk", hp, dep, deploy.Succeeded, bob, "2026-11-20 10:00", func(j *deploy.Job) { j.Ref = sha('e') }, nil)
	h.job("helpdesk", hp, dep, deploy.RolledBack, bob, "2026-11-21 10:00", steps("build", "done", "health", "failed"), nil)
	// staging: only the window before, its ref names no commit.
	h.job("helpdesk", st, dep, deploy.Succeeded, alice, "2026-11-22 10:00", nil, nil)

	// The window.
	// J1: the ref is the commit (a Deploy button); lead 2h; approval 30m.
	h.pipeline("acme/helpdesk", sha('a'), "2026-11-26 08:00")
	h.job("helpdesk", hp, dep, deploy.Succeeded, alice, "2026-11-26 10:00", func(j *deploy.Job) { j.Ref = sha('a') },
		approval("appr1", "2026-11-26 09:00", "2026-11-26 09:30", deploy.ApprovalApproved))
	// J2: the release runner's checkout line names the commit; lead 6h;
	// J3 rolls back from it 1h30m later: a change failure restored in 1h30m.
	h.pipeline("acme/helpdesk", sha('b'), "2026-11-27 06:00")
	h.job("helpdesk", hp, dep, deploy.Succeeded, bob, "2026-11-27 12:00", func(j *deploy.Job) {
		j.Release = "rel-j2"
		j.Output = []string{"cloning", "checking out main at " + sha('b'), "built"}
	}, nil)
	h.job("helpdesk", hp, rb, deploy.Succeeded, alice, "2026-11-27 13:30", func(j *deploy.Job) {
		j.FromRelease, j.Release = "rel-j2", "rel-j1"
	}, nil)
	// J4: no commit known anywhere: lead unknown.
	h.job("helpdesk", hp, dep, deploy.Succeeded, alice, "2026-11-28 09:00", nil, nil)
	// J5: health failed, shipbot switched back; J6 restores it 1h later.
	h.job("helpdesk", hp, dep, deploy.RolledBack, bob, "2026-11-29 10:00", steps("build", "done", "health", "failed"), nil)
	// J6: a short commit id as the ref, typed in capitals; lead 30m.
	h.pipeline("acme/helpdesk", sha('c'), "2026-11-29 10:30")
	h.job("helpdesk", hp, dep, deploy.Succeeded, alice, "2026-11-29 11:00", func(j *deploy.Job) { j.Ref = "CCCCCCC" }, nil)
	// J7: the build failed: a failed deploy, not a change failure.
	h.job("helpdesk", hp, dep, deploy.Failed, carol, "2026-11-30 08:00", steps("build", "failed"), nil)
	// J8: cancelled (denied): no deploy at all; its denial is no approval wait.
	h.job("helpdesk", hp, dep, deploy.Cancelled, carol, "2026-11-30 09:00", nil,
		approval("appr8", "2026-11-30 08:50", "2026-11-30 09:00", deploy.ApprovalDenied))
	// J9: Dokploy pinned the commit it built; lead 24h; approval 12m.
	h.pipeline("acme/helpdesk", sha('d'), "2026-12-01 10:00")
	h.job("helpdesk", hp, dep, deploy.Succeeded, alice, "2026-12-02 10:00", func(j *deploy.Job) { j.Release = "rel-j9" },
		approval("appr9", "2026-12-02 09:40", "2026-12-02 09:52", deploy.ApprovalApproved))
	if err := h.db.PutDokployDeployment(h.ctx, sqlite.DokployDeployment{App: "helpdesk", Env: hp, Release: "rel-j9", SHA: sha('d')}); err != nil {
		t.Fatal(err)
	}
	// J10: failed its health check and was not switched back; nothing
	// has restored it yet.
	h.job("helpdesk", hp, dep, deploy.Failed, bob, "2026-12-02 11:00", steps("switch", "done", "health", "failed"), nil)
	// Another project's pipeline at J1's commit, with another time: not
	// taken for helpdesk.
	h.pipeline("acme/other", sha('a'), "2026-11-01 00:00")
	return h
}

func svc(h *history) *insights.Service {
	return insights.New(insights.Options{Store: h.db, Projects: map[string]string{"helpdesk": "acme/helpdesk"},
		Now: func() time.Time { return at("2026-12-02 12:00") }})
}

func d(s string) insights.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return insights.Duration(v)
}

func TestFiguresOfAKnownHistory(t *testing.T) {
	t.Parallel()
	h := seed(t)
	r, err := svc(h).Stats(context.Background(), insights.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.From.Equal(at("2026-11-26 00:00")) || !r.To.Equal(at("2026-12-02 12:00")) || !r.PrevFrom.Equal(at("2026-11-19 00:00")) || r.Days != 7 {
		t.Fatalf("window %s – %s, before from %s, %d days", r.From, r.To, r.PrevFrom, r.Days)
	}
	if len(r.Envs) != 2 || r.Envs[0].Env != "production" || r.Envs[1].Env != "staging" {
		t.Fatalf("envs: %+v", r.Envs)
	}
	prod := r.Envs[0]
	want := insights.Figures{
		Deploys: 8, Successful: 5, DeploysPerDay: 5.0 / 7,
		LeadTime:       insights.Spread{N: 4, Median: d("4h"), P90: d("24h"), Unknown: 1},
		ChangeFailures: 3, ChangeFailureRate: 3.0 / 8,
		TimeToRestore: insights.Spread{N: 2, Median: d("1h15m"), P90: d("1h30m"), Unknown: 1},
		ApprovalWait:  insights.Spread{N: 2, Median: d("21m"), P90: d("30m")},
		FailingSteps:  []insights.Count{{Name: "health", N: 2}, {Name: "build", N: 1}},
		Deployers:     []insights.Count{{Name: "alice", N: 4}, {Name: "bob", N: 3}, {Name: "carol", N: 1}},
	}
	if !reflect.DeepEqual(prod.Current, want) {
		t.Errorf("production now:\n got %+v\nwant %+v", prod.Current, want)
	}
	wantPrev := insights.Figures{
		Deploys: 2, Successful: 1, DeploysPerDay: 1.0 / 7,
		LeadTime:       insights.Spread{N: 1, Median: d("1h"), P90: d("1h")},
		ChangeFailures: 1, ChangeFailureRate: 0.5,
		TimeToRestore: insights.Spread{N: 1, Median: d("120h"), P90: d("120h")},
		FailingSteps:  []insights.Count{{Name: "health", N: 1}},
		Deployers:     []insights.Count{{Name: "bob", N: 2}},
	}
	if !reflect.DeepEqual(prod.Previous, wantPrev) {
		t.Errorf("production before:\n got %+v\nwant %+v", prod.Previous, wantPrev)
	}
	// staging: an empty window beside a window with one deploy whose
	// commit no pipeline carried.
	stg := r.Envs[1]
	if !reflect.DeepEqual(stg.Current, insights.Figures{FailingSteps: []insights.Count{}, Deployers: []insights.Count{}}) {
		t.Errorf("staging now: %+v", stg.Current)
	}
	wantStg := insights.Figures{Deploys: 1, Successful: 1, DeploysPerDay: 1.0 / 7, LeadTime: insights.Spread{Unknown: 1},
		FailingSteps: []insights.Count{}, Deployers: []insights.Count{{Name: "alice", N: 1}}}
	if !reflect.DeepEqual(stg.Previous, wantStg) {
		t.Errorf("staging before:\n got %+v\nwant %+v", stg.Previous, wantStg)
	}
	wantDaily := []insights.Day{
		{Date: at("2026-11-26 00:00"), Live: 1, LeadTime: d("2h")},
		{Date: at("2026-11-27 00:00"), RolledBack: 1, LeadTime: d("6h")},
		{Date: at("2026-11-28 00:00"), Live: 1},
		{Date: at("2026-11-29 00:00"), Live: 1, RolledBack: 1, LeadTime: d("30m")},
		{Date: at("2026-11-30 00:00"), Failed: 1},
		{Date: at("2026-12-01 00:00")},
		{Date: at("2026-12-02 00:00"), Live: 1, Failed: 1, LeadTime: d("24h")},
	}
	if !reflect.DeepEqual(r.Daily, wantDaily) {
		t.Errorf("daily:\n got %+v\nwant %+v", r.Daily, wantDaily)
	}
}

func TestFiltersWindowsAndEmptyReports(t *testing.T) {
	t.Parallel()
	h := seed(t)
	s := svc(h)
	ctx := context.Background()
	// Only what the asker may see.
	r, err := s.Stats(ctx, insights.Query{Allowed: func(app, env string) bool { return env == "staging" }})
	if err != nil || len(r.Envs) != 1 || r.Envs[0].Env != "staging" {
		t.Fatalf("allowed staging only: %+v %v", r, err)
	}
	for _, d := range r.Daily {
		if d.Live+d.Failed+d.RolledBack != 0 {
			t.Fatalf("the chart counts production's deploys for a staging-only asker: %+v", r.Daily)
		}
	}
	// An app with nothing recorded: no envs, every day zero.
	r, err = s.Stats(ctx, insights.Query{App: "nothing"})
	if err != nil || len(r.Envs) != 0 || len(r.Daily) != 7 {
		t.Fatalf("empty: %+v %v", r, err)
	}
	// The digest's window: the 7 whole days before Monday 2026-11-30.
	r, err = s.Stats(ctx, insights.Query{App: "helpdesk", Env: "production", End: at("2026-11-30 00:00")})
	if err != nil {
		t.Fatal(err)
	}
	if !r.From.Equal(at("2026-11-23 00:00")) || len(r.Envs) != 1 {
		t.Fatalf("digest window from %s: %+v", r.From, r.Envs)
	}
	// J1, J2, J4, J5, J6; J3's rollback still marks J2 a failure.
	if c := r.Envs[0].Current; c.Deploys != 5 || c.Successful != 4 || c.ChangeFailures != 2 {
		t.Fatalf("digest week: %+v", c)
	}
	// 30 days hold all of production's deploys, the too-old one too; the
	// 30 days before are empty.
	r, err = s.Stats(ctx, insights.Query{App: "helpdesk", Env: "production", Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	if c, p := r.Envs[0].Current, r.Envs[0].Previous; c.Deploys != 11 || c.ChangeFailures != 5 || p.Deploys != 0 || len(r.Daily) != 30 {
		t.Fatalf("30d: now %+v before %+v", c, p)
	}
	if _, err := s.Stats(ctx, insights.Query{Days: 14}); err == nil {
		t.Fatal("a 14-day window was accepted")
	}
	for in, want := range map[string]int{"": 7, "7d": 7, "30d": 30, "90d": 90} {
		if got, err := insights.ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"14d", "7", "-7d", "7d;rm"} {
		if _, err := insights.ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

// The API returns the report as JSON: durations in whole seconds.
func TestReportJSON(t *testing.T) {
	t.Parallel()
	h := seed(t)
	r, err := svc(h).Stats(context.Background(), insights.Query{App: "helpdesk", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"lead_time":{"n":4,"median_seconds":14400,"p90_seconds":86400,"unknown":1}`,
		`"change_failure_rate":0.375`, `"from":"2026-11-26T00:00:00Z"`, `"deployers":[{"name":"alice","n":4}`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("no %s in %s", want, raw)
		}
	}
}
