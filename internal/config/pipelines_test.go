package config

import (
	"strings"
	"testing"
)

const pipelinesBlock = `
http:
  listen: 127.0.0.1:8080
pipelines:
  gitlab_token: ${GL}
  admin_chat: telegram:-100999
  routes:
    - projects: ["acme/*"]
      refs: ["feature/*"]
      statuses: [failed]
      chats: ["telegram:-100123/7", "slack:C0123ABCD"]
  deploy_buttons:
    - {project: acme/demo, ref: main, app: demo, env: staging}
`

func TestPipelinesConfig(t *testing.T) {
	c, err := Parse([]byte(base+pipelinesBlock), "t.yaml", envOf(map[string]string{"GL": "tok-123"}))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pipelines
	if !p.Enabled() || p.GitLabToken.Reveal() != "tok-123" || p.MaxAttempts != 10 || p.DokployHeader != "X-Shipbot-Token" ||
		len(p.Routes) != 1 || len(p.Routes[0].Chats) != 2 || p.DeployButtons[0].App != "demo" {
		t.Fatalf("pipelines %+v", p)
	}
}

func TestPipelinesConfigErrors(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{"gitlab_token: ${GL}", "gitlab_token: \"\"", "pipelines.gitlab_token: is empty"},
		{`"slack:C0123ABCD"`, `"irc:#ops"`, `pipelines.routes[0].chats[1]: unknown platform "irc"`},
		{"statuses: [failed]", "statuses: [red]", `unknown status "red"`},
		{"app: demo, env: staging", "app: nope, env: staging", `pipelines.deploy_buttons[0].app: unknown app "nope"`},
		{"admin_chat: telegram:-100999", "admin_chat: nowhere", "pipelines.admin_chat"},
		{"  listen: 127.0.0.1:8080", "  listen: \"\"", "http.listen: is required to receive pipeline webhooks"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(base+strings.Replace(pipelinesBlock, tc.from, tc.to, 1)), "t.yaml", envOf(map[string]string{"GL": "tok-123"}))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: err %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}
