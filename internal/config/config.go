// Package config loads shipbot's YAML configuration: it expands ${VAR}
// references from the environment, decodes strictly (an unknown key is an
// error naming file:line and the full key path), applies defaults and
// validates everything it can before the bot starts, reporting every problem
// at once so a typo costs one edit-check cycle, not one per mistake.
package config

import (
	"fmt"
	"os"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// Config is a parsed, defaulted and validated configuration.
type Config struct {
	Bot   Bot
	Chat  Chat
	HTTP  HTTP
	Users map[string]User
	Roles map[string]Role
	Apps  map[string]App
	// Pipelines is CI/CD webhook intake and notification routing.
	Pipelines Pipelines
	// API is the HTTP API's tokens (see api.go).
	API API
	// MCP is the endpoint for AI assistants (see mcp.go).
	MCP MCP
	// Insights is the weekly delivery digest.
	Insights Insights
	// Source is the file name the configuration was read from.
	Source string

	fromEnv map[string]bool // see decoder.fromEnv
	// resolved holds, per "app/env" of an app with defaults:, the env's
	// YAML with the defaults applied (see Explain).
	resolved map[string]*yaml.Node
}

// Bot holds process-wide settings.
type Bot struct {
	DataDir         string
	Database        string // empty or unset: DataDir + "/shipbot.db"
	JobTimeout      Duration
	ShutdownTimeout Duration
	OutputLines     int // output lines kept per job
}

// Chat holds the chat platforms.
type Chat struct {
	Shell    *Shell    // nil when the config has no chat.shell block
	Telegram *Telegram // nil when the config has no chat.telegram block
	Slack    *Slack    // nil when the config has no chat.slack block
}

// Slack is the Slack adapter (slack-go): Socket Mode or HTTP.
type Slack struct {
	Enabled bool
	// Mode is "socket" (default: an outbound websocket, no public URL) or
	// "http" (Slack posts to http.listen under Path).
	Mode string
	// BotToken (xoxb-…) calls the Web API; write ${SLACK_BOT_TOKEN}.
	BotToken audit.Secret
	// AppToken (xapp-…, scope connections:write) opens Socket Mode.
	AppToken audit.Secret
	// SigningSecret verifies every request in HTTP mode.
	SigningSecret audit.Secret
	// APIURL is the Web API base, ending in "/"; default https://slack.com/api/.
	APIURL string
	// Path is the HTTP-mode prefix: PATH/commands, PATH/events, PATH/interactivity.
	Path string
	// Channels are the channel ids allowed to use the bot.
	Channels []string
	// DirectMessages lets people use the bot in a DM with it (default true);
	// the policy still decides what each person may do.
	DirectMessages bool
}

// Telegram is the Telegram Bot API adapter.
type Telegram struct {
	Enabled bool
	// Token is the bot token from @BotFather; write ${TELEGRAM_TOKEN}.
	Token audit.Secret
	// APIURL is the Bot API server (a local telegram-bot-api server, or a
	// test fake). Default https://api.telegram.org.
	APIURL string
	// Mode is "polling" (default: no public URL needed) or "webhook".
	Mode string
	// WebhookURL is the public https URL Telegram posts updates to; its
	// path is served on http.listen. Webhook mode only.
	WebhookURL string
	// WebhookSecret is sent back by Telegram in
	// X-Telegram-Bot-Api-Secret-Token; required in webhook mode.
	WebhookSecret audit.Secret
	// Chats are the chat ids allowed to use the bot (groups are negative).
	Chats []int64
}

// HTTP is the one listener for everything HTTP (webhooks, health).
type HTTP struct {
	Listen string // host:port; "" = no HTTP server
}

// Shell is the local terminal chat, for demos and single-box installs.
type Shell struct {
	Enabled bool
	User    string // the config user the shell acts as at start
}

// User is a person: the platform identities that prove it is them, and roles.
type User struct {
	Identities []string // "PLATFORM:ID", e.g. "telegram:123456"
	Roles      []string
}

// Role is a named set of permissions ("deploy:staging", "logs:*", "*").
type Role struct {
	Permissions []string
}

// App is one deployable application.
type App struct {
	Description string
	// Project is the app's CI project ("group/name", "owner/repo"): deploy
	// notices route like its pipelines and thread under the pipeline of
	// the SHA they deploy. Default: the app's name.
	Project string
	Envs    map[string]Env
}

// Pipelines configures webhook sources, routes and deploy buttons. A source
// is enabled by giving its secret; none is served without one.
type Pipelines struct {
	GitLabToken   audit.Secret // X-Gitlab-Token
	GitHubSecret  audit.Secret // HMAC key of X-Hub-Signature-256
	DokploySecret audit.Secret // the value of DokployHeader
	DokployHeader string       // default X-Shipbot-Token
	GenericSecret audit.Secret // HMAC key of X-Shipbot-Signature
	AdminChat     string       // dead letters are reported here
	MaxAttempts   int          // before a notification is dead-lettered; default 10
	Routes        []PipelineRoute
	DeployButtons []DeployButton
	AutoDeploy    []AutoDeploy
}

// PipelineRoute sends matching events to Chats ("telegram:-100123/7", "slack:C0123").
// Workflows (globs) is the GitHub workflow name or GitLab pipeline source.
type PipelineRoute struct {
	Sources, Projects, Refs, Statuses, Workflows []string
	Chats                                        []string
}

// DeployButton offers "Deploy to ENV" on green pipelines of Project at Ref;
// with Workflows (globs: [CI, "Deploy*"]) only on those workflows' runs.
type DeployButton struct {
	Project, Ref, App, Env string
	Workflows              []string
}

// Enabled reports whether any webhook source is configured.
func (p Pipelines) Enabled() bool {
	return !p.GitLabToken.IsZero() || !p.GitHubSecret.IsZero() || !p.DokploySecret.IsZero() || !p.GenericSecret.IsZero()
}

// Env says how one app is released on one environment.
type Env struct {
	Driver       string // "local" or "ssh"
	Path         string
	KeepReleases int
	Fetch        Fetch
	Shared       []string
	Build        [][]string // argv templates
	Migrate      [][]string
	Restart      [][]string
	StepTimeout  Duration
	Health       Health
	Logs         Logs
	Approval     Approval
	SSH          *SSH // required for the ssh driver, forbidden for local
	// Dokploy is required for the dokploy driver, forbidden otherwise.
	Dokploy *Dokploy
	// Backup is nil when the env has no backup: block.
	Backup *Backup
	// BackupBeforeDeploy makes every deploy take a backup first and stop if it fails.
	BackupBeforeDeploy bool
	// Lock holds the env's manual-lock rules.
	Lock Lock
}

// Lock is an env's manual-lock rules.
type Lock struct {
	// DefaultTTL is how long a /lock without --for lasts; 0: until unlocked.
	DefaultTTL Duration
}

// Dokploy is how the dokploy driver reaches the env's service.
type Dokploy struct {
	BaseURL       string       // https://HOST/api
	APIKey        audit.Secret // write ${VAR}
	ComposeID     string       // exactly one of ComposeID and ApplicationID
	ApplicationID string
	// SetBranch lets /deploy APP ENV REF set the service's git branch
	// field to REF first, and a compose rollback set it to the release's
	// recorded branch or tag and deploy it.
	SetBranch     bool
	BackupID      string // the Dokploy backup /backup runs
	PollInterval  Duration
	PollDeadline  Duration
	BackupTimeout Duration
	// QueueGrace is how long a deploy may stay invisible while Dokploy's
	// queueList does not show it waiting (always, before v0.28.3);
	// default PollDeadline.
	QueueGrace Duration
	// LogsSince bounds /logs to lines newer than this; 0 = only the count.
	LogsSince Duration
}

// Backup is an env's backup configuration.
type Backup struct {
	Dir       string   // absolute directory on the (first) host holding one directory per backup
	Paths     []string // absolute paths archived into files.tar.gz
	Databases []Database
	KeepDays  int // backups older than this are pruned; default 30, 0 keeps all
	Keep      int // at most this many are kept; 0 = no count limit
	Timeout   Duration
	// Schedule and DrillSchedule are cron specs ("0 3 * * *", "@daily");
	// empty means none.
	Schedule      string
	DrillSchedule string
}

// Database is one database a backup dumps.
type Database struct {
	Name     string // label, unique in the env
	Engine   string // mysql, mariadb or postgres
	Host     string
	Port     int
	User     string
	Password audit.Secret // write ${VAR}
	Database string
}

// Fetch says where a release's files come from: exactly one of Git, Copy or Artifact.
type Fetch struct {
	Git      string
	Ref      string // default ref when a deploy names none
	Copy     string
	Artifact string // absolute .tar.gz path on the bot's machine; may use {{ref}}
}

// Health says how to tell a release is good after restart.
type Health struct {
	URL          string
	Command      []string
	ExpectStatus int
	ExpectBody   string
	Retries      int
	Interval     Duration
	Timeout      Duration
}

// Logs says where /logs reads from.
type Logs struct {
	Command  []string // may use {{lines}}
	File     string
	MaxLines int
	MaxBytes int
}

// Approval is the four-eyes gate of an env.
type Approval struct {
	Required      bool
	ApproverRoles []string
	TTL           Duration
}

// SSH is how the ssh driver reaches an env's hosts.
type SSH struct {
	Hosts          []string // "host" or "host:port"
	User           string
	KeyFile        string
	KnownHosts     string
	Parallel       int
	ConnectTimeout Duration
	Keepalive      Duration
}

// Duration is a time.Duration written in YAML as "30s", "10m", "1h30m".
type Duration struct{ time.Duration }

// Load reads the file at path and parses it with the process environment.
func Load(path string) (*Config, error) {
	return LoadWith(path, os.LookupEnv)
}

// LoadWith is Load with another variable lookup.
func LoadWith(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path, lookupEnv)
}

