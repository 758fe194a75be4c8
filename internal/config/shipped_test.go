package config

import (
	"os"
	"testing"
)

// The real-world configs in configs/ stay valid: each is what a team would
// start from, and `bot check` must accept it once its secrets are set.
func TestShippedConfigsAreValid(t *testing.T) {
	env := map[string]string{
		"HELPDESK_DB_PASSWORD": "x", "TELEGRAM_TOKEN": "1:x", "TELEGRAM_WEBHOOK_SECRET": "x",
		"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_APP_TOKEN": "xapp-x", "SLACK_SIGNING_SECRET": "x",
		"GITLAB_WEBHOOK_TOKEN": "x", "GITHUB_WEBHOOK_SECRET": "x", "DOKPLOY_API_KEY": "x", "DOKPLOY_WEBHOOK_SECRET": "x",
		"SUPERMOCK_DB_PASSWORD": "x",
	}
	for _, name := range []string{"example.yaml", "helpdesk.yaml", "supermock.yaml"} {
		data, err := os.ReadFile("../../configs/" + name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(data, name, envOf(env))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "helpdesk.yaml" {
			e := c.Apps["helpdesk"].Envs["production"]
			if e.Backup == nil || !e.BackupBeforeDeploy || e.Backup.Schedule == "" {
				t.Errorf("helpdesk production lost its backup block: %+v", e.Backup)
			}
		}
	}
}
