package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/robfig/cron/v3"

	cmds "github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
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

func (d *decoder) validate(c *Config) {
	d.validating = true
	d.validateBot(c.Bot)
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
			d.validateEnv(c, join(key+".envs", env), env, app.Envs[env])
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

func (d *decoder) validateBot(b Bot) {
	if strings.TrimSpace(b.DataDir) == "" {
		d.fail(d.lineOf("bot.data_dir"), "bot.data_dir", "must not be empty")
	}
	d.positive("bot.job_timeout", b.JobTimeout)
	d.positive("bot.shutdown_timeout", b.ShutdownTimeout)
	d.atLeast("bot.output_lines", b.OutputLines, 1)
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

func (d *decoder) validateUsers(c *Config) {
	owner := map[string]string{} // identity -> user
	for _, name := range sortedKeys(c.Users) {
		key := join("users", name)
		d.checkName(key, name)
		u := c.Users[name]
		for i, id := range u.Identities {
			k := index(key+".identities", i)
			if err := checkIdentity(id); err != nil {
				d.fail(d.lineOf(k), k, "%v", err)
				continue
			}
			if prev, taken := owner[id]; taken {
				if prev == name {
					d.fail(d.lineOf(k), k, "identity %q is listed twice", id)
				} else {
					d.fail(d.lineOf(k), k, "identity %q already belongs to user %q; one identity maps to one user", id, prev)
				}
				continue
			}
			owner[id] = name
		}
		for i, role := range u.Roles {
			k := index(key+".roles", i)
			if _, ok := c.Roles[role]; !ok {
				d.fail(d.lineOf(k), k, "unknown role %q%s", role, known(sortedKeys(c.Roles)))
			}
		}
	}
}

func checkIdentity(id string) error {
	platform, user, ok := strings.Cut(id, ":")
	switch {
	case !ok:
		return fmt.Errorf("identity %q must be PLATFORM:ID, e.g. telegram:123456", id)
	case !slices.Contains(platforms, platform) && platform != "api": // api:NAME is a token of api.tokens
		return fmt.Errorf("identity %q names unknown platform %q (known: %s)", id, platform, strings.Join(platforms, ", "))
	case user == "":
		return fmt.Errorf("identity %q has an empty id", id)
	case strings.IndexFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("identity %q must not contain spaces", id)
	}
	return nil
}

func (d *decoder) validateRole(c *Config, name string) {
	key := join("roles", name)
	d.checkName(key, name)
	for i, p := range c.Roles[name].Permissions {
		k := index(key+".permissions", i)
		if err := checkPermission(c, p); err != nil {
			d.fail(d.lineOf(k), k, "%v", err)
		}
	}
}

// checkPermission accepts "*", "VERB", "VERB:*", "VERB:ENV", "VERB:APP/ENV"
// and the special grants; names must exist so a typo cannot silently grant
// nothing (or, worse, something once an env of that name is added).
func checkPermission(c *Config, p string) error {
	if p == "*" || slices.Contains(specialPermissions, p) {
		return nil
	}
	verb, scope, scoped := strings.Cut(p, ":")
	if !slices.Contains(verbs, verb) {
		return fmt.Errorf("permission %q has unknown verb %q (known: %s)", p, verb, strings.Join(verbs, ", "))
	}
	if !scoped || scope == "*" {
		return nil
	}
	if scope == "" {
		return fmt.Errorf("permission %q has an empty scope: write %s, %s:*, %s:ENV or %s:APP/ENV", p, verb, verb, verb, verb)
	}
	if app, env, ok := strings.Cut(scope, "/"); ok {
		a, found := c.Apps[app]
		if !found {
			return fmt.Errorf("permission %q names unknown app %q", p, app)
		}
		if _, found := a.Envs[env]; !found {
			return fmt.Errorf("permission %q names env %q, which app %q does not have", p, env, app)
		}
		return nil
	}
	for _, a := range c.Apps {
		if _, found := a.Envs[scope]; found {
			return nil
		}
	}
	return fmt.Errorf("permission %q names env %q, which no app has", p, scope)
}

func (d *decoder) validateTelegram(c *Config) {
	t := c.Chat.Telegram
	if t == nil || !t.Enabled {
		return
	}
	const k = "chat.telegram"
	if t.Token.IsZero() {
		d.fail(d.lineOf(k), k+".token", "is required when Telegram is enabled (write ${TELEGRAM_TOKEN} and set it in the environment)")
	}
	if u, err := url.Parse(t.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		d.fail(d.lineOf(k+".api_url"), k+".api_url", "must be an http(s) URL")
	}
	if len(t.Chats) == 0 {
		d.fail(d.lineOf(k), k+".chats", "list the chat ids allowed to use the bot (nobody else can)")
	}
	switch t.Mode {
	case "polling":
	case "webhook":
		if t.WebhookSecret.IsZero() {
			d.fail(d.lineOf(k), k+".webhook_secret", "is required in webhook mode (write ${TELEGRAM_WEBHOOK_SECRET})")
		} else if !webhookSecretPattern.MatchString(t.WebhookSecret.Reveal()) {
			d.fail(d.lineOf(k+".webhook_secret"), k+".webhook_secret", "must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule)")
		}
		if u, err := url.Parse(t.WebhookURL); err != nil || u.Scheme != "https" || u.Host == "" {
			d.fail(d.lineOf(k), k+".webhook_url", "must be the public https URL Telegram posts to")
		}
		if c.HTTP.Listen == "" {
			d.fail(d.lineOf(k+".mode"), "http.listen", "is required for Telegram webhook mode")
		}
	default:
		d.fail(d.lineOf(k+".mode"), k+".mode", "must be polling or webhook, not %q", t.Mode)
	}
}

var webhookSecretPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// slackChannelPattern is a Slack conversation id: C… public, G… private.
var slackChannelPattern = regexp.MustCompile(`^[CG][A-Z0-9]{2,20}$`)

func (d *decoder) validateSlack(c *Config) {
	s := c.Chat.Slack
	if s == nil || !s.Enabled {
		return
	}
	const k = "chat.slack"
	if s.BotToken.IsZero() {
		d.fail(d.lineOf(k), k+".bot_token", "is required when Slack is enabled (write ${SLACK_BOT_TOKEN}: the xoxb- token)")
	} else if !strings.HasPrefix(s.BotToken.Reveal(), "xoxb-") {
		d.fail(d.lineOf(k+".bot_token"), k+".bot_token", "must be a bot token (xoxb-…)")
	}
	if u, err := url.Parse(s.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasSuffix(s.APIURL, "/") {
		d.fail(d.lineOf(k+".api_url"), k+".api_url", "must be an http(s) URL ending in /")
	}
	if len(s.Channels) == 0 && !s.DirectMessages {
		d.fail(d.lineOf(k), k+".channels", "list the channel ids allowed to use the bot, or allow direct_messages")
	}
	for i, ch := range s.Channels {
		if !slackChannelPattern.MatchString(ch) {
			key := index(k+".channels", i)
			d.fail(d.lineOf(key), key, "%q is not a Slack channel id (like C0123ABCD; copy it from the channel's details)", ch)
		}
	}
	switch s.Mode {
	case "socket":
		if s.AppToken.IsZero() {
			d.fail(d.lineOf(k), k+".app_token", "is required in socket mode (write ${SLACK_APP_TOKEN}: the xapp- token with connections:write)")
		} else if !strings.HasPrefix(s.AppToken.Reveal(), "xapp-") {
			d.fail(d.lineOf(k+".app_token"), k+".app_token", "must be an app-level token (xapp-…)")
		}
	case "http":
		if s.SigningSecret.IsZero() {
			d.fail(d.lineOf(k), k+".signing_secret", "is required in http mode (write ${SLACK_SIGNING_SECRET}); unsigned requests are never accepted")
		}
		if c.HTTP.Listen == "" {
			d.fail(d.lineOf(k+".mode"), "http.listen", "is required for Slack http mode")
		}
		if !strings.HasPrefix(s.Path, "/") || strings.HasSuffix(s.Path, "/") {
			d.fail(d.lineOf(k+".path"), k+".path", "must start with / and not end with / (e.g. /slack)")
		}
	default:
		d.fail(d.lineOf(k+".mode"), k+".mode", "must be socket or http, not %q", s.Mode)
	}
}

// pipelineStatuses and pipelineSources are what routes may name: the
// pipeline package's own lists.
var (
	pipelineStatuses = pipeline.Statuses
	pipelineSources  = pipeline.Sources
)

func (d *decoder) validatePipelines(c *Config) {
	if c.Pipelines.DokployHeader == "" { // no pipelines block: the defaults
		c.Pipelines.DokployHeader, c.Pipelines.MaxAttempts = "X-Shipbot-Token", 10
	}
	p := c.Pipelines
	const k = "pipelines"
	if p.Enabled() && c.HTTP.Listen == "" {
		d.fail(d.lineOf(k), "http.listen", "is required to receive pipeline webhooks")
	}
	if p.AdminChat != "" {
		if _, err := notify.ParseChannel(p.AdminChat); err != nil {
			d.fail(d.lineOf(k+".admin_chat"), k+".admin_chat", "%v", err)
		}
	}
	if p.MaxAttempts < 1 {
		d.fail(d.lineOf(k+".max_attempts"), k+".max_attempts", "must be at least 1")
	}
	for i, r := range p.Routes {
		key := index(k+".routes", i)
		if len(r.Chats) == 0 {
			d.fail(d.lineOf(key), key+".chats", "is required: a route must say where events go")
		}
		for j, ch := range r.Chats {
			cp, err := notify.ParseChannel(ch)
			if err == nil && !slices.Contains(platforms, cp.Platform) {
				err = fmt.Errorf("unknown platform %q", cp.Platform)
			}
			if err != nil {
				d.fail(d.lineOf(index(key+".chats", j)), index(key+".chats", j), "%v (write telegram:CHAT[/TOPIC] or slack:CHANNEL[/THREAD_TS])", err)
			}
		}
		for _, g := range slices.Concat(r.Projects, r.Refs, r.Workflows) {
			if _, err := path.Match(g, ""); err != nil {
				d.fail(d.lineOf(key), key, "glob %q: %v", g, err)
			}
		}
		for _, s := range r.Statuses {
			if !slices.Contains(pipelineStatuses, s) {
				d.fail(d.lineOf(key+".statuses"), key+".statuses", "unknown status %q (known: %s)", s, strings.Join(pipelineStatuses, ", "))
			}
		}
		for _, s := range r.Sources {
			if !slices.Contains(pipelineSources, s) {
				d.fail(d.lineOf(key+".sources"), key+".sources", "unknown source %q (known: %s)", s, strings.Join(pipelineSources, ", "))
			}
		}
	}
	for i, b := range p.DeployButtons {
		key := index(k+".deploy_buttons", i)
		if b.Project == "" {
			d.fail(d.lineOf(key), key+".project", "is required")
		}
		for _, g := range b.Workflows {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				d.fail(d.lineOf(key+".workflows"), key+".workflows", "glob %q: want a workflow name or pattern (CI, \"Deploy*\")", g)
			}
		}
		if a, ok := c.Apps[b.App]; !ok {
			d.fail(d.lineOf(key), key+".app", "unknown app %q", b.App)
		} else if _, ok := a.Envs[b.Env]; !ok {
			d.fail(d.lineOf(key), key+".env", "app %q has no env %q", b.App, b.Env)
		}
	}
}

func (d *decoder) validateChat(c *Config) {
	d.validateTelegram(c)
	d.validateSlack(c)
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

func (d *decoder) validateEnv(c *Config, key, name string, e Env) {
	d.checkName(key, name)
	if slices.Contains(cmds.ReservedEnvNames, name) {
		d.fail(d.lineOf(key), key, "env name %q is reserved: %s are whole permissions, and an env of that name would read as their scope; pick another name",
			name, strings.Join(specialPermissions, " and "))
	}
	switch e.Driver {
	case "":
		d.fail(d.lineOf(key+".driver"), key+".driver", "is required (local or ssh)")
	case "local":
		if e.SSH != nil {
			d.fail(d.lineOf(key+".ssh"), key+".ssh", "the local driver takes no ssh block")
		}
	case "ssh":
		if e.SSH == nil {
			d.fail(d.lineOf(key+".ssh"), key+".ssh", "the ssh driver needs an ssh block with hosts, user, key_file and known_hosts")
		} else {
			d.validateSSH(key+".ssh", *e.SSH)
		}
	case "dokploy":
		d.validateDokploy(c, key, e)
		return
	default:
		d.fail(d.lineOf(key+".driver"), key+".driver", "unknown driver %q (known: local, ssh, dokploy)", e.Driver)
	}
	if e.Dokploy != nil {
		d.fail(d.lineOf(key+".dokploy"), key+".dokploy", "only the dokploy driver takes a dokploy block")
	}

	pk := key + ".path"
	switch {
	case strings.TrimSpace(e.Path) == "":
		d.fail(d.lineOf(pk), pk, "is required")
	case e.Driver == "ssh" && !strings.HasPrefix(e.Path, "/"):
		// A relative remote path would silently depend on the SSH user's home.
		d.fail(d.lineOf(pk), pk, "must be absolute for the ssh driver, not %q", e.Path)
	default:
		d.plainPath(pk, e.Path)
	}
	d.atLeast(key+".keep_releases", e.KeepReleases, 1)
	d.validateFetch(key+".fetch", e.Fetch)

	for i, s := range e.Shared {
		k := index(key+".shared", i)
		if err := checkShared(s); err != nil {
			d.fail(d.lineOf(k), k, "%v", err)
		}
	}
	d.commands(key+".build", e.Build)
	d.commands(key+".migrate", e.Migrate)
	d.commands(key+".restart", e.Restart)
	d.positive(key+".step_timeout", e.StepTimeout)
	d.validateHealth(key+".health", e.Health)
	d.validateLogs(key+".logs", e.Logs)

	d.validateApproval(c, key, e)
	if e.Backup != nil {
		d.validateBackup(key+".backup", *e.Backup, e.Driver == "local")
	} else if e.BackupBeforeDeploy {
		d.fail(d.lineOf(key+".backup_before_deploy"), key+".backup_before_deploy", "needs a backup: block on the env")
	}
}

func (d *decoder) validateApproval(c *Config, key string, e Env) {
	ak := key + ".approval"
	for i, r := range e.Approval.ApproverRoles {
		k := index(ak+".approver_roles", i)
		if _, ok := c.Roles[r]; !ok {
			d.fail(d.lineOf(k), k, "unknown role %q%s", r, known(sortedKeys(c.Roles)))
		}
	}
	d.positive(ak+".ttl", e.Approval.TTL)
}

// dokployID is what Dokploy's ids look like (nanoid: letters, digits, _ -).
var dokployID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateDokploy checks a dokploy env: Dokploy builds and runs the app, so
// path, fetch and commands do not apply.
func (d *decoder) validateDokploy(c *Config, key string, e Env) {
	dk := e.Dokploy
	if dk == nil {
		d.fail(d.lineOf(key+".dokploy"), key+".dokploy", "the dokploy driver needs a dokploy block with base_url, api_key and compose_id or application_id")
		return
	}
	k := key + ".dokploy"
	if d.brokenUnder(k) {
		return
	}
	if u, err := url.Parse(dk.BaseURL); dk.BaseURL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		d.fail(d.lineOf(k+".base_url"), k+".base_url", "must be Dokploy's API URL, like https://dokploy.example.com/api")
	} else if u.Scheme == "http" && !slices.Contains([]string{"127.0.0.1", "localhost", "::1"}, u.Hostname()) {
		d.fail(d.lineOf(k+".base_url"), k+".base_url", "must use https: the API key would travel in clear")
	}
	if dk.APIKey.IsZero() {
		d.fail(d.lineOf(k), k+".api_key", "is required (write ${DOKPLOY_API_KEY})")
	}
	switch {
	case dk.ComposeID == "" && dk.ApplicationID == "":
		d.fail(d.lineOf(k), k, "needs compose_id or application_id")
	case dk.ComposeID != "" && dk.ApplicationID != "":
		d.fail(d.lineOf(k), k, "takes compose_id or application_id, not both")
	}
	for name, id := range map[string]string{"compose_id": dk.ComposeID, "application_id": dk.ApplicationID, "backup_id": dk.BackupID} {
		if id != "" && !dokployID.MatchString(id) {
			d.fail(d.lineOf(k+"."+name), k+"."+name, "%q is not a Dokploy id", id)
		}
	}
	d.positive(k+".poll_interval", dk.PollInterval)
	d.positive(k+".poll_deadline", dk.PollDeadline)
	d.positive(k+".backup_timeout", dk.BackupTimeout)
	d.positive(k+".queue_grace", dk.QueueGrace)
	for _, f := range []struct {
		name string
		set  bool
	}{{"ssh", e.SSH != nil}, {"path", e.Path != ""}, {"fetch", e.Fetch != (Fetch{})}, {"build", len(e.Build) > 0},
		{"migrate", len(e.Migrate) > 0}, {"restart", len(e.Restart) > 0}, {"shared", len(e.Shared) > 0},
		{"backup", e.Backup != nil}, {"health.command", len(e.Health.Command) > 0}} {
		if f.set {
			d.fail(d.lineOf(key+"."+f.name), key+"."+f.name, "does not apply to the dokploy driver (Dokploy builds and runs the app; backups use dokploy.backup_id)")
		}
	}
	if e.BackupBeforeDeploy && dk.BackupID == "" {
		d.fail(d.lineOf(key+".backup_before_deploy"), key+".backup_before_deploy", "needs dokploy.backup_id")
	}
	if e.Health.URL != "" {
		d.validateHealth(key+".health", e.Health)
	}
	d.validateApproval(c, key, e)
}

// dbNamePattern is what a database name may be: it is quoted in SQL, but
// an odd name is far more likely a typo than a real database.
var dbNamePattern = regexp.MustCompile(`^[A-Za-z0-9_$-]{1,63}$`)

// validateBackup checks a backup block. The local driver may use paths
// relative to the bot's working directory, like its other paths.
func (d *decoder) validateBackup(key string, b Backup, local bool) {
	if d.brokenUnder(key) {
		return
	}
	absolute := func(k, p string) bool {
		rel := strings.TrimPrefix(p, "./")
		switch {
		case local && !strings.HasPrefix(p, "/") && rel != "" && path.Clean(rel) == rel && rel != "." && !strings.HasPrefix(rel, "../"):
			return true
		case !strings.HasPrefix(p, "/"):
			d.fail(d.lineOf(k), k, "must be an absolute path, not %q", p)
		case path.Clean(p) != p || p == "/":
			d.fail(d.lineOf(k), k, "%q must be clean and not /", p)
		case strings.Contains(p, "{{"):
			d.fail(d.lineOf(k), k, "templates ({{...}}) are not expanded here")
		default:
			return true
		}
		return false
	}
	if b.Dir == "" {
		d.fail(d.lineOf(key), key+".dir", "is required (where backups are kept on the host)")
	} else if absolute(key+".dir", b.Dir) && strings.ContainsAny(b.Dir, " \t\n;'\"\\") {
		// The MySQL client's source command takes the dump's path unquoted.
		d.fail(d.lineOf(key+".dir"), key+".dir", "%q must not contain spaces, quotes, ';' or '\\'", b.Dir)
	}
	if len(b.Paths) == 0 && len(b.Databases) == 0 {
		d.fail(d.lineOf(key), key, "needs paths or databases to back up")
	}
	for i, p := range b.Paths {
		k := index(key+".paths", i)
		dir, p := strings.TrimPrefix(b.Dir, "./"), strings.TrimPrefix(p, "./")
		if absolute(k, p) && dir != "" && (p == dir || strings.HasPrefix(dir+"/", p+"/") || strings.HasPrefix(p+"/", dir+"/")) {
			d.fail(d.lineOf(k), k, "%q overlaps the backup dir %q; a backup would archive its own backups", p, b.Dir)
		}
		if strings.ContainsAny(p, " \t\n") {
			d.fail(d.lineOf(k), k, "%q must not contain whitespace", p)
		}
	}
	seen := map[string]bool{}
	for i, db := range b.Databases {
		k := index(key+".databases", i)
		switch {
		case !deploy.ValidName(db.Name):
			d.fail(d.lineOf(k+".name"), k+".name", "is required and must match %s", deploy.NamePattern)
		case seen[db.Name]:
			d.fail(d.lineOf(k+".name"), k+".name", "%q is used twice", db.Name)
		}
		seen[db.Name] = true
		switch db.Engine {
		case "mysql", "mariadb", "postgres":
		case "":
			d.fail(d.lineOf(k), k+".engine", "is required (mysql, mariadb or postgres)")
		default:
			d.fail(d.lineOf(k+".engine"), k+".engine", "unknown engine %q (known: mysql, mariadb, postgres)", db.Engine)
		}
		if !dbNamePattern.MatchString(db.Database) {
			d.fail(d.lineOf(k), k+".database", "is required: letters, digits, _ $ - (got %q)", db.Database)
		}
		if db.User == "" || strings.ContainsAny(db.User, " \t\n:") {
			d.fail(d.lineOf(k), k+".user", "is required and must not contain spaces or ':'")
		}
		if db.Port < 0 || db.Port > 65535 {
			d.fail(d.lineOf(k+".port"), k+".port", "must be a port number")
		}
		if strings.HasPrefix(db.Host, "-") || strings.ContainsAny(db.Host, " \t\n") {
			d.fail(d.lineOf(k+".host"), k+".host", "%q is not a host name", db.Host)
		}
	}
	if b.KeepDays < 0 {
		d.fail(d.lineOf(key+".keep_days"), key+".keep_days", "must be 0 (keep all) or more")
	}
	if b.Keep < 0 {
		d.fail(d.lineOf(key+".keep"), key+".keep", "must be 0 (no limit) or more")
	}
	d.positive(key+".timeout", b.Timeout)
	for _, s := range []struct{ k, spec string }{{key + ".schedule", b.Schedule}, {key + ".drill_schedule", b.DrillSchedule}} {
		if s.spec == "" {
			continue
		}
		if _, err := cron.ParseStandard(s.spec); err != nil {
			d.fail(d.lineOf(s.k), s.k, "is not a cron spec (\"0 3 * * *\", \"@daily\"): %v", err)
		}
	}
}

// plainPath refuses template syntax where drivers do not expand it, so a
// literal "{{app}}" directory is never created by mistake.
func (d *decoder) plainPath(key, s string) {
	if strings.Contains(s, "{{") {
		d.fail(d.lineOf(key), key, "templates ({{...}}) are not expanded here")
	}
}

func (d *decoder) validateFetch(key string, f Fetch) {
	switch {
	case d.brokenUnder(key):
	case f.Git == "" && f.Copy == "" && f.Artifact == "":
		d.fail(d.lineOf(key), key, "needs git (a repository URL), copy (a directory) or artifact (a .tar.gz on the bot's machine)")
	case countSet(f.Git, f.Copy, f.Artifact) > 1:
		d.fail(d.lineOf(key), key, "takes one of git, copy or artifact")
	case f.Artifact != "" && !strings.HasPrefix(f.Artifact, "/"):
		d.fail(d.lineOf(key+".artifact"), key+".artifact", "must be an absolute path on the bot's machine")
	case f.Artifact != "" && strings.Contains(strings.ReplaceAll(f.Artifact, "{{ref}}", ""), "{{"):
		d.fail(d.lineOf(key+".artifact"), key+".artifact", "may use only {{ref}}")
	case strings.HasPrefix(f.Git, "-"):
		// git would read it as an option.
		d.fail(d.lineOf(key+".git"), key+".git", "must not start with '-'")
	}
	d.plainPath(key+".git", f.Git)
	d.plainPath(key+".copy", f.Copy)
	if f.Ref != "" {
		if err := deploy.ValidateRef(f.Ref); err != nil {
			d.fail(d.lineOf(key+".ref"), key+".ref", "%v", err)
		}
	}
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

func checkShared(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("must not be empty")
	case strings.HasPrefix(s, "/"):
		return fmt.Errorf("%q must be relative to the shared directory", s)
	case strings.Contains(s, "{{"):
		return fmt.Errorf("templates ({{...}}) are not expanded here")
	case path.Clean(s) == ".":
		return fmt.Errorf("%q must name a file or directory inside the shared directory", s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return fmt.Errorf("%q must not contain '..'", s)
		}
	}
	return nil
}

func (d *decoder) commands(key string, argvs [][]string) {
	for i, argv := range argvs {
		d.argv(index(key, i), argv, false)
	}
}

func (d *decoder) argv(key string, argv []string, allowLines bool) {
	if len(argv) == 0 {
		d.fail(d.lineOf(key), key, "a command needs at least one word")
		return
	}
	if strings.TrimSpace(argv[0]) == "" {
		d.fail(d.lineOf(key), key, "the program name (first word) must not be empty")
	}
	for j, w := range argv {
		k := index(key, j)
		if err := checkTemplate(w, allowLines); err != nil {
			d.fail(d.lineOf(k), k, "%v", err)
		}
	}
}

func checkTemplate(s string, allowLines bool) error {
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			return nil
		}
		end := strings.Index(s[i+2:], "}}")
		if end < 0 {
			return fmt.Errorf("unclosed {{ in %q", s)
		}
		name := s[i+2 : i+2+end]
		switch {
		case !slices.Contains(templateVars, name):
			return fmt.Errorf("unknown template variable {{%s}} (known: %s)", name, knownTemplates(allowLines))
		case name == "lines" && !allowLines:
			return fmt.Errorf("{{lines}} is only available in logs.command")
		}
		s = s[i+2+end+2:]
	}
}