// WithoutSecrets is a lookup for commands that need no credential (audit
// verify and export): a variable that is not set reads as a placeholder,
// so an auditor's cron job does not need the chat tokens and API keys.
func WithoutSecrets(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	return "unset-" + name, true
}

// Parse decodes, defaults and validates a configuration. name is used in
// error messages and as Config.Source; lookupEnv resolves ${VAR} references
// (nil means no variable is set). On failure the error is Errors, holding
// every problem found, and the Config is nil.
func Parse(data []byte, name string, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	d := &decoder{file: name, lookup: lookupEnv, lines: map[string]int{}, fromEnv: map[string]bool{}, resolved: map[string]*yaml.Node{}}
	cfg := &Config{
		Bot:    defaultBot(),
		Users:  map[string]User{},
		Roles:  map[string]Role{},
		Apps:   map[string]App{},
		API:    API{Tokens: map[string]audit.Secret{}},
		Source: name,
	}
	root := d.document(data)
	if len(d.errs) > 0 {
		// Nothing was decoded, so validation would only add noise.
		return nil, d.errs
	}
	if root != nil {
		d.config(root, cfg)
	}
	if cfg.Bot.Database == "" {
		cfg.Bot.Database = defaultDatabase(cfg.Bot.DataDir)
	}
	d.validate(cfg)
	cfg.fromEnv = d.fromEnv
	cfg.resolved = d.resolved
	if len(d.errs) > 0 {
		d.errs = d.errs.dedupe()
		d.errs.sort()
		return nil, d.errs
	}
	return cfg, nil
}

