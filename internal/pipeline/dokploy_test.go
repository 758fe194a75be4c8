package pipeline

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// Issue 14, break 8: only Dokploy's build notices are deployments; backup
// notices are backups; the rest are acknowledged and counted, never 400.
// Samples follow the payloads in Dokploy/dokploy
// packages/server/src/utils/notifications/*.ts (cited in dokploy.go).
func TestDokployNoticeKinds(t *testing.T) {
	evs, err := Parse(Dokploy, http.Header{}, sample(t, "dokploy_build_success.json"))
	if err != nil || len(evs) != 1 || evs[0].Kind != KindDeployment || evs[0].Status != StatusSuccess || evs[0].Project != "supermock/frontend" {
		t.Fatalf("build success: %+v %v", evs, err)
	}
	evs, err = Parse(Dokploy, http.Header{}, sample(t, "dokploy_database_backup_error.json"))
	if err != nil || len(evs) != 1 || evs[0].Kind != KindBackup || evs[0].Status != StatusFailed ||
		evs[0].Project != "supermock/postgres-db" || !strings.Contains(evs[0].Error, "pg_dump") {
		t.Fatalf("backup notice: %+v %v", evs, err)
	}
	if m := Card(evs[0], nil); m.Title != "supermock/postgres-db · backup of postgres supermock failed" {
		t.Errorf("backup card title %q", m.Title)
	}
	for _, f := range []string{"dokploy_server_threshold.json", "dokploy_docker_cleanup.json"} {
		if _, err := Parse(Dokploy, http.Header{}, sample(t, f)); !errors.Is(err, ErrIgnored) {
			t.Errorf("%s: %v, want ignored", f, err)
		}
	}
	for _, body := range []string{`{"title":"Dokploy Server Restarted","status":"success","type":"dokploy-restart"}`,
		`{"title":"Dokploy Backup Successful","backupType":"Complete Dokploy Instance","status":"success","type":"dokploy-backup"}`} {
		if _, err := Parse(Dokploy, http.Header{}, []byte(body)); !errors.Is(err, ErrIgnored) {
			t.Errorf("%s: %v, want ignored", body, err)
		}
	}
}

// B3: a Dokploy env cannot deploy a commit id, so its button names the branch.
func TestDeployButtonByNameForDokploy(t *testing.T) {
	e := Event{Source: GitHub, Kind: KindPipeline, Project: "supermock/web", ID: "1", Ref: "main",
		SHA: "3f2a9c1d7e3f2a9c1d7e3f2a9c1d7e3f2a9c1d7e", Status: StatusSuccess}
	m := Card(e, &DeployOffer{Project: "supermock/web", App: "web", Env: "staging", ByName: true})
	if len(m.Buttons) != 1 || m.Buttons[0].Data != "deploy:web:staging:main" {
		t.Fatalf("buttons %+v", m.Buttons)
	}
	m = Card(e, &DeployOffer{Project: "supermock/web", App: "web", Env: "staging"})
	if len(m.Buttons) != 1 || !strings.HasSuffix(m.Buttons[0].Data, ":3f2a9c1d7e3f2a9c1d7e3f2a9c1d7e3f2a9c1d7e") {
		t.Fatalf("ssh-style buttons %+v", m.Buttons)
	}
}
