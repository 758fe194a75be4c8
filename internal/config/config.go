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
	"strings"
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

func (b Bot) validate(d *decoder) {
	if strings.TrimSpace(b.DataDir) == "" {
		d.fail(d.lineOf("bot.data_dir"), "bot.data_dir", "must not be empty")
	}
	d.positive("bot.job_timeout", b.JobTimeout)
	d.positive("bot.shutdown_timeout", b.ShutdownTimeout)
	d.atLeast("bot.output_lines", b.OutputLines, 1)
}

// Chat holds the chat platforms.
type Chat struct {
	Shell    *Shell    // nil when the config has no chat.shell block
	Telegram *Telegram // nil when the config has no chat.telegram block
	Slack    *Slack    // nil when the config has no chat.slack block
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

// App is one deployable application.
type App struct {
	Description string
	// Project is the app's CI project ("group/name", "owner/repo"): deploy
	// notices route like its pipelines and thread under the pipeline of
	// the SHA they deploy. Default: the app's name.
	Project string
	Envs    map[string]Env
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
