package config

import (
	"slices"
	"strings"
	"testing"
)

const workflowsBlock = `
http:
  listen: 127.0.0.1:8080
pipelines:
  github_secret: gh-secret
  routes:
    - workflows: [CI, "Deploy*"]
      chats: ["slack:C0123ABCD"]
  deploy_buttons:
    - {project: acme/demo, ref: main, app: demo, env: staging, workflows: [CI, "Deploy*"]}
`

func TestPipelinesWorkflowFilter(t *testing.T) {
	c, err := Parse([]byte(base+workflowsBlock), "t.yaml", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pipelines
	want := []string{"CI", "Deploy*"}
	if !slices.Equal(p.Routes[0].Workflows, want) || !slices.Equal(p.DeployButtons[0].Workflows, want) {
		t.Fatalf("workflows: routes %v buttons %v", p.Routes[0].Workflows, p.DeployButtons[0].Workflows)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`- workflows: [CI, "Deploy*"]`, `- workflows: ["[CI"]`, `pipelines.routes[0]: glob "[CI"`},
		{`env: staging, workflows: [CI, "Deploy*"]`, `env: staging, workflows: ["Deploy["]`, `pipelines.deploy_buttons[0].workflows: glob "Deploy["`},
		{`env: staging, workflows: [CI, "Deploy*"]`, `env: staging, workflows: [""]`, `pipelines.deploy_buttons[0].workflows: glob ""`},
		{`env: staging, workflows: [CI, "Deploy*"]`, `env: staging, workflow: [CI]`, `workflow`},
	} {
		_, err := Parse([]byte(base+strings.Replace(workflowsBlock, tc.from, tc.to, 1)), "t.yaml", envOf(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: err %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}
