package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/shipbot/shipbot/internal/notify"
)

// MCP is the Model Context Protocol endpoint for AI assistants, served on
// http.listen at Path. Assistants authenticate with the tokens of
// api.tokens, so an assistant is the user its "api:NAME" identity maps to.
type MCP struct {
	Enabled bool
	// Path is where the endpoint is mounted; default /mcp.
	Path string
	// ApprovalChat, when set, is where the cards of the assistants' jobs
	// (approval buttons and all) are posted, besides the routes with
	// source "shipbot".
	ApprovalChat string
	// AllowedOrigins are the browser origins ("https://host[:port]") whose
	// requests are served. A request with any other Origin header is
	// refused with 403; one without Origin (desktop and CLI assistants)
	// is judged on its token alone.
	AllowedOrigins []string
}

func (d *decoder) mcp(n *yaml.Node, path string, m *MCP) {
	d.object(n, path, fields{
		"enabled":         func(v *yaml.Node, k string) { d.bool(v, k, &m.Enabled) },
		"path":            func(v *yaml.Node, k string) { d.str(v, k, &m.Path) },
		"approval_chat":   func(v *yaml.Node, k string) { d.str(v, k, &m.ApprovalChat) },
		"allowed_origins": func(v *yaml.Node, k string) { d.strs(v, k, &m.AllowedOrigins) },
	})
}

func (d *decoder) validateMCP(c *Config) {
	m := &c.MCP
	const k = "mcp"
	if m.Path == "" {
		m.Path = defaultMCPPath
	}
	if !m.Enabled {
		return
	}
	if c.HTTP.Listen == "" {
		d.fail(d.lineOf(k), "http.listen", "is required to serve the MCP endpoint")
	}
	if !c.API.Enabled() {
		d.fail(d.lineOf(k), "api.tokens", "is required for mcp: assistants authenticate with a token of api.tokens (`bot token new`)")
	}
	if !strings.HasPrefix(m.Path, "/") || strings.HasSuffix(m.Path, "/") || strings.ContainsAny(m.Path, " {}*?#") ||
		m.Path == "/api" || strings.HasPrefix(m.Path, "/api/") {
		d.fail(d.lineOf(k+".path"), k+".path", "%q: want a path like /mcp (starting with /, not ending with /, outside /api)", m.Path)
	}
	if m.ApprovalChat != "" {
		cp, err := notify.ParseChannel(m.ApprovalChat)
		if err == nil && !slices.Contains(platforms, cp.Platform) {
			err = fmt.Errorf("unknown platform %q", cp.Platform)
		}
		if err != nil {
			d.fail(d.lineOf(k+".approval_chat"), k+".approval_chat", "%v (write telegram:CHAT, slack:CHANNEL or shell:NAME)", err)
		}
	}
	for i, o := range m.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.User != nil {
			d.fail(d.lineOf(index(k+".allowed_origins", i)), index(k+".allowed_origins", i),
				"%q: want an origin, scheme://host[:port] (https://claude.example.com)", o)
		}
	}
}
