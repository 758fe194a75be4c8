package config

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	cmds "github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
)

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

func (e Env) validate(d *decoder, c *Config, key, name string) {
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
			e.SSH.validate(d, key+".ssh")
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
	e.Fetch.validate(d, key+".fetch")

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
	e.Health.validate(d, key+".health")
	e.Logs.validate(d, key+".logs")

	e.Approval.validate(d, c, key)
	if e.Backup != nil {
		e.Backup.validate(d, key+".backup", e.Driver == "local")
	} else if e.BackupBeforeDeploy {
		d.fail(d.lineOf(key+".backup_before_deploy"), key+".backup_before_deploy", "needs a backup: block on the env")
	}
}

// Lock is an env's manual-lock rules.
type Lock struct {
	// DefaultTTL is how long a /lock without --for lasts; 0: until unlocked.
	DefaultTTL Duration
}

// Approval is the four-eyes gate of an env.
type Approval struct {
	Required      bool
	ApproverRoles []string
	TTL           Duration
}

func (a Approval) validate(d *decoder, c *Config, key string) {
	ak := key + ".approval"
	for i, r := range a.ApproverRoles {
		k := index(ak+".approver_roles", i)
		if _, ok := c.Roles[r]; !ok {
			d.fail(d.lineOf(k), k, "unknown role %q%s", r, known(sortedKeys(c.Roles)))
		}
	}
	d.positive(ak+".ttl", a.TTL)
}

// Fetch says where a release's files come from: exactly one of Git, Copy or Artifact.
type Fetch struct {
	Git      string
	Ref      string // default ref when a deploy names none
	Copy     string
	Artifact string // absolute .tar.gz path on the bot's machine; may use {{ref}}
}

func (f Fetch) validate(d *decoder, key string) {
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

// plainPath refuses template syntax where drivers do not expand it, so a
// literal "{{app}}" directory is never created by mistake.
func (d *decoder) plainPath(key, s string) {
	if strings.Contains(s, "{{") {
		d.fail(d.lineOf(key), key, "templates ({{...}}) are not expanded here")
	}
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

func (h Health) validate(d *decoder, key string) {
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

// Logs says where /logs reads from.
type Logs struct {
	Command  []string // may use {{lines}}
	File     string
	MaxLines int
	MaxBytes int
}

func (l Logs) validate(d *decoder, key string) {
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
