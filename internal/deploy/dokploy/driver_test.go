package dokploy_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/deploy/dokploy"
	"github.com/shipbot/shipbot/internal/deploy/dokploy/dokploytest"
)

const key = "dkp_SECRET_api_key_0123456789"

func client(t *testing.T, s *dokploytest.Server, k string) *dokploy.Client {
	t.Helper()
	c, err := dokploy.NewClient(dokploy.ClientConfig{BaseURL: s.APIURL(), APIKey: audit.NewSecret(k)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func driver(t *testing.T, s *dokploytest.Server, target dokploy.Target) *dokploy.Driver {
	t.Helper()
	d, err := dokploy.New(client(t, s, key), target)
	if err != nil {
		t.Fatal(err)
	}
	d.PollInterval, d.PollDeadline, d.Grace = 2*time.Millisecond, 5*time.Second, time.Second
	return d
}

func req(job int64) deploy.DeployRequest {
	return deploy.DeployRequest{JobID: job, App: "supermock", Env: "staging", Ref: "main",
		Release: fmt.Sprintf("20261123-0900%02d-%d", job, job), By: "alice"}
}

func TestDeployQueuedRunningDone(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.NextDeploy(dokploytest.Outcome{HiddenPolls: 2, RunningPolls: 3})
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	p := &deploytest.Progress{}
	res, err := d.Deploy(context.Background(), req(1), p)
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, p.Text())
	}
	if res.Release != req(1).Release || res.RolledBack {
		t.Fatalf("result %+v", res)
	}
	calls := s.CallsTo("compose.deploy")
	if len(calls) != 1 || calls[0].Method != http.MethodPost || calls[0].Body["composeId"] != "cmp_1" ||
		calls[0].Body["title"] != "shipbot "+req(1).Release || !strings.Contains(calls[0].Body["description"].(string), "job=1") {
		t.Fatalf("deploy call %+v", calls)
	}
	if n := len(s.CallsTo("deployment.allByCompose")); n < 6 {
		t.Errorf("polled %d times; the deployment was hidden twice and running three times", n)
	}
	if !strings.Contains(p.Text(), "deployment dpl_0001Xy running") || !strings.Contains(p.Text(), "dpl_0001Xy done") {
		t.Errorf("progress:\n%s", p.Text())
	}
	rels, err := d.Releases(context.Background())
	if err != nil || len(rels) != 1 || rels[0].ID != req(1).Release || !rels[0].Current {
		t.Errorf("releases %+v %v", rels, err)
	}
}

func TestDeployErrorShowsDokploysMessage(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddApplication("app_1", "backend")
	s.NextDeploy(dokploytest.Outcome{RunningPolls: 1, Status: "error", ErrorMessage: "Error: prisma migrate failed: P3009"})
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	_, err := d.Deploy(context.Background(), req(2), &deploytest.Progress{})
	if err == nil || !strings.Contains(err.Error(), "ended error") || !strings.Contains(err.Error(), "prisma migrate failed: P3009") {
		t.Fatalf("err = %v", err)
	}
	if got := s.CallsTo("application.deploy"); len(got) != 1 || got[0].Body["applicationId"] != "app_1" {
		t.Fatalf("calls %+v", got)
	}
}

func TestPollDeadline(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.NextDeploy(dokploytest.Outcome{Never: true})
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	d.PollDeadline = 50 * time.Millisecond
	_, err := d.Deploy(context.Background(), req(3), &deploytest.Progress{})
	if err == nil || !strings.Contains(err.Error(), "not finished after 50ms") || !strings.Contains(err.Error(), "may still be running in Dokploy") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeployNeverListedFailsAfterGrace(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	d.Grace = 20 * time.Millisecond
	_, err := d.Resume(context.Background(), req(4), &deploytest.Progress{})
	if err == nil || !strings.Contains(err.Error(), "never queued") {
		t.Fatalf("err = %v", err)
	}
	if n := len(s.CallsTo("compose.deploy")); n != 0 {
		t.Fatalf("resume queued %d deploys", n)
	}
}

func TestResumeAfterRestartFinishesWithoutSecondDeploy(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.NextDeploy(dokploytest.Outcome{RunningPolls: 20})
	first := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	ctx, cancel := context.WithCancel(context.Background())
	p := &deploytest.Progress{}
	done := make(chan error, 1)
	go func() { _, err := first.Deploy(ctx, req(5), p); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Text(), "deployment dpl_0001Xy running") {
		if time.Now().After(deadline) {
			t.Fatal("the deploy never started running")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	cancel() // the bot dies mid-poll
	if err := <-done; err == nil || !strings.Contains(err.Error(), "may still run there") {
		t.Fatalf("cancelled follow = %v", err)
	}
	second := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	res, err := second.Resume(context.Background(), req(5), &deploytest.Progress{})
	if err != nil || res.Release != req(5).Release {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if n := len(s.CallsTo("compose.deploy")); n != 1 {
		t.Fatalf("%d deploy calls; resuming must not deploy again", n)
	}
}

func TestApplicationRollbackUsesRollbackID(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddApplication("app_1", "backend")
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	ctx := context.Background()
	for _, j := range []int64{1, 2} {
		if _, err := d.Deploy(ctx, req(j), &deploytest.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := d.Rollback(ctx, deploy.RollbackRequest{JobID: 3, To: req(1).Release, From: req(2).Release}, &deploytest.Progress{})
	if err != nil || res.Release != req(1).Release {
		t.Fatalf("rollback %+v %v", res, err)
	}
	calls := s.CallsTo("rollback.rollback")
	if len(calls) != 1 || calls[0].Body["rollbackId"] != "rbk_0001" {
		t.Fatalf("rollback calls %+v", calls)
	}
	// shipbot's record of the rollback makes the older release current.
	d.LastLive = func(context.Context) (string, time.Time, error) {
		return req(1).Release, time.Now().Add(time.Minute), nil
	}
	rels, _ := d.Releases(ctx)
	if len(rels) != 2 || !rels[1].Current || rels[0].Current {
		t.Errorf("releases after rollback %+v", rels)
	}
}

func TestRollbackWithoutImageIsExplained(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddApplication("app_1", "backend")
	s.NextDeploy(dokploytest.Outcome{NoRollbackImage: true})
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	ctx := context.Background()
	_, _ = d.Deploy(ctx, req(1), &deploytest.Progress{})
	_, _ = d.Deploy(ctx, req(2), &deploytest.Progress{})
	_, err := d.Rollback(ctx, deploy.RollbackRequest{To: req(1).Release}, &deploytest.Progress{})
	if err == nil || !strings.Contains(err.Error(), "kept no rollback image") || !strings.Contains(err.Error(), "enable Rollbacks") {
		t.Fatalf("err = %v", err)
	}
	if len(s.CallsTo("rollback.rollback")) != 0 {
		t.Fatal("rollback.rollback called without a rollback id")
	}
}

func TestComposeRollbackRedeploysRecordedRef(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1", SetBranch: true})
	ctx := context.Background()
	r1 := req(1)
	r1.Ref = "v1.4.2" // set_branch: the tag is applied before the deploy
	if _, err := d.Deploy(ctx, r1, &deploytest.Progress{}); err != nil {
		t.Fatal(err)
	}
	_, _ = d.Deploy(ctx, req(2), &deploytest.Progress{})
	if s.Branch("cmp_1") != "main" {
		t.Fatalf("branch after /deploy main: %q", s.Branch("cmp_1"))
	}
	res, err := d.Rollback(ctx, deploy.RollbackRequest{JobID: 3, App: "supermock", Env: "staging", To: req(1).Release}, &deploytest.Progress{})
	if err != nil {
		t.Fatalf("compose rollback: %v", err)
	}
	// compose.redeploy never clones (services/compose.ts:344): a rollback
	// is compose.update of the source's branch field, then compose.deploy.
	if s.Branch("cmp_1") != "v1.4.2" || len(s.CallsTo("compose.update")) != 3 || len(s.CallsTo("compose.deploy")) != 3 ||
		len(s.CallsTo("compose.redeploy")) != 0 {
		t.Fatalf("branch %q, calls %+v", s.Branch("cmp_1"), s.Calls())
	}
	if !strings.Contains(res.Message, "v1.4.2") || !strings.Contains(res.Message, "now tracks v1.4.2, not main") ||
		!strings.Contains(res.Message, "/deploy supermock staging main") {
		t.Errorf("message %q", res.Message)
	}

	// Without set_branch, or from a non-git source, it says why not.
	pins := d.Pins // shipbot's database outlives a driver
	d = driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	d.Pins = pins
	if _, err := d.Rollback(ctx, deploy.RollbackRequest{To: req(1).Release}, &deploytest.Progress{}); err == nil || !strings.Contains(err.Error(), "set dokploy.set_branch") {
		t.Errorf("err = %v", err)
	}
	s2 := dokploytest.New(t, key)
	s2.AddCompose("cmp_2", "raw", "raw", "")
	d2 := driver(t, s2, dokploy.Target{ComposeID: "cmp_2", SetBranch: true})
	raw := req(1)
	raw.Ref = "" // a raw compose builds no ref
	if _, err := d2.Deploy(ctx, raw, &deploytest.Progress{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Deploy(ctx, req(2), &deploytest.Progress{}); err == nil || !strings.Contains(err.Error(), `source is "raw", not git`) {
		t.Errorf("a ref for a raw compose: %v", err)
	}
	if _, err := d2.Rollback(ctx, deploy.RollbackRequest{To: req(1).Release}, &deploytest.Progress{}); err == nil || !strings.Contains(err.Error(), `source is "raw"`) {
		t.Errorf("raw compose err = %v", err)
	}
}

func TestBadKeyAndErrorJSON(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	d, _ := dokploy.New(client(t, s, "wrong-key"), dokploy.Target{ComposeID: "cmp_1"})
	_, err := d.Status(context.Background())
	var api *dokploy.APIError
	if !errors.As(err, &api) || api.Status != 401 || !strings.Contains(err.Error(), "refused the API key") {
		t.Fatalf("bad key: %v", err)
	}
	good := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	s.FailNext("compose.deploy", 500, "INTERNAL_SERVER_ERROR", "Docker daemon not reachable")
	_, err = good.Deploy(context.Background(), req(1), &deploytest.Progress{})
	if err == nil || err.Error() != "Dokploy compose.deploy failed: INTERNAL_SERVER_ERROR: Docker daemon not reachable" {
		t.Fatalf("err = %v", err)
	}
	missing := driver(t, s, dokploy.Target{ComposeID: "nope"})
	if _, err := missing.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Fatalf("unknown compose: %v", err)
	}
	// A validation error lists Dokploy's issues.
	c := client(t, s, key)
	err = c.Post(context.Background(), "compose.deploy", map[string]string{}, nil)
	if err == nil || !strings.Contains(err.Error(), "composeId: Required") {
		t.Fatalf("issues not shown: %v", err)
	}
}

func TestKeyNeverLeaks(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddApplication("app_1", "backend")
	s.NextDeploy(dokploytest.Outcome{Status: "error", ErrorMessage: "boom"})
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	p := &deploytest.Progress{}
	var errs []string
	_, err := d.Deploy(context.Background(), req(1), p)
	errs = append(errs, fmt.Sprint(err))
	s.Close() // network errors too
	_, err = d.Status(context.Background())
	errs = append(errs, fmt.Sprint(err))
	all := p.Text() + strings.Join(errs, "\n") + fmt.Sprintf("%+v %#v", d, d)
	if strings.Contains(all, key) {
		t.Fatalf("the API key leaked:\n%s", all)
	}
}

func TestTransportSafety(t *testing.T) {
	if _, err := dokploy.NewClient(dokploy.ClientConfig{BaseURL: "http://dokploy.example.com/api", APIKey: audit.NewSecret(key)}); err == nil ||
		!strings.Contains(err.Error(), "use https") {
		t.Errorf("plain http to a remote host: %v", err)
	}
	// TLS is verified: an unknown CA fails, the right pool works.
	s := dokploytest.NewTLS(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	c, _ := dokploy.NewClient(dokploy.ClientConfig{BaseURL: s.APIURL(), APIKey: audit.NewSecret(key)})
	d, _ := dokploy.New(c, dokploy.Target{ComposeID: "cmp_1"})
	if _, err := d.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unverified TLS accepted: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	c, _ = dokploy.NewClient(dokploy.ClientConfig{BaseURL: s.APIURL(), APIKey: audit.NewSecret(key), RootCAs: pool})
	d, _ = dokploy.New(c, dokploy.Target{ComposeID: "cmp_1"})
	if _, err := d.Status(context.Background()); err != nil {
		t.Errorf("verified TLS: %v", err)
	}
	// Redirects are not followed (the key would go along).
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked = r.Header.Get("x-api-key") != "" }))
	defer other.Close()
	redir := httptest.NewServer(http.RedirectHandler(other.URL+"/api/compose.one", http.StatusFound))
	defer redir.Close()
	c, _ = dokploy.NewClient(dokploy.ClientConfig{BaseURL: redir.URL + "/api", APIKey: audit.NewSecret(key)})
	d, _ = dokploy.New(c, dokploy.Target{ComposeID: "cmp_1"})
	if _, err := d.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "redirect") || leaked {
		t.Errorf("redirect: err %v, key sent on: %v", err, leaked)
	}
}

type checker struct{ err error }

func (c checker) Check(context.Context, deploy.Health) error { return c.err }

func TestHealthFailureRollsApplicationBack(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddApplication("app_1", "backend")
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	ctx := context.Background()
	if _, err := d.Deploy(ctx, req(1), &deploytest.Progress{}); err != nil {
		t.Fatal(err)
	}
	d.Health = deploy.Health{URL: "https://api.example.com/api/health", Retries: 2, Interval: time.Millisecond}
	d.Checker = checker{err: errors.New("GET https://api.example.com/api/health: status 502, want 200")}
	r := req(2)
	r.Previous = req(1).Release
	res, err := d.Deploy(ctx, r, &deploytest.Progress{})
	if err == nil && !res.RolledBack {
		t.Fatalf("unhealthy deploy reported live: %+v", res)
	}
	// The rollback's own health check fails too here, so the error names both.
	if err == nil || !strings.Contains(err.Error(), "status 502") || len(s.CallsTo("rollback.rollback")) != 1 {
		t.Fatalf("err %v, rollback calls %d", err, len(s.CallsTo("rollback.rollback")))
	}
	d.Checker = &flipChecker{}
	res, err = d.Deploy(ctx, deploy.DeployRequest{JobID: 3, Release: "20261123-100000-3", Previous: req(1).Release}, &deploytest.Progress{})
	if err != nil || !res.RolledBack || res.Release != req(1).Release {
		t.Fatalf("health-gated rollback: %+v %v", res, err)
	}
}

// flipChecker fails the first check (the new release) and passes after (the rolled-back one).
type flipChecker struct{ n int }

func (f *flipChecker) Check(context.Context, deploy.Health) error {
	f.n++
	if f.n <= 2 {
		return errors.New("status 500")
	}
	return nil
}

func TestStopStartStatusLogsBackup(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.AddBackup("bkp_1", "postgres", "supermock")
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1", BackupID: "bkp_1"})
	ctx := context.Background()
	if _, err := d.Deploy(ctx, req(1), &deploytest.Progress{}); err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(ctx)
	if err != nil || !st.Healthy || st.Current != req(1).Release || !strings.Contains(st.Detail[0], "compose supermock: done, branch main") {
		t.Fatalf("status %+v %v", st, err)
	}
	if _, err := d.Stop(ctx, &deploytest.Progress{}); err != nil || s.Status("cmp_1") != "idle" {
		t.Fatalf("stop: %v, status %s", err, s.Status("cmp_1"))
	}
	if _, err := d.Start(ctx, &deploytest.Progress{}); err != nil || s.Status("cmp_1") != "done" {
		t.Fatalf("start: %v, status %s", err, s.Status("cmp_1"))
	}
	if c := s.CallsTo("compose.stop"); len(c) != 1 || c[0].Body["composeId"] != "cmp_1" {
		t.Errorf("stop calls %+v", c)
	}
	s.AddContainer("cmp_1", "c0ffee01", "supermock-x1y2z3-api-1", "2026-11-23T09:00:00Z listening on :3000")
	logs, err := d.Logs(ctx, 10)
	if err != nil || !strings.Contains(strings.Join(logs.Lines, "\n"), "supermock-x1y2z3-api-1 | 2026-11-23T09:00:00Z listening on :3000") {
		t.Errorf("logs %+v %v", logs, err)
	}
	s.BackupDelay = 30 * time.Millisecond
	res, err := d.Backup(ctx, deploy.BackupRequest{ID: "b1"}, &deploytest.Progress{})
	if err != nil || len(s.CallsTo("backup.manualBackupPostgres")) != 1 || res.Files[0].Kind != "dokploy" {
		t.Fatalf("backup %+v %v", res, err)
	}
	d.BackupTimeout = 5 * time.Millisecond
	if _, err := d.Backup(ctx, deploy.BackupRequest{ID: "b2"}, &deploytest.Progress{}); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("backup timeout: %v", err)
	}
	// Dokploy's backups live where shipbot cannot read them: the driver
	// only takes them, and says where they are.
	var drv deploy.Driver = d
	if _, ok := drv.(deploy.BackupVerifier); ok {
		t.Error("the Dokploy driver claims to verify backups")
	}
	if _, ok := drv.(deploy.Restorer); ok {
		t.Error("the Dokploy driver claims to restore backups")
	}
}
