package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// The weekly digest on the real binary: a cron spec fires, the figures of
// the week before today (seeded in the database beforehand: a deploy of a
// commit made 2h earlier, then one that failed its health check and was
// switched back) go to the configured chat through the outbox with the
// chart, which the terminal chat saves as a PNG; /stats answers the same.
func TestE2EDeliveryDigestFiresFromCron(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "shipbot.yaml")}
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 5s
chat:
  shell: {enabled: true, user: alice}
users:
  alice: {identities: ["shell:alice"], roles: [ops]}
roles:
  ops: {permissions: ["*"]}
insights:
  digest:
    schedule: "@every 1s"
    chats: ["shell:terminal"]
apps:
  files:
    project: acme/files
    envs:
      good:
        driver: local
        path: %[1]s/deploy/good
        fetch: {copy: %[1]s}
        health: {command: ["true"], retries: 1}
`, dir)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := e.cli("check", "--config", e.config); code != 0 {
		t.Fatalf("bot check: %d\n%s%s", code, out, errOut)
	}
	seedDelivery(t, e.database(), "files", "good", "acme/files")
	startDay := time.Now().UTC().Truncate(24 * time.Hour)

	p := e.startBot(nil)
	p.waitFor(`Weekly delivery digest`)
	p.waitFor(`files/good\s+│\s+deploys\s+2 \(0\)`)
	p.waitFor(`lead time med\s+2h \(–\)`)
	p.waitFor(`change failure\s+50% 1/2 \(–\)`)
	path := p.waitFor(`picture: (\S+\.png)\n`)[1]
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfgPNG, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfgPNG.Width != 1000 || cfgPNG.Height != 1000 || len(img) < 10_000 {
		t.Fatalf("chart %s: %d bytes, %+v, %v", path, len(img), cfgPNG, err)
	}
	if !strings.HasPrefix(path, filepath.Join(dir, "var", "pictures")) {
		t.Fatalf("chart saved at %s, not under the data dir", path)
	}
	// /stats answers the same figures.
	p.send("/stats files good 30d")
	p.waitFor(`Delivery: files/good, last 30 days`)
	p.waitFor(`deploys\s+2 \(0\)`)
	p.closeInput()
	p.mustExit0()
	// (Across midnight UTC the digest's week moves on, and a second one is right.)
	if n := strings.Count(p.out.String(), "Weekly delivery digest"); n != 1 && time.Now().UTC().Truncate(24*time.Hour).Equal(startDay) {
		t.Fatalf("the digest of one week was posted %d times:\n%s", n, p.out)
	}
}

// seedDelivery writes yesterday's deploys of app/env and the pipeline of
// the first one's commit into the database the bot will open.
func seedDelivery(t *testing.T, path, app, env, project string) {
	t.Helper()
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	yesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	sha := strings.Repeat("ab", 20)
	ev := pipeline.Event{Source: pipeline.Generic, Kind: pipeline.KindPipeline, Project: project, ID: "1", SHA: sha,
		Status: pipeline.StatusSuccess, Time: yesterday.Add(9 * time.Hour), CommitTime: yesterday.Add(8 * time.Hour)}
	raw, _ := json.Marshal(ev)
	if _, err := db.Ingest(ctx, "seed", ev.Key(), func(*notify.Tracked) (*notify.Tracked, []notify.Post, error) {
		return &notify.Tracked{Topic: ev.Key(), Project: ev.Project, SHA: sha, Status: ev.Status, Event: raw}, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	alice := deploy.Who{User: "alice", Identity: "shell:alice", Chat: "shell:terminal"}
	for _, j := range []*deploy.Job{
		{App: app, Env: env, Action: deploy.ActionDeploy, Ref: sha, Release: "r1", State: deploy.Succeeded,
			RequestedBy: alice, Ended: yesterday.Add(10 * time.Hour)},
		{App: app, Env: env, Action: deploy.ActionDeploy, Ref: "main", Release: "r2", State: deploy.RolledBack,
			RequestedBy: alice, Ended: yesterday.Add(11 * time.Hour),
			Steps: []deploy.Step{{Name: "health", State: deploy.StepFailed}}},
	} {
		if err := db.CreateJob(ctx, j, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// /stats in Telegram on the real binary: after a real deploy, the answer
// is the figures as a message and the chart as a photo replying to it.
func TestBinaryTelegramStatsSendsTheChartAsAPhoto(t *testing.T) {
	t.Parallel()
	e, fake := telegramEnv(t, "polling", "")
	p := e.startBot(nil)
	fake.Push(tgMessage(1, "/deploy demo staging"))
	waitTG(t, fake, "editMessageText", "succeeded")
	fake.Push(tgMessage(2, "/stats demo staging 30d"))
	waitTG(t, fake, "sendMessage", "Delivery: demo/staging, last 30 days")
	waitTG(t, fake, "sendMessage", "deploys         1 (0)")
	deadline := time.Now().Add(outputTimeout)
	for {
		if c := fake.Calls("sendPhoto"); len(c) == 1 && c[0].Status == 200 {
			cfg, err := png.DecodeConfig(bytes.NewReader(c[0].Files["photo"]))
			if err != nil || cfg.Width != 1000 || c[0].Fields["caption"] != "Delivery: demo/staging, last 30 days" {
				t.Fatalf("photo %+v %v %v", cfg, err, c[0].Fields)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no photo: %+v", fake.Calls("sendPhoto"))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(exitTimeout); st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), p.errOut)
	}
}

// GET /api/v1/stats on the real binary: the seeded figures as JSON for a
// token whose user may see the env; bad input 400, no token 401, an
// unknown app refused like /stats.
func TestBinaryAPIStats(t *testing.T) {
	t.Parallel()
	e, _, addr := apiEnv(t, true)
	seedDelivery(t, e.database(), "demo", "staging", "acme/web")
	p := e.startAPIBot()
	code, body := call(t, addr, "GET", "/api/v1/stats?app=demo&env=staging&window=7d", viewerToken, "", "")
	if code != 200 {
		t.Fatalf("stats: %d %v", code, body)
	}
	raw, _ := json.Marshal(body)
	for _, want := range []string{`"days":7`, `"app":"demo"`, `"env":"staging"`, `"deploys":2`, `"successful":1`,
		`"lead_time":{"median_seconds":7200,"n":1,"p90_seconds":7200,"unknown":0}`, `"change_failure_rate":0.5`,
		`"time_to_restore":{"median_seconds":0,"n":0,"p90_seconds":0,"unknown":1}`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("no %s in %s", want, raw)
		}
	}
	for path, want := range map[string]int{
		"/api/v1/stats?app=demo&window=14d":     400,
		"/api/v1/stats?env=staging":             400,
		"/api/v1/stats?app=nope":                400,
		"/api/v1/stats?app=demo&env=Stag%20ing": 400,
	} {
		if code, body := call(t, addr, "GET", path, viewerToken, "", ""); code != want {
			t.Errorf("%s: %d %v, want %d", path, code, body, want)
		}
	}
	if code, _ := call(t, addr, "GET", "/api/v1/stats", "", "", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	stopBot(t, p)
}
