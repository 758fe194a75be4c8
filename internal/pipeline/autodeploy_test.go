package pipeline

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

func TestAutoDeployOnlyWholeGreenPipelinesOfTheBranch(t *testing.T) {
	svc := New(Options{AutoDeploy: []AutoRule{{Project: "acme/web", Ref: "main", Workflows: []string{"CI"}, App: "web", Env: "staging", As: "ci"}}})
	good := Event{Source: GitHub, Kind: KindPipeline, Project: "acme/web", ID: "7", Ref: "main", SHA: "abc", Status: StatusSuccess,
		Workflow: "CI", Vetted: true}
	if got := svc.autoRulesFor(good); len(got) != 1 {
		t.Fatalf("a green CI run of main: %v", got)
	}
	for name, change := range map[string]func(*Event){
		"a fork's main":       func(e *Event) { e.Untrusted = true },
		"not yet vetted":      func(e *Event) { e.Vetted = false },
		"one job's success":   func(e *Event) { e.Kind = KindJob },
		"failed":              func(e *Event) { e.Status = StatusFailed },
		"another branch":      func(e *Event) { e.Ref = "feature/x" },
		"another workflow":    func(e *Event) { e.Workflow = "CodeQL" },
		"another project":     func(e *Event) { e.Project = "acme/api" },
		"no commit to deploy": func(e *Event) { e.SHA = "" },
	} {
		e := good
		change(&e)
		if got := svc.autoRulesFor(e); len(got) != 0 {
			t.Errorf("%s triggered %v", name, got)
		}
	}
}

// memAuto is an AutoStore in memory.
type memAuto struct {
	mu   sync.Mutex
	rows []AutoDeploy
}

func (m *memAuto) AddAutoDeploy(_ context.Context, a *AutoDeploy) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.rows {
		if r.Rule == a.Rule && r.Pipeline == a.Pipeline {
			return false, nil
		}
	}
	a.ID = int64(len(m.rows) + 1)
	m.rows = append(m.rows, *a)
	return true, nil
}

func (m *memAuto) AutoDeploys(_ context.Context, rule string) ([]AutoDeploy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []AutoDeploy
	for _, r := range m.rows {
		if r.Rule == rule {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Order > out[k].Order })
	return out, nil
}

func (m *memAuto) UpdateAutoDeploy(_ context.Context, a AutoDeploy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[a.ID-1] = a
	return nil
}

func (m *memAuto) OpenAutoDeploys(_ context.Context) ([]AutoDeploy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []AutoDeploy
	for _, r := range m.rows {
		if r.State == AutoPending {
			out = append(out, r)
		}
	}
	return out, nil
}

// fakeDeployer creates jobs awaiting approval; answer, if set, replaces
// the answer (a refusal).
type fakeDeployer struct {
	mu        sync.Mutex
	jobs      map[int64]*deploy.Job
	deployed  []string
	cancelled []int64
	answer    *AutoAnswer
	cancelErr error
}

func (f *fakeDeployer) AutoDeploy(_ context.Context, r AutoRule, sha, door string) AutoAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answer != nil {
		return *f.answer
	}
	id := int64(len(f.jobs) + 1)
	f.jobs[id] = &deploy.Job{ID: id, App: r.App, Env: r.Env, Ref: sha, State: deploy.AwaitingApproval, RequestedBy: deploy.Who{User: r.As}, Created: time.Now()}
	f.deployed = append(f.deployed, sha)
	return AutoAnswer{JobID: id}
}

func (f *fakeDeployer) Cancel(_ context.Context, _ AutoRule, id int64, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancelErr != nil {
		return f.cancelErr
	}
	f.jobs[id].State = deploy.Cancelled
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *fakeDeployer) FindJob(_ context.Context, r AutoRule, sha string, since time.Time) (*deploy.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.Ref == sha && !j.Created.Before(since) {
			return j, nil
		}
	}
	return nil, nil
}

func (f *fakeDeployer) Job(_ context.Context, id int64) (*deploy.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[id]; ok {
		c := *j
		return &c, nil
	}
	return nil, deploy.ErrNotFound
}

