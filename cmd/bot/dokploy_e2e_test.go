package main

// Issue 8 end to end: the real binary drives a fake Dokploy (in this test
// process, speaking Dokploy's API) through the shell chat.

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
	p.send("/deploy backend staging v1")
	first := p.waitFor(cardRelease(1))[1]
	p.waitFor(cardState(1, "succeeded"))

	a.fake.NextDeploy(dokploytest.Outcome{RunningPolls: 2, Status: "error", ErrorMessage: "prisma migrate deploy: P3009 failed migrations"})
	p.send("/deploy backend staging v2")
	p.waitFor(cardState(2, "failed"))
	p.mustContain(`P3009 failed migrations`)

	p.send("/deploy backend staging v3")
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
	if a.fake.Branch("cmp_1") != "v1.0.0" || len(a.fake.CallsTo("compose.redeploy")) != 1 {
		t.Fatalf("compose rollback: branch %q, redeploys %d", a.fake.Branch("cmp_1"), len(a.fake.CallsTo("compose.redeploy")))
	}

	p.send("/stop backend staging")
	p.waitFor(cardState(8, "succeeded"))
	p.send("/start backend staging")
	p.waitFor(cardState(9, "succeeded"))
	p.send("/logs backend staging 20")
	p.waitFor(`not exposed by Dokploy's HTTP API`)
	p.send("/deploy backend staging --redeploy")
	p.waitFor(`Redeploy backend → staging \(job #10\)`)
	p.waitFor(cardState(10, "succeeded"))
	p.send("/backup backend staging")
	p.waitFor(cardState(11, "succeeded"))
	bid := p.mustContain(`backup (\S+): 1 files`)[1]
	p.send("/restore backend staging " + bid)
	p.waitFor(`kept by Dokploy in its own destination; check and restore it from Dokploy's UI`)
	p.closeInput()
	p.mustExit0()
	if len(a.fake.CallsTo("application.stop")) != 1 || len(a.fake.CallsTo("application.start")) != 1 ||
		len(a.fake.CallsTo("backup.manualBackupPostgres")) != 1 || len(a.fake.CallsTo("application.redeploy")) != 1 {
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
	p.send("/deploy backend staging v7")
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
	p.waitFor(`Dokploy refused the API key \(401 on deployment\.all\): check the env's dokploy\.api_key`)
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
