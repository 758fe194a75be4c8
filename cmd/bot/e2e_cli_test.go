package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // driver "sqlite", to tamper with the database as an intruder would
)

// tamperedSession runs a short session and returns its env and audit row count.
func tamperedSession(t *testing.T) (*testEnv, int64) {
	t.Helper()
	e := newEnv(t, "")
	p, st := e.runScript("/deploy demo staging\n/jobs\n/whoami\n/apps\n/as carol\n/audit\n")
	if st.ExitCode() != 0 {
		t.Fatalf("exit %v, stderr: %s", st, p.errOut)
	}
	p.waitFor(cardState(1, "succeeded"))
	e.mustVerify()
	rows := int64(len(e.auditExport()))
	if rows < 8 {
		t.Fatalf("only %d audit rows after the session", rows)
	}
	return e, rows
}

// tamper runs statements on the bot's database behind its back.
func tamper(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// verifyNames asserts `bot audit verify` fails naming row seq.
func verifyNames(t *testing.T, e *testEnv, seq int64) {
	t.Helper()
	code, out, errOut := e.cli("audit", "verify", "--config", e.config)
	want := fmt.Sprintf("audit chain broken at row %d:", seq)
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("verify exited %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
}

func TestE2EAuditVerifyTamper(t *testing.T) {
	t.Parallel()
	t.Run("update", func(t *testing.T) {
		t.Parallel()
		e, rows := tamperedSession(t)
		mid := rows / 2
		// The triggers stop the bot itself from ever rewriting history.
		db, err := sql.Open("sqlite", "file:"+e.database())
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec(`UPDATE audit SET outcome = 'nothing happened' WHERE seq = ?`, mid)
		db.Close()
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("UPDATE with the triggers in place: %v, want append-only refusal", err)
		}
		tamper(t, e.database(), `DROP TRIGGER audit_no_update`,
			fmt.Sprintf(`UPDATE audit SET outcome = 'nothing happened' WHERE seq = %d`, mid))
		verifyNames(t, e, mid)
	})
	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		e, rows := tamperedSession(t)
		mid := rows / 2
		tamper(t, e.database(), `DROP TRIGGER audit_no_delete`, fmt.Sprintf(`DELETE FROM audit WHERE seq = %d`, mid))
		verifyNames(t, e, mid)
	})
	t.Run("delete last", func(t *testing.T) {
		t.Parallel()
		e, rows := tamperedSession(t)
		tamper(t, e.database(), `DROP TRIGGER audit_no_delete`, fmt.Sprintf(`DELETE FROM audit WHERE seq = %d`, rows))
		verifyNames(t, e, rows)
	})
}

func TestE2ECheckAndVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")

	code, out, errOut := e.cli("check", "--config", e.config)
	if code != 0 || !strings.Contains(out, "config OK") {
		t.Fatalf("check of the example config: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = e.cli("check")
	if code != 0 || !strings.Contains(out, "config: configs/example.yaml") || !strings.Contains(out, "config OK") {
		t.Fatalf("check of the embedded default: exit %d\n%s", code, out)
	}

	// A typo in a key stops the bot, naming file, line and key.
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	typoLine := 0
	for i, l := range lines {
		if strings.TrimSpace(l) == "keep_releases: 5" {
			lines[i] = strings.Replace(l, "keep_releases", "keep_relases", 1)
			typoLine = i + 1
			break
		}
	}
	if typoLine == 0 {
		t.Fatal("no keep_releases line in the example config")
	}
	typo := filepath.Join(e.dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = e.cli("check", "--config", typo)
	where := fmt.Sprintf("%s:%d:", typo, typoLine)
	if code != 1 || !strings.Contains(errOut, where) || !strings.Contains(errOut, "keep_relases") {
		t.Fatalf("check of a typo: exit %d\nstdout: %s\nstderr: %s\nwant exit 1 naming %s and keep_relases", code, out, errOut, where)
	}
	if strings.Contains(out, "config OK") {
		t.Fatal("a config with a typo was reported OK")
	}
	// The bot refuses to start on it too.
	code, _, errOut = e.cli("--config", typo)
	if code == 0 || !strings.Contains(errOut, "keep_relases") {
		t.Fatalf("run with a typo: exit %d, stderr %q", code, errOut)
	}

	code, out, _ = e.cli("version")
	if code != 0 || !strings.HasPrefix(out, "shipbot ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	if code, _, _ = e.cli("frobnicate"); code != 2 {
		t.Fatalf("unknown subcommand exited %d, want 2", code)
	}
}

// The shipped real-world configs pass `bot check` once their secrets are
// in the environment, and the check prints none of them.
func TestE2ECheckShippedConfigs(t *testing.T) {
	t.Parallel()
	e := &testEnv{t: t, dir: t.TempDir(), env: []string{"HELPDESK_DB_PASSWORD=hd-secret-1", "DOKPLOY_API_KEY=dkp-secret-2",
		"TELEGRAM_TOKEN=1:tg-secret-3", "GITLAB_WEBHOOK_TOKEN=gl-secret-4", "DOKPLOY_WEBHOOK_SECRET=dw-secret-5"}}
	for _, name := range []string{"helpdesk.yaml", "supermock.yaml"} {
		path, err := filepath.Abs("../../configs/" + name)
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := e.cli("check", "--config", path)
		if code != 0 || !strings.Contains(out, "config OK") {
			t.Fatalf("bot check %s: exit %d\n%s%s", name, code, out, errOut)
		}
		for _, s := range []string{"hd-secret-1", "dkp-secret-2", "tg-secret-3", "gl-secret-4", "dw-secret-5"} {
			if strings.Contains(out+errOut, s) {
				t.Fatalf("bot check %s printed a secret:\n%s", name, out)
			}
		}
	}
}

// An auditor's environment has none of the bot's variables: a ${VAR} in a
// setting audit verify does not use (here the HTTP listen address, which
// "unset-…" would not even parse as) does not stop it.
func TestE2EAuditVerifyIgnoresUnsetVariablesItDoesNotNeed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p, st := e.runScript("/whoami\n")
	if st.ExitCode() != 0 {
		t.Fatalf("exit %v, stderr: %s", st, p.errOut)
	}
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw) + "\nhttp:\n  listen: \"${SHIPBOT_E2E_NEVER_SET_LISTEN}\"\n"
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := e.cli("audit", "verify", "--config", e.config)
	if code != 0 || !strings.Contains(out, "audit log OK") {
		t.Fatalf("verify exited %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, _ := e.cli("check", "--config", e.config); code == 0 {
		t.Fatal("check accepted an unset variable: the test's config proves nothing")
	}
}
