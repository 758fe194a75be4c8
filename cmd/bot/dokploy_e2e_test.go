package main

// Issues 8 and 14 end to end: the real binary drives a fake Dokploy (in
// this test process, speaking Dokploy's API as its source does) through the
// shell chat.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy/dokploy/dokploytest"
)

const dokployKey = "dkp_e2e_SECRET_key_4242"

type dokployApp struct {
	*testEnv
	fake    *dokploytest.Server
	healthy atomic.Bool
}

func newDokployApp(t *testing.T, key string) *dokployApp {
	t.Helper()
	dir := t.TempDir()
	a := &dokployApp{testEnv: &testEnv{t: t, dir: dir, config: filepath.Join(dir, "shipbot.yaml"),
		env: []string{"DOKPLOY_API_KEY=" + key}}, fake: dokploytest.New(t, dokployKey)}
	a.fake.AddApplication("app_1", "backend")
	a.fake.AddCompose("cmp_1", "frontend", "github", "main")
	a.fake.AddBackup("bkp_1", "postgres", "supermock")
	a.fake.AddComposeBackup("bkp_2", "cmp_1", "db", "postgres", "supermock")
	a.fake.SetAppLogs("app_1", "2026-11-23T09:00:00.000Z prisma: 3 migrations applied", "2026-11-23T09:00:01.000Z listening on :3000")
	a.healthy.Store(true)
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.healthy.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(health.Close)
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 3s
chat:
  shell: {enabled: true, user: alice}
users:
  alice: {identities: ["shell:alice"], roles: [ops]}
  bob: {identities: ["shell:bob"], roles: [ops]}
roles:
  ops: {permissions: ["*"]}
apps:
  backend:
    envs:
      staging:
        driver: dokploy
        dokploy:
          base_url: %[2]s
          api_key: ${DOKPLOY_API_KEY}
          application_id: app_1
          backup_id: bkp_1
          poll_interval: 10ms
          poll_deadline: 1m
        health: {url: "%[3]s/api/health", retries: 2, interval: 10ms}
  frontend:
    envs:
      staging:
        driver: dokploy
        dokploy:
          base_url: %[2]s
          api_key: ${DOKPLOY_API_KEY}
          compose_id: cmp_1
          set_branch: true
          backup_id: bkp_2
          poll_interval: 10ms
          poll_deadline: 1m
`, dir, a.fake.APIURL(), health.URL)
	if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *dokployApp) noKeyLeak(p *botProc) {
	a.t.Helper()
	logFile, err := os.ReadFile(filepath.Join(a.dir, "var", "shipbot.log"))
	if err != nil || len(logFile) == 0 {
		a.t.Fatalf("the bot's log file: %v", err)
	}
	all := p.out.String() + p.errOut.String() + string(logFile)
	for _, e := range a.auditExport() {
		all += fmt.Sprintf("%+v", e)
	}
	if strings.Contains(all, dokployKey) {
		a.t.Fatal("the Dokploy API key appears in the bot's output, log or audit")
	}
}

func TestE2EDokployDeployErrorRollbackStopStart(t *testing.T) {
	t.Parallel()
	a := newDokployApp(t, dokployKey)
	if code, out, errOut := a.cli("check", "--config", a.config); code != 0 || !strings.Contains(out, "config OK") {
		t.Fatalf("bot check: exit %d\n%s%s", code, out, errOut)
	}
	p := a.startBot(nil, a.env...)
	p.send("/deploy backend staging")
	first := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardState(1, "succeeded"))
	// Dokploy rewrote the row's title to the commit message when the build
	// ended; the card still reports the deploy, with the commit it built.
	p.mustContain(`commit ` + dokploytest.CommitOf("main")[:10])

	a.fake.NextDeploy(dokploytest.Outcome{RunningPolls: 2, Status: "error", ErrorMessage: "prisma migrate deploy: P3009 failed migrations"})
	p.send("/deploy backend staging")
	p.waitFor(cardState(2, "failed"))
	// Dokploy leaves errorMessage empty: the reason is the build log's tail.
	p.mustContain(`build log ends: .*P3009 failed migrations`)

	p.send("/deploy backend staging main")
	third := p.waitFor(cardRelease(3))[1]
	p.waitFor(cardState(3, "succeeded"))

	p.send("/rollback backend staging")
	p.waitFor(cardState(4, "succeeded"))
	p.mustContain(`rolled back to ` + first)
	if calls := a.fake.CallsTo("rollback.rollback"); len(calls) != 1 || calls[0].Body["rollbackId"] != "rbk_0001" {
		t.Fatalf("rollback calls %+v", calls)
	}
	p.send("/status backend staging")
	p.waitFor(`current: ` + first)

	// A compose has no Dokploy rollback: shipbot redeploys the recorded ref.
	p.send("/deploy frontend staging v1.0.0")
	p.waitFor(cardState(5, "succeeded"))
	p.send("/deploy frontend staging v1.1.0")
	p.waitFor(cardState(6, "succeeded"))
	p.send("/rollback frontend staging")
	p.waitFor(cardState(7, "succeeded"))
	p.mustContain(`now tracks v1\.0\.0, not v1\.1\.0`)
	// compose.update of the github source's "branch", then compose.deploy:
	// compose.redeploy never clones.
	if a.fake.Branch("cmp_1") != "v1.0.0" || len(a.fake.CallsTo("compose.redeploy")) != 0 || len(a.fake.CallsTo("compose.deploy")) != 3 {
		t.Fatalf("compose rollback: branch %q, calls %+v", a.fake.Branch("cmp_1"), a.fake.Calls())
	}

	p.send("/stop backend staging")
	p.waitFor(cardState(8, "succeeded"))
	p.send("/start backend staging")
	p.waitFor(cardState(9, "succeeded"))
	p.send("/logs backend staging 20")
	p.waitFor(`listening on :3000`)
	p.send("/logs backend staging 20 --build")
	p.waitFor(`Build log of backend/staging`)
	p.waitFor(`Initializing deployment`)
	p.send("/deploy backend staging --redeploy")
	p.waitFor(`Redeploy backend → staging \(job #10\)`)
	p.waitFor(cardState(10, "succeeded"))
	p.send("/backup backend staging")
	p.waitFor(cardState(11, "succeeded"))
	bid := p.mustContain(`backup (\S+): 1 files`)[1]
	p.send("/restore backend staging " + bid)
	p.waitFor(`kept by Dokploy in its own destination; check and restore it from Dokploy's UI`)
	// A backup of the Postgres inside the compose stack: backupType compose.
	p.send("/backup frontend staging")
	p.waitFor(cardState(12, "succeeded"))
	p.closeInput()
	p.mustExit0()
	if len(a.fake.CallsTo("application.stop")) != 1 || len(a.fake.CallsTo("application.start")) != 1 ||
		len(a.fake.CallsTo("backup.manualBackupPostgres")) != 1 || len(a.fake.CallsTo("application.redeploy")) != 1 ||
		len(a.fake.CallsTo("backup.manualBackupCompose")) != 1 {
		t.Fatalf("calls %+v", a.fake.Calls())
	}
	if third == first {
		t.Fatal("two deploys made one release")
	}
	a.noKeyLeak(p)
	a.mustVerify()
}

// kill -9 while shipbot polls a running Dokploy deployment: the next start
// follows the same deployment to its end; nothing is deployed twice.
func TestE2EDokployRestartDuringPollingResumes(t *testing.T) {
	t.Parallel()
	a := newDokployApp(t, dokployKey)
	a.fake.NextDeploy(dokploytest.Outcome{RunningPolls: 40})
	p := a.startBot(nil, append(a.env, crashEnv+"=build")...)
	p.send("/deploy backend staging")
	st := p.wait(exitTimeout)
	if ws, ok := st.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("the bot was not killed at the build step: %v", st)
	}
	p2 := a.startBot(nil, a.env...)
	p2.waitFor(cardState(1, "succeeded"))
	p2.closeInput()
	p2.mustExit0()
	if n := len(a.fake.CallsTo("application.deploy")); n != 1 {
		t.Fatalf("%d deploy calls; the restart must follow the first deploy, not start another", n)
	}
	evs := a.auditExport()
	if outs := outcomesOf(evs, jobIntent(t, evs, 1).Seq); len(outs) != 1 || !strings.HasPrefix(outs[0].Outcome, "succeeded") {
		t.Fatalf("job 1 outcomes %+v", outs)
	}
	a.mustVerify()
}

