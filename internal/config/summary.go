package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Summary describes the configuration for `bot check`: users, roles, and
// every app and env with its driver, hosts and approval rule. The output is
// sorted so it can be diffed. It prints no value that came from ${VAR} (those
// are where secrets live) and redacts credentials in URLs (user:token@host,
// ?token=...).
func (c *Config) Summary() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("config: %s", c.Source)
	p("bot: data_dir %s, database %s, job_timeout %s, shutdown_timeout %s, output_lines %d",
		c.val("bot.data_dir", c.Bot.DataDir), c.val("bot.database", c.Bot.Database),
		short(c.Bot.JobTimeout), short(c.Bot.ShutdownTimeout), c.Bot.OutputLines)
	switch s := c.Chat.Shell; {
	case s == nil || !s.Enabled:
		p("chat: shell disabled")
	default:
		p("chat: shell enabled, acting as %s", s.User)
	}
	if t := c.Chat.Telegram; t != nil && t.Enabled {
		how := t.Mode
		if t.Mode == "webhook" {
			how += " at " + redactURL(t.WebhookURL)
		}
		p("chat: telegram enabled (%s, api %s), %d allowed chats", how, redactURL(t.APIURL), len(t.Chats))
	}
	if s := c.Chat.Slack; s != nil && s.Enabled {
		how := "socket mode"
		if s.Mode == "http" {
			how = "http mode at " + s.Path + "/{commands,events,interactivity}"
		}
		p("chat: slack enabled (%s, api %s), %d allowed channels, direct messages %s", how, redactURL(s.APIURL),
			len(s.Channels), map[bool]string{true: "allowed", false: "refused"}[s.DirectMessages])
	}
	if c.HTTP.Listen != "" {
		p("http: listening on %s", c.HTTP.Listen)
	}
	if c.API.Enabled() {
		// Names only: the identities api:NAME; a token's value is never shown.
		p("api: /api/v1 with %d tokens: %s", len(c.API.Tokens), list(sortedKeys(c.API.Tokens)))
	}
	if c.MCP.Enabled {
		approvals := "the routes of source shipbot"
		if c.MCP.ApprovalChat != "" {
			approvals = c.MCP.ApprovalChat + " and " + approvals
		}
		p("mcp: %s for AI assistants (tokens of api.tokens); approval cards to %s", c.MCP.Path, approvals)
	}
	for _, r := range c.Pipelines.AutoDeploy {
		p("auto-deploy: green %s@%s → %s/%s as %s", r.Project, r.Ref, r.App, r.Env, r.As)
	}
	if g := c.Insights.Digest; g != nil {
		p("insights: delivery digest %q (UTC) to %s", g.Schedule, list(c.vals("insights.digest.chats", g.Chats)))
	}

	p("users (%d):", len(c.Users))
	for _, name := range sortedKeys(c.Users) {
		u := c.Users[name]
		p("  %s: roles %s; identities %s", name, list(u.Roles), list(c.vals("users."+name+".identities", u.Identities)))
	}

	p("roles (%d):", len(c.Roles))
	for _, name := range sortedKeys(c.Roles) {
		p("  %s: %s", name, list(c.Roles[name].Permissions))
	}

	p("apps (%d):", len(c.Apps))
	for _, name := range sortedKeys(c.Apps) {
		app := c.Apps[name]
		if app.Description != "" {
			p("  %s: %s", name, c.val("apps."+name+".description", app.Description))
		} else {
			p("  %s:", name)
		}
		for _, env := range sortedKeys(app.Envs) {
			e := app.Envs[env]
			k := "apps." + name + ".envs." + env
			p("    %s:", env)
			if e.Driver == "dokploy" && e.Dokploy != nil {
				what := "compose " + e.Dokploy.ComposeID
				if e.Dokploy.ApplicationID != "" {
					what = "application " + e.Dokploy.ApplicationID
				}
				p("      driver:   dokploy %s at %s", what, redactURL(c.val(k+".dokploy.base_url", e.Dokploy.BaseURL)))
				if e.Health.URL != "" {
					p("      health:   GET %s expects %d", redactURL(e.Health.URL), e.Health.ExpectStatus)
				}
				if e.Dokploy.BackupID != "" {
					p("      backup:   dokploy backup %s", e.Dokploy.BackupID)
				}
				p("      approval: %s", approvalText(e.Approval))
				continue
			}
			if e.Driver == "ssh" && e.SSH != nil {
				p("      driver:   ssh to %s as %s (parallel %d)", list(c.vals(k+".ssh.hosts", e.SSH.Hosts)),
					c.val(k+".ssh.user", e.SSH.User), min(e.SSH.Parallel, max(len(e.SSH.Hosts), 1)))
			} else {
				p("      driver:   %s", e.Driver)
			}
			p("      path:     %s (keep %d releases)", c.val(k+".path", e.Path), e.KeepReleases)
			if e.Fetch.Git != "" {
				ref := ""
				if e.Fetch.Ref != "" {
					ref = ", default ref " + c.val(k+".fetch.ref", e.Fetch.Ref)
				}
				p("      fetch:    git %s%s", redactURL(e.Fetch.Git), ref)
			} else {
				p("      fetch:    copy %s", c.val(k+".fetch.copy", e.Fetch.Copy))
			}
			p("      steps:    %d build, %d migrate, %d restart", len(e.Build), len(e.Migrate), len(e.Restart))
			if e.Health.URL != "" {
				p("      health:   GET %s expects %d", redactURL(e.Health.URL), e.Health.ExpectStatus)
			} else {
				p("      health:   command %s", strings.Join(c.vals(k+".health.command", e.Health.Command), " "))
			}
			if b := e.Backup; b != nil {
				p("      backup:   %d paths, %d databases to %s, keep %d days/%d; schedule %q, drill %q",
					len(b.Paths), len(b.Databases), b.Dir, b.KeepDays, b.Keep, b.Schedule, b.DrillSchedule)
			}
			p("      approval: %s", approvalText(e.Approval))
		}
	}
	return b.String()
}

// fromEnvPlaceholder stands for a value taken from the environment.
const fromEnvPlaceholder = "[from environment]"

func (c *Config) val(key, v string) string {
	if c.fromEnv[key] {
		return fromEnvPlaceholder
	}
	return v
}

func (c *Config) vals(key string, vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = c.val(index(key, i), v)
	}
	return out
}

func list(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

// short prints 30m rather than time.Duration's 30m0s.
func short(d Duration) string {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// redactURL hides the parts of a URL that carry credentials: userinfo and
// query values. scp-style git addresses (git@host:repo) carry none.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "://") {
			return "(unparseable URL)"
		}
		return s
	}
	hadUser := u.User != nil
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"redacted"}
		}
		u.RawQuery = q.Encode()
	}
	out := u.String()
	if hadUser {
		out = strings.Replace(out, "://", "://[redacted]@", 1)
	}
	return out
}

func approvalText(a Approval) string {
	switch {
	case !a.Required:
		return "not required"
	case len(a.ApproverRoles) == 0:
		return fmt.Sprintf("required (anyone allowed to approve), expires after %s", short(a.TTL))
	}
	return fmt.Sprintf("required by %s, expires after %s", list(a.ApproverRoles), short(a.TTL))
}
