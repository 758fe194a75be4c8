package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// This file is the YAML schema: one fields map per block, keys in
// snake_case. A key missing here is an "unknown key" error.

func (d *decoder) config(n *yaml.Node, c *Config) {
	d.lines[""] = n.Line
	d.object(n, "", fields{
		"bot":  func(v *yaml.Node, k string) { d.bot(v, k, &c.Bot) },
		"chat": func(v *yaml.Node, k string) { d.chat(v, k, &c.Chat) },
		"http": func(v *yaml.Node, k string) {
			d.object(v, k, fields{
				"listen": func(v *yaml.Node, k string) { d.str(v, k, &c.HTTP.Listen) },
			})
		},
		"users": func(v *yaml.Node, k string) {
			d.named(v, k, func(name string, v *yaml.Node, k string) {
				var u User
				d.object(v, k, fields{
					"identities": func(v *yaml.Node, k string) { d.strs(v, k, &u.Identities) },
					"roles":      func(v *yaml.Node, k string) { d.strs(v, k, &u.Roles) },
				})
				c.Users[name] = u
			})
		},
		"roles": func(v *yaml.Node, k string) {
			d.named(v, k, func(name string, v *yaml.Node, k string) {
				var r Role
				d.object(v, k, fields{
					"permissions": func(v *yaml.Node, k string) { d.strs(v, k, &r.Permissions) },
				})
				c.Roles[name] = r
			})
		},
		"pipelines": func(v *yaml.Node, k string) { d.pipelines(v, k, &c.Pipelines) },
		"api":       func(v *yaml.Node, k string) { d.api(v, k, &c.API) },
		"mcp":       func(v *yaml.Node, k string) { d.mcp(v, k, &c.MCP) },
		"insights":  func(v *yaml.Node, k string) { d.insights(v, k, &c.Insights) },
		"apps": func(v *yaml.Node, k string) {
			d.named(v, k, func(name string, v *yaml.Node, k string) {
				c.Apps[name] = d.app(v, k)
			})
		},
	})
}

func (d *decoder) bot(n *yaml.Node, path string, b *Bot) {
	d.object(n, path, fields{
		"data_dir":         func(v *yaml.Node, k string) { d.str(v, k, &b.DataDir) },
		"database":         func(v *yaml.Node, k string) { d.str(v, k, &b.Database) },
		"job_timeout":      func(v *yaml.Node, k string) { d.duration(v, k, &b.JobTimeout) },
		"shutdown_timeout": func(v *yaml.Node, k string) { d.duration(v, k, &b.ShutdownTimeout) },
		"output_lines":     func(v *yaml.Node, k string) { d.int(v, k, &b.OutputLines) },
	})
}

func (d *decoder) chat(n *yaml.Node, path string, c *Chat) {
	d.object(n, path, fields{
		"shell": func(v *yaml.Node, k string) {
			if isNull(d.resolve(v)) {
				return
			}
			s := &Shell{}
			d.object(v, k, fields{
				"enabled": func(v *yaml.Node, k string) { d.bool(v, k, &s.Enabled) },
				"user":    func(v *yaml.Node, k string) { d.str(v, k, &s.User) },
			})
			c.Shell = s
		},
		"telegram": func(v *yaml.Node, k string) {
			if isNull(d.resolve(v)) {
				return
			}
			t := new(Telegram)
			*t = defaultTelegram()
			var token, secret string
			var chats []string
			d.object(v, k, fields{
				"enabled":        func(v *yaml.Node, k string) { d.bool(v, k, &t.Enabled) },
				"token":          func(v *yaml.Node, k string) { d.str(v, k, &token) },
				"api_url":        func(v *yaml.Node, k string) { d.str(v, k, &t.APIURL) },
				"mode":           func(v *yaml.Node, k string) { d.str(v, k, &t.Mode) },
				"webhook_url":    func(v *yaml.Node, k string) { d.str(v, k, &t.WebhookURL) },
				"webhook_secret": func(v *yaml.Node, k string) { d.str(v, k, &secret) },
				"chats": func(v *yaml.Node, k string) {
					d.strs(v, k, &chats)
					for i, c := range chats {
						id, err := strconv.ParseInt(c, 10, 64)
						if err != nil {
							d.fail(v.Line, fmt.Sprintf("%s[%d]", k, i), "%q is not a Telegram chat id (a number; groups are negative)", c)
							continue
						}
						t.Chats = append(t.Chats, id)
					}
				},
			})
			t.Token, t.WebhookSecret = audit.NewSecret(token), audit.NewSecret(secret)
			c.Telegram = t
		},
		"slack": func(v *yaml.Node, k string) {
			if isNull(d.resolve(v)) {
				return
			}
			sl := new(Slack)
			*sl = defaultSlack()
			var bot, app, signing string
			d.object(v, k, fields{
				"enabled":         func(v *yaml.Node, k string) { d.bool(v, k, &sl.Enabled) },
				"mode":            func(v *yaml.Node, k string) { d.str(v, k, &sl.Mode) },
				"bot_token":       func(v *yaml.Node, k string) { d.str(v, k, &bot) },
				"app_token":       func(v *yaml.Node, k string) { d.str(v, k, &app) },
				"signing_secret":  func(v *yaml.Node, k string) { d.str(v, k, &signing) },
				"api_url":         func(v *yaml.Node, k string) { d.str(v, k, &sl.APIURL) },
				"path":            func(v *yaml.Node, k string) { d.str(v, k, &sl.Path) },
				"channels":        func(v *yaml.Node, k string) { d.strs(v, k, &sl.Channels) },
				"direct_messages": func(v *yaml.Node, k string) { d.bool(v, k, &sl.DirectMessages) },
			})
			sl.BotToken, sl.AppToken, sl.SigningSecret = audit.NewSecret(bot), audit.NewSecret(app), audit.NewSecret(signing)
			c.Slack = sl
		},
	})
}