func TestE2EDokployBadKey(t *testing.T) {
	t.Parallel()
	a := newDokployApp(t, "not-the-key")
	p := a.startBot(nil, a.env...)
	p.send("/deploy backend staging v1")
	p.waitFor(`Dokploy refused the API key \(401 on deployment\.all\): it is wrong, expired, revoked or over its rate limit; check the env's dokploy\.api_key`)
	p.send("/status backend staging")
	p.waitFor(`refused the API key`)
	p.closeInput()
	p.mustExit0()
	if n := len(a.fake.CallsTo("application.deploy")); n != 0 {
		t.Fatalf("deploy called %d times with a refused key", n)
	}
	if strings.Contains(p.out.String()+p.errOut.String(), "not-the-key") {
		t.Fatal("the (wrong) key was printed")
	}
	// An auditor needs no API key to verify the log.
	a.env = nil
	if code, out, errOut := a.cli("audit", "verify", "--config", a.config); code != 0 || !strings.Contains(out, "chain intact") {
		t.Fatalf("audit verify without DOKPLOY_API_KEY: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := a.cli("check", "--config", a.config); code == 0 || !strings.Contains(errOut, "DOKPLOY_API_KEY") {
		t.Fatalf("check without DOKPLOY_API_KEY passed or did not name it: %d %s", code, errOut)
	}
}

// Issue 14: a deploy waiting in Dokploy's queue shows what it waits for
// and /cancel drops it from the queue; refs Dokploy cannot build are
// refused; a key without access to the service is a permission problem,
// not a bad key.
func TestE2EDokployQueuedCancelRefsPermission(t *testing.T) {
	t.Parallel()
	a := newDokployApp(t, dokployKey)
	a.fake.AddCompose("cmp_9", "landing", "github", "main")
	a.fake.Queue("cmp_9", "push to main", dokploytest.Outcome{Never: true}) // holds the server's one build slot
	p := a.startBot(nil, a.env...)
	p.send("/deploy frontend staging")
	p.waitFor(cardLine(1, `.*queued behind 1 build`))
	p.send("/cancel 1")
	p.waitFor(cardState(1, "cancelled"))
	if c := a.fake.CallsTo("compose.cleanQueues"); len(c) != 1 || c[0].Body["composeId"] != "cmp_1" || a.fake.Waiting() != 0 {
		t.Fatalf("cleanQueues calls %+v, still waiting %d", c, a.fake.Waiting())
	}
	p.mustContain(`dropped the queued deploy from Dokploy's queue`)

	p.send("/deploy frontend staging 3f2a9c1d7e")
	p.waitFor(`looks like a commit id, and Dokploy deploys a branch or tag only`)
	p.send("/deploy backend staging v9")
	p.waitFor(cardState(2, "failed"))
	p.mustContain(`set dokploy\.set_branch`)
	if n := len(a.fake.CallsTo("application.deploy")) + len(a.fake.CallsTo("compose.update")); n != 0 {
		t.Fatalf("%d calls for refused refs", n)
	}

	a.fake.Deny("app_1")
	p.send("/status backend staging")
	p.waitFor(`Dokploy accepted the API key but its user may not call application\.one: You don't have access to this service`)
	p.closeInput()
	p.mustExit0()
	if strings.Contains(p.out.String(), "refused the API key") {
		t.Fatal("a permission problem was reported as a bad key")
	}
	a.noKeyLeak(p)
	a.mustVerify()
}

// Issue 14: kill -9 right after the deploy was queued behind another
// build: the next start follows the same queued job to its end by its
// pinned snapshot; nothing is deployed twice.
func TestE2EDokployRestartWhileQueued(t *testing.T) {
	t.Parallel()
	a := newDokployApp(t, dokployKey)
	a.fake.AddCompose("cmp_9", "landing", "github", "main")
	a.fake.Queue("cmp_9", "push to main", dokploytest.Outcome{RunningPolls: 30})
	p := a.startBot(nil, append(a.env, crashEnv+"=queue")...)
	p.send("/deploy frontend staging")
	st := p.wait(exitTimeout)
	if ws, ok := st.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("the bot was not killed once the deploy was queued: %v", st)
	}
	if a.fake.Waiting() != 1 {
		t.Fatalf("%d jobs waiting in Dokploy's queue, want shipbot's", a.fake.Waiting())
	}
	p2 := a.startBot(nil, a.env...)
	p2.waitFor(cardState(1, "succeeded"))
	p2.mustContain(`dokploy: queued behind 1 build`)
	p2.mustContain(`commit ` + dokploytest.CommitOf("main")[:10])
	p2.closeInput()
	p2.mustExit0()
	if n := len(a.fake.CallsTo("compose.deploy")); n != 1 {
		t.Fatalf("%d deploy calls; the restart must follow the queued deploy, not start another", n)
	}
	a.mustVerify()
}