// Recipe converts the named env to what the local and SSH drivers run. It
// returns the zero Recipe when app/env does not exist; callers look names up
// in Apps first. Relative paths are kept as written: the drivers resolve them.
func (c *Config) Recipe(app, env string) deploy.Recipe {
	e, ok := c.Apps[app].Envs[env]
	if !ok {
		return deploy.Recipe{}
	}
	return deploy.Recipe{
		App:          app,
		Env:          env,
		Path:         e.Path,
		KeepReleases: e.KeepReleases,
		Fetch: deploy.Fetch{
			GitRepo:    e.Fetch.Git,
			DefaultRef: e.Fetch.Ref,
			CopyFrom:   e.Fetch.Copy,
			Artifact:   e.Fetch.Artifact,
		},
		Shared:      cloneStrings(e.Shared),
		Build:       commands(e.Build),
		Migrate:     commands(e.Migrate),
		Restart:     commands(e.Restart),
		StepTimeout: e.StepTimeout.Duration,
		Health: deploy.Health{
			URL:          e.Health.URL,
			Command:      deploy.Command(cloneStrings(e.Health.Command)),
			ExpectStatus: e.Health.ExpectStatus,
			ExpectBody:   e.Health.ExpectBody,
			Retries:      e.Health.Retries,
			Interval:     e.Health.Interval.Duration,
			Timeout:      e.Health.Timeout.Duration,
		},
		Logs: deploy.LogSource{
			Command:  deploy.Command(cloneStrings(e.Logs.Command)),
			File:     e.Logs.File,
			MaxLines: e.Logs.MaxLines,
			MaxBytes: e.Logs.MaxBytes,
		},
	}
}

