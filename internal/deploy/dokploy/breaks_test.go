package dokploy_test

// Issue 14: one test (or more) per break found reading Dokploy's source.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/deploy/dokploy"
	"github.com/shipbot/shipbot/internal/deploy/dokploy/dokploytest"
)

// waitText polls p until it contains s.
func waitText(t *testing.T, p *deploytest.Progress, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Text(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("progress never showed %q:\n%s", s, p.Text())
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// B1: Dokploy rewrites the title to the commit message when a git build
// ends; the deploy is still reported by its pinned id, with its commit.
func TestTitleRewriteAtEndTrackedByPinnedID(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "gitlab", "main")
	s.NextDeploy(dokploytest.Outcome{RunningPolls: 2})
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	p := &deploytest.Progress{}
	res, err := d.Deploy(context.Background(), req(1), p)
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, p.Text())
	}
	sha := dokploytest.CommitOf("main")
	if !strings.Contains(res.Message, "commit "+sha[:10]) || !strings.Contains(res.Message, "from main") {
		t.Errorf("message %q lacks the commit Dokploy built", res.Message)
	}
	pins, _ := d.Pins.Pins(context.Background())
	if len(pins) != 1 || pins[0].DeploymentID != "dpl_0001Xy" || pins[0].SHA != sha || pins[0].Ref != "main" {
		t.Fatalf("pins %+v", pins)
	}
	rels, err := d.Releases(context.Background())
	if err != nil || len(rels) != 1 || rels[0].ID != req(1).Release || !rels[0].Current {
		t.Fatalf("releases %+v %v (the row's title is now the commit message)", rels, err)
	}
}