func (d *decoder) app(n *yaml.Node, path string) App {
	a := App{Envs: map[string]Env{}}
	var defaults, envs *yaml.Node
	envsKey := ""
	d.object(n, path, fields{
		"description": func(v *yaml.Node, k string) { d.str(v, k, &a.Description) },
		"project":     func(v *yaml.Node, k string) { d.str(v, k, &a.Project) },
		// defaults: keys every env inherits (see inherit). Decoded on its
		// own first, so a typo in it is reported once, under defaults.
		"defaults": func(v *yaml.Node, k string) {
			d.env(v, k)
			if r := d.resolve(v); r.Kind == yaml.MappingNode {
				defaults = v
			}
		},
		// Envs are decoded after the loop: defaults may be written below them.
		"envs": func(v *yaml.Node, k string) { envs, envsKey = v, k },
	})
	if envs != nil {
		d.named(envs, envsKey, func(name string, v *yaml.Node, k string) {
			if defaults != nil {
				v = d.inherit(defaults, v, k)
				d.resolved[strings.TrimPrefix(path, "apps.")+"/"+name] = v
			}
			a.Envs[name] = d.env(v, k)
		})
	}
	return a
}

func (d *decoder) env(n *yaml.Node, path string) Env {
	e := defaultEnv()
	d.object(n, path, fields{
		"driver":        func(v *yaml.Node, k string) { d.str(v, k, &e.Driver) },
		"path":          func(v *yaml.Node, k string) { d.str(v, k, &e.Path) },
		"keep_releases": func(v *yaml.Node, k string) { d.int(v, k, &e.KeepReleases) },
		"fetch": func(v *yaml.Node, k string) {
			d.object(v, k, fields{
				"git":      func(v *yaml.Node, k string) { d.str(v, k, &e.Fetch.Git) },
				"ref":      func(v *yaml.Node, k string) { d.str(v, k, &e.Fetch.Ref) },
				"copy":     func(v *yaml.Node, k string) { d.str(v, k, &e.Fetch.Copy) },
				"artifact": func(v *yaml.Node, k string) { d.str(v, k, &e.Fetch.Artifact) },
			})
		},
		"shared":       func(v *yaml.Node, k string) { d.strs(v, k, &e.Shared) },
		"build":        func(v *yaml.Node, k string) { d.argvs(v, k, &e.Build) },
		"migrate":      func(v *yaml.Node, k string) { d.argvs(v, k, &e.Migrate) },
		"restart":      func(v *yaml.Node, k string) { d.argvs(v, k, &e.Restart) },
		"step_timeout": func(v *yaml.Node, k string) { d.duration(v, k, &e.StepTimeout) },
		"health": func(v *yaml.Node, k string) {
			h := &e.Health
			d.object(v, k, fields{
				"url":           func(v *yaml.Node, k string) { d.str(v, k, &h.URL) },
				"command":       func(v *yaml.Node, k string) { d.strs(v, k, &h.Command) },
				"expect_status": func(v *yaml.Node, k string) { d.int(v, k, &h.ExpectStatus) },
				"expect_body":   func(v *yaml.Node, k string) { d.str(v, k, &h.ExpectBody) },
				"retries":       func(v *yaml.Node, k string) { d.int(v, k, &h.Retries) },
				"interval":      func(v *yaml.Node, k string) { d.duration(v, k, &h.Interval) },
				"timeout":       func(v *yaml.Node, k string) { d.duration(v, k, &h.Timeout) },
			})
		},
		"logs": func(v *yaml.Node, k string) {
			l := &e.Logs
			d.object(v, k, fields{
				"command":   func(v *yaml.Node, k string) { d.strs(v, k, &l.Command) },
				"file":      func(v *yaml.Node, k string) { d.str(v, k, &l.File) },
				"max_lines": func(v *yaml.Node, k string) { d.int(v, k, &l.MaxLines) },
				"max_bytes": func(v *yaml.Node, k string) { d.int(v, k, &l.MaxBytes) },
			})
		},
		"approval": func(v *yaml.Node, k string) {
			a := &e.Approval
			d.object(v, k, fields{
				"required":       func(v *yaml.Node, k string) { d.bool(v, k, &a.Required) },
				"approver_roles": func(v *yaml.Node, k string) { d.strs(v, k, &a.ApproverRoles) },
				"ttl":            func(v *yaml.Node, k string) { d.duration(v, k, &a.TTL) },
			})
		},
		"backup_before_deploy": func(v *yaml.Node, k string) { d.bool(v, k, &e.BackupBeforeDeploy) },
		"lock": func(v *yaml.Node, k string) {
			d.object(v, k, fields{
				"default_ttl": func(v *yaml.Node, k string) {
					d.duration(v, k, &e.Lock.DefaultTTL)
					if t := e.Lock.DefaultTTL.Duration; t != 0 && (t < time.Second || t > deploy.MaxLockTTL) {
						d.fail(v.Line, k, "must be from 1s to %s (or left out: locks never expire)", deploy.FormatDuration(deploy.MaxLockTTL))
					}
				},
			})
		},
		"dokploy": func(v *yaml.Node, k string) {
			if isNull(d.resolve(v)) {
				return
			}
			dk := new(Dokploy)
			*dk = defaultDokploy()
			var key string
			d.object(v, k, fields{
				"base_url":       func(v *yaml.Node, k string) { d.str(v, k, &dk.BaseURL) },
				"api_key":        func(v *yaml.Node, k string) { d.str(v, k, &key) },
				"compose_id":     func(v *yaml.Node, k string) { d.str(v, k, &dk.ComposeID) },
				"application_id": func(v *yaml.Node, k string) { d.str(v, k, &dk.ApplicationID) },
				"set_branch":     func(v *yaml.Node, k string) { d.bool(v, k, &dk.SetBranch) },
				"backup_id":      func(v *yaml.Node, k string) { d.str(v, k, &dk.BackupID) },
				"poll_interval":  func(v *yaml.Node, k string) { d.duration(v, k, &dk.PollInterval) },
				"poll_deadline":  func(v *yaml.Node, k string) { d.duration(v, k, &dk.PollDeadline) },
				"backup_timeout": func(v *yaml.Node, k string) { d.duration(v, k, &dk.BackupTimeout) },
				"queue_grace":    func(v *yaml.Node, k string) { d.duration(v, k, &dk.QueueGrace) },
				"logs_since":     func(v *yaml.Node, k string) { d.duration(v, k, &dk.LogsSince) },
			})
			if dk.QueueGrace.Duration == 0 {
				dk.QueueGrace = dk.PollDeadline
			}
			dk.APIKey = audit.NewSecret(key)
			e.Dokploy = dk
		},
		"backup": func(v *yaml.Node, k string) {
			if isNull(d.resolve(v)) {
				return
			}
			e.Backup = d.backup(v, k)
		},
		"ssh": func(v *yaml.Node, k string) {
			if isNull(d.resolve(v)) {
				return
			}
			s := defaultSSH()
			d.object(v, k, fields{
				"hosts":           func(v *yaml.Node, k string) { d.strs(v, k, &s.Hosts) },
				"user":            func(v *yaml.Node, k string) { d.str(v, k, &s.User) },
				"key_file":        func(v *yaml.Node, k string) { d.str(v, k, &s.KeyFile) },
				"known_hosts":     func(v *yaml.Node, k string) { d.str(v, k, &s.KnownHosts) },
				"parallel":        func(v *yaml.Node, k string) { d.int(v, k, &s.Parallel) },
				"connect_timeout": func(v *yaml.Node, k string) { d.duration(v, k, &s.ConnectTimeout) },
				"keepalive":       func(v *yaml.Node, k string) { d.duration(v, k, &s.Keepalive) },
			})
			e.SSH = &s
		},
	})
	return e
}