// BackupPolicy is the engine's view of an env's backup rules.
func (c *Config) BackupPolicy(app, env string) deploy.BackupPolicy {
	e, ok := c.Apps[app].Envs[env]
	if !ok || e.Backup == nil {
		return deploy.BackupPolicy{BeforeDeploy: ok && e.BackupBeforeDeploy}
	}
	return deploy.BackupPolicy{MaxAge: time.Duration(e.Backup.KeepDays) * 24 * time.Hour, Keep: e.Backup.Keep,
		BeforeDeploy: e.BackupBeforeDeploy}
}

// Secrets are every credential in the configuration, for the redactor.
func (c *Config) Secrets() []audit.Secret {
	var out []audit.Secret
	if t := c.Chat.Telegram; t != nil {
		out = append(out, t.Token, t.WebhookSecret)
	}
	if s := c.Chat.Slack; s != nil {
		out = append(out, s.BotToken, s.AppToken, s.SigningSecret)
	}
	p := c.Pipelines
	out = append(out, p.GitLabToken, p.GitHubSecret, p.DokploySecret, p.GenericSecret)
	out = append(out, c.API.secrets()...)
	for _, a := range sortedKeys(c.Apps) {
		for _, e := range sortedKeys(c.Apps[a].Envs) {
			env := c.Apps[a].Envs[e]
			if env.Dokploy != nil {
				out = append(out, env.Dokploy.APIKey)
			}
			if env.Backup != nil {
				for _, db := range env.Backup.Databases {
					out = append(out, db.Password)
				}
			}
		}
	}
	return out
}

// UserByIdentity returns the config user that owns identity ("shell:alice").
// Validation guarantees at most one user owns an identity.
func (c *Config) UserByIdentity(identity string) (name string, ok bool) {
	for _, n := range sortedKeys(c.Users) {
		for _, id := range c.Users[n].Identities {
			if id == identity {
				return n, true
			}
		}
	}
	return "", false
}

// cloneStrings copies s so a caller that edits a Recipe cannot change the
// Config shared by every job; nil stays nil.
func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

func commands(argvs [][]string) []deploy.Command {
	if argvs == nil {
		return nil
	}
	out := make([]deploy.Command, len(argvs))
	for i, a := range argvs {
		out[i] = deploy.Command(cloneStrings(a))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