// B1: a build that ended while shipbot was not looking (after a restart)
// is found as the new row not listed before the POST.
func TestEndedWhileAwayFoundBySnapshot(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	ctx := context.Background()
	if _, err := d.Deploy(ctx, req(1), &deploytest.Progress{}); err != nil {
		t.Fatal(err)
	}
	// shipbot records its pin, posts, then dies; Dokploy builds meanwhile.
	pin := dokploy.Pin{Release: req(2).Release, Posted: time.Now(), Before: []string{"dpl_0001Xy"}, Ref: "main"}
	_ = d.Pins.PutPin(ctx, pin)
	s.Queue("cmp_1", "shipbot "+req(2).Release, dokploytest.Outcome{RunningPolls: 1})
	s.Advance(3)
	res, err := d.Resume(ctx, req(2), &deploytest.Progress{})
	if err != nil || res.Release != req(2).Release || !strings.Contains(res.Message, "dpl_0002Xy") {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if n := len(s.CallsTo("compose.deploy")); n != 1 {
		t.Fatalf("%d deploys", n)
	}
}

// B1: before v0.25.0 Dokploy drops the title; every row is "Manual deployment".
func TestDokployWithoutTitles(t *testing.T) {
	s := dokploytest.New(t, key)
	s.SetVersion("v0.24.2")
	s.AddApplication("app_1", "backend")
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	ctx := context.Background()
	for _, j := range []int64{1, 2} {
		if _, err := d.Deploy(ctx, req(j), &deploytest.Progress{}); err != nil {
			t.Fatalf("deploy %d: %v", j, err)
		}
	}
	rels, err := d.Releases(ctx)
	if err != nil || len(rels) != 2 || rels[0].ID != req(2).Release || rels[1].ID != req(1).Release {
		t.Fatalf("releases %+v %v", rels, err)
	}
	if _, err := d.Rollback(ctx, deploy.RollbackRequest{To: req(1).Release}, &deploytest.Progress{}); err != nil {
		t.Fatalf("rollback by pinned id: %v", err)
	}
	if c := s.CallsTo("rollback.rollback"); len(c) != 1 || c[0].Body["rollbackId"] != "rbk_0001" {
		t.Fatalf("rollback calls %+v", c)
	}
}

// B2: a deploy queued behind another service's build on the same server
// waits as long as queueList lists it, however short queue_grace is.
func TestQueuedBehindOtherBuilds(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.AddCompose("cmp_2", "landing", "github", "main")
	s.Queue("cmp_2", "push to main", dokploytest.Outcome{RunningPolls: 15})
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	d.Grace = time.Nanosecond
	p := &deploytest.Progress{}
	if _, err := d.Deploy(context.Background(), req(1), p); err != nil {
		t.Fatalf("deploy: %v\n%s", err, p.Text())
	}
	if !strings.Contains(p.Text(), "step queue running queued behind 1 build") {
		t.Errorf("progress:\n%s", p.Text())
	}
}

// B2: without queueList (before v0.28.3) only queue_grace bounds the wait.
func TestNoQueueListWaitsGrace(t *testing.T) {
	for _, tc := range []struct {
		grace time.Duration
		ok    bool
	}{{time.Nanosecond, false}, {5 * time.Second, true}} {
		s := dokploytest.New(t, key)
		s.SetVersion("v0.28.0")
		s.AddCompose("cmp_1", "supermock", "github", "main")
		s.AddCompose("cmp_2", "landing", "github", "main")
		s.Queue("cmp_2", "push to main", dokploytest.Outcome{RunningPolls: 10})
		d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
		d.Grace = tc.grace
		_, err := d.Deploy(context.Background(), req(1), &deploytest.Progress{})
		if tc.ok != (err == nil) || (!tc.ok && !strings.Contains(err.Error(), "its queue does not list it")) {
			t.Fatalf("grace %s: %v", tc.grace, err)
		}
		if n := len(s.CallsTo("deployment.queueList")); n != 1 {
			t.Errorf("queueList asked %d times; its 404 should be remembered", n)
		}
	}
}

// B3: Dokploy clones a branch or tag; a commit id is refused before anything runs.
func TestRefsOnDokploy(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	ctx := context.Background()
	r := req(1)
	r.Ref = "3f2a9c1d7e"
	var refusal *deploy.Refusal
	if _, err := d.Deploy(ctx, r, &deploytest.Progress{}); !errors.As(err, &refusal) || !strings.Contains(err.Error(), "branch or tag") {
		t.Fatalf("sha: %v", err)
	}
	if _, err := d.Plan(ctx, r); err == nil {
		t.Error("plan accepted a sha")
	}
	r.Ref = "v2.0.0"
	if _, err := d.Deploy(ctx, r, &deploytest.Progress{}); !errors.As(err, &refusal) || !strings.Contains(err.Error(), "set dokploy.set_branch") {
		t.Fatalf("ref without set_branch: %v", err)
	}
	if n := len(s.CallsTo("compose.deploy")) + len(s.CallsTo("compose.update")); n != 0 {
		t.Fatalf("%d calls for refused deploys", n)
	}
	r.Redeploy = true
	d.Pins = &dokploy.MemPins{}
	d2 := driver(t, s, dokploy.Target{ComposeID: "cmp_1", SetBranch: true})
	if _, err := d2.Deploy(ctx, r, &deploytest.Progress{}); err == nil || !strings.Contains(err.Error(), "--redeploy rebuilds") {
		t.Fatalf("redeploy with a ref: %v", err)
	}
	r.Redeploy = false
	if _, err := d2.Deploy(ctx, r, &deploytest.Progress{}); err != nil || s.Branch("cmp_1") != "v2.0.0" {
		t.Fatalf("set_branch deploy: %v, branch %q", err, s.Branch("cmp_1"))
	}
}

// B3: the branch field depends on the source type; the wrong one is
// dropped silently by compose.update, so the driver also checks it took.
func TestBranchFieldPerSource(t *testing.T) {
	for src, field := range map[string]string{"github": "branch", "gitlab": "gitlabBranch", "bitbucket": "bitbucketBranch",
		"gitea": "giteaBranch", "git": "customGitBranch"} {
		s := dokploytest.New(t, key)
		s.AddCompose("cmp_1", "supermock", src, "main")
		d := driver(t, s, dokploy.Target{ComposeID: "cmp_1", SetBranch: true})
		ctx := context.Background()
		r1 := req(1)
		r1.Ref = "v1.0.0"
		if _, err := d.Deploy(ctx, r1, &deploytest.Progress{}); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if _, err := d.Deploy(ctx, req(2), &deploytest.Progress{}); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		p := &deploytest.Progress{}
		if _, err := d.Rollback(ctx, deploy.RollbackRequest{JobID: 3, To: req(1).Release}, p); err != nil {
			t.Fatalf("%s rollback: %v\n%s", src, err, p.Text())
		}
		ups := s.CallsTo("compose.update")
		if last := ups[len(ups)-1].Body; last[field] != "v1.0.0" || len(last) != 2 || s.Branch("cmp_1") != "v1.0.0" {
			t.Errorf("%s: update %+v, branch %q", src, last, s.Branch("cmp_1"))
		}
	}
	// An application's branch is set the same way (application.update).
	sa := dokploytest.New(t, key)
	sa.AddApplication("app_1", "backend")
	da := driver(t, sa, dokploy.Target{ApplicationID: "app_1", SetBranch: true})
	ra := req(1)
	ra.Ref = "release-2026.11"
	if _, err := da.Deploy(context.Background(), ra, &deploytest.Progress{}); err != nil || sa.Branch("app_1") != "release-2026.11" ||
		len(sa.CallsTo("application.update")) != 1 {
		t.Fatalf("application set_branch: %v, branch %q", err, sa.Branch("app_1"))
	}
	// A field the server strips is noticed, not reported as done.
	s0 := dokploytest.New(t, key)
	s0.AddCompose("cmp_1", "supermock", "gitea", "main")
	s0.DropField("giteaBranch")
	d0 := driver(t, s0, dokploy.Target{ComposeID: "cmp_1", SetBranch: true})
	r := req(1)
	r.Ref = "v1.0.0"
	if _, err := d0.Deploy(context.Background(), r, &deploytest.Progress{}); err == nil ||
		!strings.Contains(err.Error(), `its giteaBranch is still "main"`) || len(s0.CallsTo("compose.deploy")) != 0 {
		t.Fatalf("stripped field: %v", err)
	}
	// Rolling back to a release built from the branch the compose still
	// tracks would build that branch's current head: refused.
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1", SetBranch: true})
	_, _ = d.Deploy(context.Background(), req(1), &deploytest.Progress{})
	_, _ = d.Deploy(context.Background(), req(2), &deploytest.Progress{})
	if _, err := d.Rollback(context.Background(), deploy.RollbackRequest{To: req(1).Release}, &deploytest.Progress{}); err == nil ||
		!strings.Contains(err.Error(), "current head, not the old code") {
		t.Fatalf("rollback to a branch head: %v", err)
	}
}

// B4: backupType compose runs manualBackupCompose whatever the engine;
// libsql has its own procedure (since v0.29.0).
func TestBackupTypes(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.AddComposeBackup("bkp_c", "cmp_1", "db", "postgres", "supermock")
	s.AddBackup("bkp_l", "libsql", "edge")
	ctx := context.Background()
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1", BackupID: "bkp_c"})
	p := &deploytest.Progress{}
	if _, err := d.Backup(ctx, deploy.BackupRequest{ID: "b1"}, p); err != nil || len(s.CallsTo("backup.manualBackupCompose")) != 1 ||
		len(s.CallsTo("backup.manualBackupPostgres")) != 0 || !strings.Contains(p.Text(), "in compose service db") {
		t.Fatalf("compose backup: %v\n%s", err, p.Text())
	}
	d = driver(t, s, dokploy.Target{ComposeID: "cmp_1", BackupID: "bkp_l"})
	if _, err := d.Backup(ctx, deploy.BackupRequest{ID: "b2"}, &deploytest.Progress{}); err != nil || len(s.CallsTo("backup.manualBackupLibsql")) != 1 {
		t.Fatalf("libsql backup: %v", err)
	}
	s.SetVersion("v0.28.8")
	if _, err := d.Backup(ctx, deploy.BackupRequest{ID: "b3"}, &deploytest.Progress{}); err == nil ||
		err.Error() != "this Dokploy has no backup.manualBackupLibsql (needs v0.29.0 or newer)" {
		t.Fatalf("libsql on v0.28.8: %v", err)
	}
}

// B5: the two kinds of 401, zod paths, and 404 for what this Dokploy lacks.
func TestErrorKinds(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	ctx := context.Background()
	bad, _ := dokploy.New(client(t, s, "expired-key"), dokploy.Target{ComposeID: "cmp_1"})
	_, err := bad.Status(ctx)
	var api *dokploy.APIError
	if !errors.As(err, &api) || !api.BadKey() || !strings.Contains(err.Error(), "refused the API key") {
		t.Fatalf("bad key: %v", err)
	}
	s.Deny("cmp_1")
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	_, err = d.Deploy(ctx, req(1), &deploytest.Progress{})
	if !errors.As(err, &api) || api.BadKey() || strings.Contains(err.Error(), "refused the API key") ||
		!strings.Contains(err.Error(), "may not call compose.one: You don't have access to this service") {
		t.Fatalf("denied service: %v", err)
	}
	c := client(t, s, key)
	err = c.Get(ctx, "deployment.readLogs", map[string][]string{"deploymentId": {"x"}, "tail": {"0"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "(tail: Number must be between 1 and 10000)") {
		t.Fatalf("zod path: %v", err)
	}
	// A wrong method is 404, like an unknown procedure: never 405.
	err = c.Post(ctx, "compose.one", map[string]string{"composeId": "cmp_1"}, nil)
	if !errors.As(err, &api) || api.Status != http.StatusNotFound || !strings.Contains(err.Error(), "this Dokploy has no compose.one") {
		t.Fatalf("wrong method: %v", err)
	}
	s.SetVersion("v0.28.0")
	err = c.Get(ctx, "application.readLogs", nil, nil)
	if err == nil || err.Error() != "this Dokploy has no application.readLogs (needs v0.29.0 or newer)" {
		t.Fatalf("old Dokploy: %v", err)
	}
}

// 6: a failed build's reason is the tail of its build log (errorMessage is null).
func TestFailedBuildReasonFromLog(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.NextDeploy(dokploytest.Outcome{RunningPolls: 1, Status: "error", ErrorMessage: "npm ERR! missing script: build"})
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	_, err := d.Deploy(context.Background(), req(1), &deploytest.Progress{})
	if err == nil || !strings.Contains(err.Error(), "build log ends: ") || !strings.Contains(err.Error(), "npm ERR! missing script: build") ||
		strings.Contains(err.Error(), "Error occurred") {
		t.Fatalf("err = %v", err)
	}
	if c := s.CallsTo("deployment.readLogs"); len(c) != 1 || c[0].Query.Get("deploymentId") != "dpl_0001Xy" {
		t.Fatalf("readLogs calls %+v", c)
	}
}

// 7: /logs reads container logs over HTTP, tail and since bounded;
// --build reads the last deployment's build log.
func TestLogsOverHTTP(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddApplication("app_1", "backend")
	var lines []string
	for i := 0; i < 30; i++ {
		lines = append(lines, "2026-11-23T09:00:00Z GET /api/health 200")
	}
	s.SetAppLogs("app_1", lines...)
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	d.LogSince = 2 * time.Hour
	ctx := context.Background()
	l, err := d.Logs(ctx, 20)
	if err != nil || len(l.Lines) != 20 {
		t.Fatalf("logs %+v %v", l, err)
	}
	q := s.CallsTo("application.readLogs")[0].Query
	if q.Get("tail") != "20" || q.Get("since") != "7200s" {
		t.Errorf("readLogs query %v", q)
	}
	d.LogMaxBytes = 100
	if l, _ := d.Logs(ctx, 20); len(l.Lines) != 2 || !l.Truncated {
		t.Errorf("byte cap: %+v", l)
	}
	d.LogMaxBytes = 0
	if _, err := d.Deploy(ctx, req(1), &deploytest.Progress{}); err != nil {
		t.Fatal(err)
	}
	bl, err := d.BuildLogs(ctx, 50)
	if err != nil || !strings.HasPrefix(bl.Lines[0], "deployment dpl_0001Xy (done") || !strings.Contains(strings.Join(bl.Lines, "\n"), "Initializing deployment") {
		t.Fatalf("build logs %+v %v", bl, err)
	}
	// Before v0.29.0 there are no container logs over HTTP: say so.
	s.SetVersion("v0.28.8")
	l, err = d.Logs(ctx, 20)
	if err != nil || !strings.Contains(strings.Join(l.Lines, "\n"), "needs v0.29.0 or newer") {
		t.Fatalf("old Dokploy logs %+v %v", l, err)
	}
}

// 9: cancelling a deploy still in Dokploy's queue drops it (cleanQueues);
// a running build is left alone, and said so.
func TestCancelQueuedAndRunning(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddCompose("cmp_1", "supermock", "github", "main")
	s.AddCompose("cmp_2", "landing", "github", "main")
	s.Queue("cmp_2", "push to main", dokploytest.Outcome{Never: true})
	d := driver(t, s, dokploy.Target{ComposeID: "cmp_1"})
	ctx, cancel := context.WithCancel(context.Background())
	p := &deploytest.Progress{}
	done := make(chan error, 1)
	go func() { _, err := d.Deploy(ctx, req(1), p); done <- err }()
	waitText(t, p, "queued behind 1 build")
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "dropped the deploy") || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel queued: %v", err)
	}
	if c := s.CallsTo("compose.cleanQueues"); len(c) != 1 || c[0].Body["composeId"] != "cmp_1" || s.Waiting() != 0 {
		t.Fatalf("cleanQueues %+v, waiting %d", c, s.Waiting())
	}

	s2 := dokploytest.New(t, key)
	s2.AddApplication("app_1", "backend")
	s2.NextDeploy(dokploytest.Outcome{Never: true})
	d2 := driver(t, s2, dokploy.Target{ApplicationID: "app_1"})
	ctx, cancel = context.WithCancel(context.Background())
	p = &deploytest.Progress{}
	go func() { _, err := d2.Deploy(ctx, req(1), p); done <- err }()
	waitText(t, p, "dpl_0001Xy running")
	cancel()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "cannot cancel a running build cleanly") {
		t.Fatalf("cancel running: %v", err)
	}
	if n := len(s2.CallsTo("application.cleanQueues")) + len(s2.CallsTo("application.killBuild")); n != 0 {
		t.Fatalf("%d cancel calls for a running build", n)
	}
}

// Dokploy keeps about 10 deployments per service: an older release is gone.
func TestOnlyTenKept(t *testing.T) {
	s := dokploytest.New(t, key)
	s.AddApplication("app_1", "backend")
	d := driver(t, s, dokploy.Target{ApplicationID: "app_1"})
	ctx := context.Background()
	for j := int64(1); j <= 12; j++ {
		if _, err := d.Deploy(ctx, req(j), &deploytest.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	rels, _ := d.Releases(ctx)
	if len(rels) != 11 || rels[len(rels)-1].ID != req(2).Release {
		t.Fatalf("%d releases, oldest %v", len(rels), rels[len(rels)-1])
	}
	if _, err := d.Rollback(ctx, deploy.RollbackRequest{To: req(1).Release}, &deploytest.Progress{}); err == nil ||
		!strings.Contains(err.Error(), "no longer lists deployment dpl_0001Xy") {
		t.Fatalf("rollback to a pruned release: %v", err)
	}
}
