package config

import (
	"strings"
	"testing"
)

const apiBlock = `
http:
  listen: 127.0.0.1:8080
api:
  tokens:
    gitlab-ci: ${CI_TOKEN}
pipelines:
  gitlab_token: ${GL}
  auto_deploy:
    - {project: acme/demo, ref: main, workflows: [CI], app: demo, env: staging, as: alice}
`

var apiEnv = map[string]string{"GL": "tok-123", "CI_TOKEN": strings.Repeat("k", 43)}

func TestAPIConfig(t *testing.T) {
	src := strings.Replace(base, `["shell:alice"]`, `["shell:alice", "api:gitlab-ci"]`, 1) + apiBlock
	c, err := Parse([]byte(src), "t.yaml", envOf(apiEnv))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Tokens["gitlab-ci"].Reveal() != apiEnv["CI_TOKEN"] || len(c.Pipelines.AutoDeploy) != 1 ||
		c.Pipelines.AutoDeploy[0].As != "alice" || c.Pipelines.AutoDeploy[0].Workflows[0] != "CI" {
		t.Fatalf("api %+v auto %+v", c.API, c.Pipelines.AutoDeploy)
	}
	sum := c.Summary()
	if !strings.Contains(sum, "api: /api/v1 with 1 tokens: gitlab-ci") || !strings.Contains(sum, "auto-deploy: green acme/demo@main → demo/staging as alice") ||
		strings.Contains(sum, apiEnv["CI_TOKEN"]) {
		t.Fatalf("summary:\n%s", sum)
	}
	found := false
	for _, s := range c.Secrets() {
		found = found || s.Reveal() == apiEnv["CI_TOKEN"]
	}
	if !found {
		t.Fatal("an API token is not among the secrets the redactor hides")
	}
}

func TestAPIConfigErrors(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{"gitlab-ci: ${CI_TOKEN}", "gitlab-ci: short-token", "api.tokens.gitlab-ci: token is 11 characters; at least 43"},
		{"gitlab-ci: ${CI_TOKEN}", "Bad Name: ${CI_TOKEN}", `name "Bad Name" is not allowed`},
		{"  listen: 127.0.0.1:8080", "  listen: \"\"", "http.listen: is required to serve the API"},
		{"as: alice}", "as: mallory}", `pipelines.auto_deploy[0].as: unknown user "mallory"`},
		{"app: demo, env: staging", "app: demo, env: prod", `pipelines.auto_deploy[0].env: app "demo" has no env "prod"`},
		{"ref: main, ", "", "pipelines.auto_deploy[0].ref: is required"},
		{"workflows: [CI]", "workflows: [\"[\"]", "pipelines.auto_deploy[0].workflows: glob"},
		{"as: alice}", "as: alice, when: green}", "pipelines.auto_deploy[0].when"},
	}
	for _, tc := range cases {
		src := base + strings.Replace(apiBlock, tc.from, tc.to, 1)
		_, err := Parse([]byte(src), "t.yaml", envOf(apiEnv))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: err %v, want %q", tc.from, tc.to, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), apiEnv["CI_TOKEN"]) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
}
