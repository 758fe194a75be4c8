package config

import (
	"regexp"
	"strings"

	cmds "github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
	"github.com/shipbot/shipbot/internal/notify"
)

// platforms are the chat platforms an identity may name.
var platforms = notify.Platforms

// Verbs are the actions a permission may grant: the commands' own list.
var verbs = cmds.PermissionVerbs()

// specialPermissions are grants that are not VERB:SCOPE even though they
// look like it.
var specialPermissions = cmds.SpecialPermissions

// templateVars are the {{names}} argv, health and logs templates may use:
// the release runner's list.
var templateVars = release.TemplateVars

var (
	hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	sshUserPattern  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)
)

// validate checks the decoded config as a whole. Each block's checks live
// beside its struct (Bot in config.go, Env in env.go, SSH in ssh.go, Slack
// in slack.go, ...): a block checks itself, given the config where it must
// look across blocks (roles, apps, http.listen). Defaults are in builtin.go.
func (d *decoder) validate(c *Config) {
	d.validating = true
	c.Bot.validate(d)
	d.validateUsers(c)
	for _, name := range sortedKeys(c.Roles) {
		d.validateRole(c, name)
	}
	if len(c.Apps) == 0 {
		d.fail(d.lineOf("apps"), "apps", "at least one app is required")
	}
	for _, name := range sortedKeys(c.Apps) {
		key := join("apps", name)
		d.checkName(key, name)
		app := c.Apps[name]
		if len(app.Envs) == 0 {
			d.fail(d.lineOf(key+".envs"), key+".envs", "at least one env is required")
		}
		for _, env := range sortedKeys(app.Envs) {
			app.Envs[env].validate(d, c, join(key+".envs", env), env)
		}
	}
	d.validateChat(c)
	d.validateInsights(c)
}

func (d *decoder) checkName(key, name string) {
	if !deploy.ValidName(name) {
		d.fail(d.lineOf(key), key, "name %q is not allowed: it must match %s", name, deploy.NamePattern)
	}
}

func (d *decoder) positive(key string, v Duration) {
	if v.Duration <= 0 {
		d.fail(d.lineOf(key), key, "must be longer than 0s")
	}
}

func (d *decoder) atLeast(key string, v, least int) {
	if v < least {
		d.fail(d.lineOf(key), key, "must be at least %d, not %d", least, v)
	}
}

func (d *decoder) validateChat(c *Config) {
	c.Chat.Telegram.validate(d, c)
	c.Chat.Slack.validate(d, c)
	d.validatePipelines(c)
	d.validateAPI(c)
	d.validateMCP(c)
	s := c.Chat.Shell
	if s == nil {
		return
	}
	const key = "chat.shell.user"
	if s.User == "" {
		if s.Enabled {
			d.fail(d.lineOf(key), key, "is required when the shell is enabled")
		}
		return
	}
	u, ok := c.Users[s.User]
	if !ok {
		d.fail(d.lineOf(key), key, "unknown user %q%s", s.User, known(sortedKeys(c.Users)))
		return
	}
	for _, id := range u.Identities {
		if strings.HasPrefix(id, "shell:") {
			return
		}
	}
	d.fail(d.lineOf(key), key, "user %q has no shell: identity", s.User)
}

func countSet(vals ...string) int {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	return n
}

func known(names []string) string {
	if len(names) == 0 {
		return " (none defined)"
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}