func (d *decoder) pipelines(n *yaml.Node, path string, p *Pipelines) {
	p.DokployHeader, p.MaxAttempts = defaultDokployHeader, defaultMaxAttempts
	secret := func(dst *audit.Secret) func(v *yaml.Node, k string) {
		return func(v *yaml.Node, k string) {
			var s string
			d.str(v, k, &s)
			if s == "" {
				// Written but empty (an unset variable behind it): fail
				// closed rather than serve the source unverified or silently not at all.
				d.fail(v.Line, k, "is empty; set it or remove the key to disable this source")
			}
			*dst = audit.NewSecret(s)
		}
	}
	d.object(n, path, fields{
		"gitlab_token":   secret(&p.GitLabToken),
		"github_secret":  secret(&p.GitHubSecret),
		"dokploy_secret": secret(&p.DokploySecret),
		"generic_secret": secret(&p.GenericSecret),
		"dokploy_header": func(v *yaml.Node, k string) { d.str(v, k, &p.DokployHeader) },
		"admin_chat":     func(v *yaml.Node, k string) { d.str(v, k, &p.AdminChat) },
		"max_attempts":   func(v *yaml.Node, k string) { d.int(v, k, &p.MaxAttempts) },
		"routes": func(v *yaml.Node, k string) {
			for i, v := range d.list(v, k) {
				k := index(k, i)
				var r PipelineRoute
				d.object(v, k, fields{
					"sources":   func(v *yaml.Node, k string) { d.strs(v, k, &r.Sources) },
					"projects":  func(v *yaml.Node, k string) { d.strs(v, k, &r.Projects) },
					"refs":      func(v *yaml.Node, k string) { d.strs(v, k, &r.Refs) },
					"statuses":  func(v *yaml.Node, k string) { d.strs(v, k, &r.Statuses) },
					"workflows": func(v *yaml.Node, k string) { d.strs(v, k, &r.Workflows) },
					"chats":     func(v *yaml.Node, k string) { d.strs(v, k, &r.Chats) },
				})
				p.Routes = append(p.Routes, r)
			}
		},
		"auto_deploy": func(v *yaml.Node, k string) { d.autoDeploy(v, k, p) },
		"deploy_buttons": func(v *yaml.Node, k string) {
			for i, v := range d.list(v, k) {
				k := index(k, i)
				var b DeployButton
				d.object(v, k, fields{
					"project":   func(v *yaml.Node, k string) { d.str(v, k, &b.Project) },
					"ref":       func(v *yaml.Node, k string) { d.str(v, k, &b.Ref) },
					"app":       func(v *yaml.Node, k string) { d.str(v, k, &b.App) },
					"env":       func(v *yaml.Node, k string) { d.str(v, k, &b.Env) },
					"workflows": func(v *yaml.Node, k string) { d.strs(v, k, &b.Workflows) },
				})
				p.DeployButtons = append(p.DeployButtons, b)
			}
		},
	})
}

