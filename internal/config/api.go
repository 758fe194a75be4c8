package config

import (
	"path"
	"regexp"

	"gopkg.in/yaml.v3"

	"github.com/shipbot/shipbot/internal/audit"
)

// API is the HTTP API for CI jobs (served on http.listen under /api/v1).
type API struct {
	// Tokens maps a name to its bearer token; the token stands for the
	// identity "api:NAME", which users: maps to a user like any chat
	// identity. Write ${VAR}; each must be at least 43 characters (32
	// random bytes, base64url: what `bot token new` prints).
	Tokens map[string]audit.Secret
}

// Enabled reports whether any token is configured.
func (a API) Enabled() bool { return len(a.Tokens) > 0 }

// AutoDeploy deploys every green pipeline of Project at Ref (of one of
// Workflows, globs, when given) to App/Env as the configured user As.
type AutoDeploy struct {
	Project, Ref, App, Env, As string
	Workflows                  []string
}

// apiMinToken matches apitoken.MinLen (config does not import adapters).
const apiMinToken = 43

var apiTokenName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func (d *decoder) api(n *yaml.Node, path string, a *API) {
	d.object(n, path, fields{
		"tokens": func(v *yaml.Node, k string) {
			d.named(v, k, func(name string, v *yaml.Node, k string) {
				var s string
				d.str(v, k, &s)
				a.Tokens[name] = audit.NewSecret(s)
			})
		},
	})
}

func (d *decoder) autoDeploy(v *yaml.Node, k string, p *Pipelines) {
	for i, v := range d.list(v, k) {
		k := index(k, i)
		var r AutoDeploy
		d.object(v, k, fields{
			"project":   func(v *yaml.Node, k string) { d.str(v, k, &r.Project) },
			"ref":       func(v *yaml.Node, k string) { d.str(v, k, &r.Ref) },
			"workflows": func(v *yaml.Node, k string) { d.strs(v, k, &r.Workflows) },
			"app":       func(v *yaml.Node, k string) { d.str(v, k, &r.App) },
			"env":       func(v *yaml.Node, k string) { d.str(v, k, &r.Env) },
			"as":        func(v *yaml.Node, k string) { d.str(v, k, &r.As) },
		})
		p.AutoDeploy = append(p.AutoDeploy, r)
	}
}

func (d *decoder) validateAPI(c *Config) {
	for _, name := range sortedKeys(c.API.Tokens) {
		k := join("api.tokens", name)
		if !apiTokenName.MatchString(name) {
			d.fail(d.lineOf(k), k, "name %q is not allowed: it must match %s", name, apiTokenName)
		}
		// The value is never printed: only its length is named.
		if n := len(c.API.Tokens[name].Reveal()); n < apiMinToken {
			d.fail(d.lineOf(k), k, "token is %d characters; at least %d are required (32 random bytes: run `bot token new`)", n, apiMinToken)
		}
	}
	if c.API.Enabled() && c.HTTP.Listen == "" {
		d.fail(d.lineOf("api"), "http.listen", "is required to serve the API (api.tokens)")
	}
	for i, r := range c.Pipelines.AutoDeploy {
		key := index("pipelines.auto_deploy", i)
		if r.Project == "" {
			d.fail(d.lineOf(key), key+".project", "is required")
		}
		if r.Ref == "" {
			d.fail(d.lineOf(key), key+".ref", "is required: a rule deploys one branch (main)")
		}
		for _, g := range r.Workflows {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				d.fail(d.lineOf(key+".workflows"), key+".workflows", "glob %q: want a workflow name or pattern (CI, \"Deploy*\")", g)
			}
		}
		if a, ok := c.Apps[r.App]; !ok {
			d.fail(d.lineOf(key), key+".app", "unknown app %q", r.App)
		} else if _, ok := a.Envs[r.Env]; !ok {
			d.fail(d.lineOf(key), key+".env", "app %q has no env %q", r.App, r.Env)
		}
		if _, ok := c.Users[r.As]; !ok {
			d.fail(d.lineOf(key), key+".as", "unknown user %q: the rule deploys as a configured user, whose roles apply%s", r.As, known(sortedKeys(c.Users)))
		}
	}
	if len(c.Pipelines.AutoDeploy) > 0 && !c.Pipelines.Enabled() {
		d.fail(d.lineOf("pipelines.auto_deploy"), "pipelines.auto_deploy", "needs a webhook source (gitlab_token, github_secret or generic_secret) to hear pipelines")
	}
}

func (a API) secrets() []audit.Secret {
	out := make([]audit.Secret, 0, len(a.Tokens))
	for _, n := range sortedKeys(a.Tokens) {
		out = append(out, a.Tokens[n])
	}
	return out
}
