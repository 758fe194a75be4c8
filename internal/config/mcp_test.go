package config

import (
	"strings"
	"testing"
)

const mcpBlock = `
mcp:
  enabled: true
  approval_chat: shell:terminal
  allowed_origins: ["https://claude.example.com"]
`

func TestMCPConfig(t *testing.T) {
	src := base + apiBlock + mcpBlock
	c, err := Parse([]byte(src), "t.yaml", envOf(apiEnv))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MCP.Enabled || c.MCP.Path != "/mcp" || c.MCP.ApprovalChat != "shell:terminal" ||
		len(c.MCP.AllowedOrigins) != 1 {
		t.Fatalf("mcp %+v", c.MCP)
	}
	if sum := c.Summary(); !strings.Contains(sum, "mcp: /mcp for AI assistants (tokens of api.tokens); approval cards to shell:terminal and") {
		t.Errorf("summary:\n%s", sum)
	}
	// Left out, the block is off.
	c, err = Parse([]byte(base), "t.yaml", envOf(apiEnv))
	if err != nil || c.MCP.Enabled {
		t.Fatalf("no mcp block: %+v %v", c.MCP, err)
	}
}

func TestMCPConfigErrors(t *testing.T) {
	cases := []struct{ from, to, want string }{
		{"  enabled: true", "  enabled: true\n  path: mcp", `mcp.path: "mcp": want a path like /mcp`},
		{"  enabled: true", "  enabled: true\n  path: /api/v1/mcp", `mcp.path: "/api/v1/mcp"`},
		{"shell:terminal", "irc:ops", `mcp.approval_chat: unknown platform "irc"`},
		{"https://claude.example.com", "claude.example.com", `mcp.allowed_origins[0]: "claude.example.com": want an origin`},
		{"https://claude.example.com", "https://claude.example.com/app", `mcp.allowed_origins[0]`},
		{"  enabled: true", "  enabled: true\n  tools: [deploy]", "mcp.tools"},
	}
	for _, tc := range cases {
		src := base + apiBlock + strings.Replace(mcpBlock, tc.from, tc.to, 1)
		_, err := Parse([]byte(src), "t.yaml", envOf(apiEnv))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: err %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
	// The endpoint needs the tokens it authenticates with, and the listener.
	for _, c := range []struct{ src, want string }{
		{base + "\nhttp:\n  listen: 127.0.0.1:8080\n" + mcpBlock, "api.tokens: is required for mcp"},
		{base + strings.Replace(apiBlock, "  listen: 127.0.0.1:8080", `  listen: ""`, 1) + mcpBlock, "http.listen: is required to serve the MCP endpoint"},
	} {
		if _, err := Parse([]byte(c.src), "t.yaml", envOf(apiEnv)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
	}
}