func (d *decoder) backup(n *yaml.Node, path string) *Backup {
	b := new(Backup)
	*b = defaultBackup()
	d.object(n, path, fields{
		"dir":            func(v *yaml.Node, k string) { d.str(v, k, &b.Dir) },
		"paths":          func(v *yaml.Node, k string) { d.strs(v, k, &b.Paths) },
		"keep_days":      func(v *yaml.Node, k string) { d.int(v, k, &b.KeepDays) },
		"keep":           func(v *yaml.Node, k string) { d.int(v, k, &b.Keep) },
		"timeout":        func(v *yaml.Node, k string) { d.duration(v, k, &b.Timeout) },
		"schedule":       func(v *yaml.Node, k string) { d.str(v, k, &b.Schedule) },
		"drill_schedule": func(v *yaml.Node, k string) { d.str(v, k, &b.DrillSchedule) },
		"databases": func(v *yaml.Node, k string) {
			for i, v := range d.list(v, k) {
				k := index(k, i)
				var db Database
				var pw string
				d.object(v, k, fields{
					"name":     func(v *yaml.Node, k string) { d.str(v, k, &db.Name) },
					"engine":   func(v *yaml.Node, k string) { d.str(v, k, &db.Engine) },
					"host":     func(v *yaml.Node, k string) { d.str(v, k, &db.Host) },
					"port":     func(v *yaml.Node, k string) { d.int(v, k, &db.Port) },
					"user":     func(v *yaml.Node, k string) { d.str(v, k, &db.User) },
					"password": func(v *yaml.Node, k string) { d.str(v, k, &pw) },
					"database": func(v *yaml.Node, k string) { d.str(v, k, &db.Database) },
				})
				db.Password = audit.NewSecret(pw)
				b.Databases = append(b.Databases, db)
			}
		},
	})
	return b
}
