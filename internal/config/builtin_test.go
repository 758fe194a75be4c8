package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// The README's config table states each default; it must state the values
// builtin.go gives, so a default changed in one place is not left wrong in
// the other.
func TestREADMEDefaultsMatch(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cells := map[string]string{} // first cell -> second cell
	for _, line := range strings.Split(string(readme), "\n") {
		parts := strings.Split(line, " | ")
		if len(parts) >= 3 && strings.HasPrefix(parts[0], "| `") {
			cells[strings.TrimPrefix(parts[0], "| ")] = parts[1]
		}
	}
	b, e, s, dk, bk := defaultBot(), defaultEnv(), defaultSSH(), defaultDokploy(), defaultBackup()
	tg, sl := defaultTelegram(), defaultSlack()
	q := func(v any) string { return fmt.Sprintf("`%v`", v) }
	want := map[string]string{
		"`bot.data_dir`":         q(b.DataDir),
		"`bot.database`":         q(defaultDatabase("<data_dir>")),
		"`bot.job_timeout`":      q(short(b.JobTimeout)),
		"`bot.shutdown_timeout`": q(short(b.ShutdownTimeout)),
		"`bot.output_lines`":     q(b.OutputLines),
		"`chat.telegram.api_url`, `mode`, `webhook_url`, `webhook_secret`":              q(tg.APIURL) + ", " + q(tg.Mode),
		"`chat.slack.enabled`, `bot_token`, `app_token`, `channels`, `direct_messages`": fmt.Sprintf("`direct_messages: %v`", sl.DirectMessages),
		"`chat.slack.mode`, `signing_secret`, `path`, `api_url`":                        q(sl.Mode) + ", " + q(sl.Path) + ", " + q(sl.APIURL),
		"`mcp.enabled`, `path`, `approval_chat`, `allowed_origins`":                     "`false`, " + q(defaultMCPPath) + ", none, none",
		"`….keep_releases`":                              q(e.KeepReleases),
		"`….step_timeout`":                               q(short(e.StepTimeout)),
		"`….approval.required`, `approver_roles`, `ttl`": "`false`, any, " + q(short(e.Approval.TTL)),
		"`….ssh.hosts`, `user`, `key_file`, `known_hosts`, `parallel`, `connect_timeout`, `keepalive`": fmt.Sprintf(
			"-, -, -, -, all hosts (≤ %d), %s, %s", s.Parallel, short(s.ConnectTimeout), short(s.Keepalive)),
		"`….backup.keep_days`, `keep`, `timeout`":                      fmt.Sprintf("%s, no limit, %s", q(bk.KeepDays), q(short(bk.Timeout))),
		"`….dokploy.poll_interval`, `poll_deadline`, `backup_timeout`": q(short(dk.PollInterval)) + ", " + q(short(dk.PollDeadline)) + ", " + q(short(dk.BackupTimeout)),
	}
	for key, w := range want {
		got, ok := cells[key]
		if !ok {
			t.Errorf("README has no config row %s", key)
			continue
		}
		if got != w {
			t.Errorf("README row %s says default %s; builtin.go gives %s", key, got, w)
		}
	}
	// Defaults written in the meaning column: health and logs.
	for key, w := range map[string]string{
		"`….health.url` or `….health.command`": fmt.Sprintf("`expect_status` (%d), `expect_body`, `retries` (%d), `interval` (%s), `timeout` (%s)",
			e.Health.ExpectStatus, e.Health.Retries, short(e.Health.Interval), short(e.Health.Timeout)),
		"`….logs.command` (may use `{{lines}}`) or `….logs.file`": fmt.Sprintf("`max_lines` (%d), `max_bytes` (%d KiB)", e.Logs.MaxLines, e.Logs.MaxBytes/1024),
	} {
		var row string
		for _, line := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(line, "| "+key+" |") {
				row = line
			}
		}
		if !strings.Contains(row, w) {
			t.Errorf("README row %s does not say %s:\n%s", key, w, row)
		}
	}
}
