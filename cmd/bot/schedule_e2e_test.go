package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// Scheduled backups on the real binary: a cron spec fires, the result is
// posted through the env's notification route (source shipbot), and a
// failing scheduled backup alerts the admin chat through the outbox.
func TestE2EScheduledBackupsPostResultsAndAlert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, config: filepath.Join(dir, "shipbot.yaml")}
	env := func(name, paths string) string {
		return fmt.Sprintf(`      %[1]s:
        driver: local
        path: %[2]s/deploy/%[1]s
        fetch: {copy: %[3]s}
        health: {command: ["true"], retries: 1}
        backup:
          dir: %[2]s/backups/%[1]s
          paths: [%[4]s]
          schedule: "@every 1s"
`, name, dir, data, paths)
	}
	cfg := fmt.Sprintf(`bot:
  data_dir: %[1]s/var
  shutdown_timeout: 5s
chat:
  shell: {enabled: true, user: alice}
users:
  alice: {identities: ["shell:alice"], roles: [ops]}
roles:
  ops: {permissions: ["*"]}
pipelines:
  admin_chat: "shell:terminal"
  routes:
    - sources: [shipbot]
      chats: ["shell:terminal"]
apps:
  files:
    envs:
%[2]s%[3]s`, dir, env("good", data), env("broken", filepath.Join(dir, "missing")))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := e.cli("check", "--config", e.config); code != 0 {
		t.Fatalf("bot check: %d\n%s%s", code, out, errOut)
	}
	p := e.startBot(nil)
	// The two envs fire at the same ticks: their messages come in any order.
	want := []*regexp.Regexp{
		regexp.MustCompile(`Backup files → good succeeded \(job #\d+\)`),
		regexp.MustCompile(`Scheduled backup of files/broken failed \(job #\d+\)`),
		regexp.MustCompile(`Backup files → broken failed \(job #\d+\)`),
	}
	deadline := time.Now().Add(outputTimeout)
	for _, rx := range want {
		for !rx.MatchString(p.out.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s", rx, p.out)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	p.closeInput()
	p.mustExit0()
	entries, err := os.ReadDir(filepath.Join(dir, "backups", "good"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("no scheduled backup on disk: %v", err)
	}
}