func knownTemplates(allowLines bool) string {
	var out []string
	for _, v := range templateVars {
		if v != "lines" || allowLines {
			out = append(out, "{{"+v+"}}")
		}
	}
	return strings.Join(out, " ")
}

func (d *decoder) validateHealth(key string, h Health) {
	switch {
	case d.brokenUnder(key):
	case h.URL == "" && len(h.Command) == 0:
		d.fail(d.lineOf(key), key, "needs url or command")
	case h.URL != "" && len(h.Command) > 0:
		d.fail(d.lineOf(key+".command"), key, "takes url or command, not both")
	case h.URL != "":
		k := key + ".url"
		if err := checkTemplate(h.URL, false); err != nil {
			d.fail(d.lineOf(k), k, "%v", err)
			break
		}
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.fail(d.lineOf(k), k, "must be an http:// or https:// URL, not %q", redactURL(h.URL))
		}
	default:
		d.argv(key+".command", h.Command, false)
	}
	if h.ExpectStatus < 100 || h.ExpectStatus > 599 {
		d.fail(d.lineOf(key+".expect_status"), key+".expect_status", "must be an HTTP status (100-599), not %d", h.ExpectStatus)
	}
	d.atLeast(key+".retries", h.Retries, 1)
	d.positive(key+".interval", h.Interval)
	d.positive(key+".timeout", h.Timeout)
}