func green(id, sha string) Event {
	return Event{Source: GitLab, Kind: KindPipeline, Project: "acme/web", ID: id, Ref: "main", SHA: sha, Status: StatusSuccess, Vetted: true}
}

func TestAutoDeployNewestWinsAndResumes(t *testing.T) {
	ctx := context.Background()
	auto := &memAuto{}
	store := newMem()
	rule := AutoRule{Project: "acme/web", Ref: "main", App: "web", Env: "production", As: "ci"}
	svc := New(Options{Store: store, Auto: auto, AutoDeploy: []AutoRule{rule}})
	d := &fakeDeployer{jobs: map[int64]*deploy.Job{}}
	if err := svc.SetDeployer(ctx, d); err != nil {
		t.Fatal(err)
	}
	step := func(e Event) {
		t.Helper()
		if err := svc.autoDeploy(ctx, e); err != nil {
			t.Fatal(err)
		}
		svc.WaitAuto()
	}
	step(green("10", "sha10"))
	step(green("10", "sha10")) // redelivered
	step(green("12", "sha12")) // newer: job 1 (awaiting approval) is cancelled
	step(green("11", "sha11")) // late: superseded at once, never deployed
	if got := d.deployed; len(got) != 2 || got[0] != "sha10" || got[1] != "sha12" {
		t.Fatalf("deployed %v; want sha10 then sha12 only", got)
	}
	if len(d.cancelled) != 1 || d.cancelled[0] != 1 {
		t.Fatalf("cancelled %v; want job 1", d.cancelled)
	}
	states := map[string]string{}
	for _, r := range auto.rows {
		states[r.RunID] = r.State
	}
	if states["10"] != AutoSuperseded || states["12"] != AutoStarted || states["11"] != AutoSuperseded {
		t.Fatalf("states %v", states)
	}

	// A crash after the job was made and before it was recorded: the row
	// is still pending; the restart links that job and deploys nothing.
	a := &AutoDeploy{Rule: rule.Key(), Pipeline: "p13", Source: GitLab, RunID: "13", Order: 13, SHA: "sha13", State: AutoPending,
		Created: time.Now().Add(-time.Second)}
	if _, err := auto.AddAutoDeploy(ctx, a); err != nil {
		t.Fatal(err)
	}
	d.jobs[9] = &deploy.Job{ID: 9, Ref: "sha13", State: deploy.Running, Created: time.Now()}
	if err := svc.SetDeployer(ctx, d); err != nil {
		t.Fatal(err)
	}
	svc.WaitAuto()
	if r := auto.rows[a.ID-1]; r.State != AutoStarted || r.JobID != 9 || len(d.deployed) != 2 {
		t.Fatalf("resumed row %+v, deployed %v", r, d.deployed)
	}

	// Asked while shipbot stops: the row stays pending for the restart.
	d.answer = &AutoAnswer{Refused: true, Denial: "draining", Reason: "shipbot is shutting down"}
	step(green("131", "sha131"))
	if r := auto.rows[len(auto.rows)-1]; r.State != AutoPending {
		t.Fatalf("draining row %+v; want still pending", r)
	}
	d.answer = nil
	if err := svc.SetDeployer(ctx, d); err != nil {
		t.Fatal(err)
	}
	svc.WaitAuto()
	if r := auto.rows[len(auto.rows)-1]; r.State != AutoStarted || d.deployed[len(d.deployed)-1] != "sha131" {
		t.Fatalf("resumed row %+v, deployed %v", r, d.deployed)
	}

	// A refusal is recorded as skipped, with a notice.
	d.answer = &AutoAnswer{Refused: true, Denial: "locked", Reason: "web/production is locked by alice: freeze"}
	step(green("140", "sha14"))
	if r := auto.rows[len(auto.rows)-1]; r.State != AutoSkipped || r.Note == "" {
		t.Fatalf("refused row %+v", r)
	}

	// A superseded job that cannot be cancelled is left alone, and the
	// newer pipeline still deploys.
	d.answer = nil
	d.cancelErr = errors.New("engine busy")
	step(green("150", "sha15"))
	step(green("160", "sha16"))
	if got := d.deployed[len(d.deployed)-1]; got != "sha16" {
		t.Fatalf("last deployed %s", got)
	}
}
