package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// `bot check --explain` prints an env with its app's defaults applied,
// marks what it inherited, and shows secrets only as the ${VAR} written.
func TestE2ECheckExplain(t *testing.T) {
	t.Parallel()
	e := &testEnv{t: t, dir: t.TempDir(), env: []string{"HELPDESK_DB_PASSWORD=hd-secret-1", "TELEGRAM_TOKEN=1:tg-secret-3",
		"GITLAB_WEBHOOK_TOKEN=gl-secret-4"}}
	path, err := filepath.Abs("../../configs/helpdesk.yaml")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := e.cli("check", "--config", path, "--explain", "helpdesk", "production")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"driver: ssh # from defaults\n",
		"ssh:\n  user: deploy # from defaults\n",
		"\n  hosts: [\"helpdesk-app1.example.com\", \"helpdesk-app2.example.com\"]\n",
		"health:\n  expect_status: 200 # from defaults\n",
		"\n  url: https://helpdesk.example.com/health\n",
		"password: ${HELPDESK_DB_PASSWORD}\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hd-secret-1") || strings.Contains(out, "#  ") {
		t.Fatalf("explain printed a secret or a file comment:\n%s", out)
	}
	if code, _, errOut := e.cli("check", "--config", path, "--explain", "helpdesk", "qa"); code != 1 || !strings.Contains(errOut, `no env "qa"`) {
		t.Fatalf("unknown env: exit %d, %s", code, errOut)
	}
	if code, _, _ := e.cli("check", "--config", path, "--explain", "helpdesk"); code != 2 {
		t.Fatalf("--explain with one argument: exit %d, want 2", code)
	}
}
