package config

import (
	"strings"
	"testing"
)

const dokployEnv = `users:
  alice:
    identities: ["shell:alice"]
    roles: [admin]
roles:
  admin:
    permissions: ["*"]
apps:
  backend:
    envs:
      production:
        driver: dokploy
        dokploy:
          base_url: https://dokploy.example.com/api
          api_key: ${DOKPLOY_API_KEY}
          compose_id: cmp_AbC-123
          set_branch: true
          backup_id: bkp_1
        health: {url: "https://api.example.com/api/health"}
        backup_before_deploy: true
`

func TestDokployConfig(t *testing.T) {
	c, err := Parse([]byte(dokployEnv), "t.yaml", envOf(map[string]string{"DOKPLOY_API_KEY": "dkp-key-1"}))
	if err != nil {
		t.Fatal(err)
	}
	dk := c.Apps["backend"].Envs["production"].Dokploy
	if dk == nil || dk.APIKey.Reveal() != "dkp-key-1" || dk.ComposeID != "cmp_AbC-123" || !dk.SetBranch || dk.PollDeadline.Minutes() != 30 {
		t.Fatalf("dokploy = %+v", dk)
	}
	if !hasSecret(c, "dkp-key-1") {
		t.Error("the API key is not among the redacted secrets")
	}
	if dk.QueueGrace != dk.PollDeadline || dk.LogsSince.Duration != 0 {
		t.Errorf("queue_grace defaults to poll_deadline: %+v", dk)
	}
	c, err = Parse([]byte(strings.Replace(dokployEnv, "set_branch: true", "set_branch: true\n          queue_grace: 2h\n          logs_since: 6h", 1)),
		"t.yaml", envOf(map[string]string{"DOKPLOY_API_KEY": "dkp-key-1"}))
	if dk := c.Apps["backend"].Envs["production"].Dokploy; err != nil || dk.QueueGrace.Hours() != 2 || dk.LogsSince.Hours() != 6 {
		t.Fatalf("queue_grace, logs_since: %v %+v", err, dk)
	}
	if sum := c.Summary(); !strings.Contains(sum, "driver:   dokploy compose cmp_AbC-123 at https://dokploy.example.com/api") || strings.Contains(sum, "dkp-key-1") {
		t.Errorf("summary:\n%s", sum)
	}
}

func TestInvalidDokployConfigs(t *testing.T) {
	env := map[string]string{"DOKPLOY_API_KEY": "k"}
	k := "apps.backend.envs.production"
	for name, tc := range map[string]struct{ old, new, want string }{
		"plain http":   {"https://dokploy.example.com/api", "http://dokploy.example.com/api", k + ".dokploy.base_url: must use https"},
		"both ids":     {"compose_id: cmp_AbC-123", "compose_id: cmp_AbC-123\n          application_id: app_1", "takes compose_id or application_id, not both"},
		"no ids":       {"compose_id: cmp_AbC-123", "", "needs compose_id or application_id"},
		"path given":   {"driver: dokploy", "driver: dokploy\n        path: /srv/x", k + ".path: does not apply to the dokploy driver"},
		"unknown key":  {"set_branch: true", "set_branch: true\n          compose: x", k + ".dokploy.compose: unknown key"},
		"bad id":       {"cmp_AbC-123", "cmp;rm -rf", "is not a Dokploy id"},
		"no block":     {"        dokploy:\n", "        dokploy_off:\n", k + ".dokploy: the dokploy driver needs a dokploy block"},
		"bad grace":    {"set_branch: true", "set_branch: true\n          queue_grace: soon", k + ".dokploy.queue_grace: must be a duration"},
		"gate, no bkp": {"          backup_id: bkp_1\n", "", k + ".backup_before_deploy: needs dokploy.backup_id"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(dokployEnv, tc.old) {
				t.Fatalf("base lacks %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(dokployEnv, tc.old, tc.new, 1)), "t.yaml", envOf(env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}