func (d *decoder) validateLogs(key string, l Logs) {
	if len(l.Command) > 0 && l.File != "" {
		d.fail(d.lineOf(key+".file"), key, "takes command or file, not both")
	}
	if l.Command != nil {
		d.argv(key+".command", l.Command, true)
	}
	if err := checkTemplate(l.File, false); err != nil {
		d.fail(d.lineOf(key+".file"), key+".file", "%v", err)
	}
	d.atLeast(key+".max_lines", l.MaxLines, 1)
	d.atLeast(key+".max_bytes", l.MaxBytes, 1)
}

func (d *decoder) validateSSH(key string, s SSH) {
	hk := key + ".hosts"
	if len(s.Hosts) == 0 {
		d.fail(d.lineOf(hk), hk, "at least one host is required")
	}
	seen := map[string]bool{}
	for i, h := range s.Hosts {
		k := index(hk, i)
		if err := checkHost(h); err != nil {
			d.fail(d.lineOf(k), k, "%v", err)
			continue
		}
		if seen[h] {
			d.fail(d.lineOf(k), k, "host %q is listed twice", h)
		}
		seen[h] = true
	}
	switch {
	case s.User == "":
		d.fail(d.lineOf(key+".user"), key+".user", "is required")
	case !sshUserPattern.MatchString(s.User):
		d.fail(d.lineOf(key+".user"), key+".user", "%q is not a valid user name", s.User)
	}
	if strings.TrimSpace(s.KeyFile) == "" {
		d.fail(d.lineOf(key+".key_file"), key+".key_file", "is required")
	}
	if strings.TrimSpace(s.KnownHosts) == "" {
		// Host keys are always verified; there is no "accept any key" mode.
		d.fail(d.lineOf(key+".known_hosts"), key+".known_hosts", "is required (a pinned known_hosts file)")
	}
	d.atLeast(key+".parallel", s.Parallel, 1)
	d.positive(key+".connect_timeout", s.ConnectTimeout)
}

// checkHost accepts "host", "host:port", an IP address, or "[ipv6]:port".
func checkHost(h string) error {
	host := h
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		hh, port, err := net.SplitHostPort(h)
		if err != nil {
			return fmt.Errorf("host %q must be host or host:port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("host %q has an invalid port %q", h, port)
		}
		host = hh
	}
	if net.ParseIP(host) == nil && !hostnamePattern.MatchString(host) {
		return fmt.Errorf("host %q is not a host name or IP address", h)
	}
	return nil
}

func known(names []string) string {
	if len(names) == 0 {
		return " (none defined)"
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}
