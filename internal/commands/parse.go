package commands

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Command is a parsed, validated command line. Every argument has been checked
// against the pattern of what it names, so nothing else reaches the engine.
type Command struct {
	Name     string
	App      string
	Env      string
	Ref      string        // deploy
	Release  string        // rollback
	Lines    int           // logs
	JobID    int64         // job, cancel
	ID       string        // approve, deny
	Reason   string        // lock
	For      time.Duration // lock --for, extend
	Plan     bool          // deploy --plan
	WithDB   bool          // rollback --with-db
	Redeploy bool          // deploy --redeploy
	Build    bool          // logs --build: the last build's log (Dokploy)
	Verify   bool          // backup verify
	Backup   string        // backup verify, restore: the backup id
	Limit    int           // audit
	User     string        // audit filter
	Args     []string
}

// ParseError is bad input: the message says what is wrong and how to fix it.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return e.Msg }

func perr(format string, a ...any) error { return &ParseError{Msg: fmt.Sprintf(format, a...)} }

type spec struct {
	usage string
	help  string
}

var specs = map[string]spec{
	"help":     {"/help", "this list"},
	"whoami":   {"/whoami", "who shipbot thinks you are, your roles and permissions"},
	"apps":     {"/apps", "apps and envs with their current release and lock"},
	"deploy":   {"/deploy APP ENV [REF] [--plan] [--redeploy]", "deploy REF (or the default) to ENV; --plan shows what would run; --redeploy rebuilds without new code (Dokploy)"},
	"rollback": {"/rollback APP ENV [RELEASE] [--with-db]", "switch back to the previous good release (or the named one); --with-db also restores the database backup taken before the current release (needs approval)"},
	"backup":   {"/backup APP ENV | /backup verify APP ENV ID", "back up files and databases now; verify: checksums plus a restore drill into a scratch database"},
	"stop":     {"/stop APP ENV", "stop the app (drivers that support it, e.g. Dokploy)"},
	"start":    {"/start APP ENV", "start a stopped app"},
	"backups":  {"/backups APP ENV", "backups with time, size, who and last drill"},
	"restore":  {"/restore APP ENV ID", "restore a backup (always needs a second person; takes a safety backup first)"},
	"releases": {"/releases APP ENV", "releases on the target with ref, who, when, state"},
	"status":   {"/status APP ENV", "what is live and healthy"},
	"logs":     {"/logs APP ENV [LINES] [--build]", "the last LINES lines of the app's log; --build: of the last build's log (Dokploy)"},
	"jobs":     {"/jobs", "recent jobs"},
	"job":      {"/job ID", "one job: state, steps, last output"},
	"cancel":   {"/cancel ID", "stop a job"},
	"lock":     {"/lock APP ENV [--for 2h] REASON…", "stop deploys to ENV until unlocked or, with --for (or the env's lock.default_ttl), until it expires"},
	"unlock":   {"/unlock APP ENV", "remove a lock (holder, or lock:force)"},
	"extend":   {"/extend APP ENV [DURATION]", "push an expiring lock's end back (default 1h)"},
	"locks":    {"/locks", "every lock: holder, reason, age, expiry"},
	"pending":  {"/pending", "approvals waiting for a decision"},
	"approve":  {"/approve ID", "approve a pending request (not your own)"},
	"deny":     {"/deny ID", "deny a pending request"},
	"audit":    {"/audit [N] [app=…] [env=…] [user=…]", "the last N audit rows"},
	"stats":    {"/stats [APP] [ENV] [7d|30d|90d]", "delivery figures (DORA) beside the window before, with a chart"},
}

var helpOrder = []string{"help", "whoami", "apps", "deploy", "rollback", "releases", "status", "logs",
	"stop", "start", "backup", "backups", "restore", "jobs", "job", "cancel", "lock", "unlock", "extend", "locks", "pending", "approve", "deny", "audit", "stats"}

var approvalIDPattern = regexp.MustCompile(`^[a-z2-7]{24}$`)

const (
	maxLogLines  = 1000
	maxReasonLen = 200
	maxAuditRows = 200
)

// Parse reads one command line: "/deploy demo staging v1.2", "deploy demo
// staging" or "/deploy@shipbot demo staging". Bad input gets a ParseError
// saying what is wrong; nothing else is returned with it.
func Parse(text string) (Command, error) {
	words := strings.Fields(text)
	if len(words) == 0 {
		return Command{}, perr("empty command; try /help")
	}
	name := strings.TrimPrefix(words[0], "/")
	if at := strings.IndexByte(name, '@'); at >= 0 {
		name = name[:at] // "/deploy@shipbot" in Telegram groups
	}
	name = strings.ToLower(name)
	sp, ok := specs[name]
	if !ok {
		return Command{}, perr("unknown command %q; try /help", clip(words[0]))
	}
	c := Command{Name: name}
	var args []string
	for _, w := range words[1:] {
		if strings.HasPrefix(w, "-") {
			if name == "deploy" && w == "--plan" {
				c.Plan = true
				continue
			}
			if name == "deploy" && w == "--redeploy" {
				c.Redeploy = true
				continue
			}
			if name == "logs" && w == "--build" {
				c.Build = true
				continue
			}
			if name == "rollback" && w == "--with-db" {
				c.WithDB = true
				continue
			}
			if name != "lock" { // a lock reason may contain anything printable
				return Command{}, perr("unknown option %q; usage: %s", clip(w), sp.usage)
			}
		}
		args = append(args, w)
	}
	c.Args = args
	usage := func() error { return perr("usage: %s", sp.usage) }
	switch name {
	case "help", "whoami", "apps", "jobs", "pending", "locks":
		if len(args) != 0 {
			return Command{}, usage()
		}
	case "deploy", "rollback", "releases", "status", "logs", "unlock":
		max := 2
		if name == "deploy" || name == "rollback" || name == "logs" {
			max = 3
		}
		if len(args) < 2 || len(args) > max {
			return Command{}, usage()
		}
		if err := c.appEnv(args); err != nil {
			return Command{}, err
		}
		if len(args) == 3 {
			switch name {
			case "deploy":
				if err := deploy.ValidateRef(args[2]); err != nil {
					return Command{}, &ParseError{Msg: err.Error()}
				}
				c.Ref = args[2]
			case "rollback":
				if !deploy.ValidName(args[2]) {
					return Command{}, perr("release %q is not a release name (see /releases %s %s)", clip(args[2]), c.App, c.Env)
				}
				c.Release = args[2]
			case "logs":
				n, err := strconv.Atoi(args[2])
				if err != nil || n < 1 || n > maxLogLines {
					return Command{}, perr("LINES must be a number from 1 to %d", maxLogLines)
				}
				c.Lines = n
			}
		}
	case "backups", "stop", "start":
		if len(args) != 2 {
			return Command{}, usage()
		}
		if err := c.appEnv(args); err != nil {
			return Command{}, err
		}
	case "backup", "restore":
		rest := args
		if name == "backup" && len(args) > 0 && args[0] == "verify" {
			c.Verify, rest = true, args[1:]
		}
		want := 2
		if name == "restore" || c.Verify {
			want = 3
		}
		if len(rest) != want {
			return Command{}, usage()
		}
		if err := c.appEnv(rest); err != nil {
			return Command{}, err
		}
		if want == 3 {
			if !deploy.ValidName(rest[2]) {
				return Command{}, perr("backup %q is not a backup id (see /backups %s %s)", clip(rest[2]), c.App, c.Env)
			}
			c.Backup = rest[2]
		}
	case "job", "cancel":
		if len(args) != 1 {
			return Command{}, usage()
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(args[0], "#"), 10, 64)
		if err != nil || n < 1 {
			return Command{}, perr("%q is not a job number; usage: %s", clip(args[0]), sp.usage)
		}
		c.JobID = n
	case "approve", "deny":
		if len(args) != 1 {
			return Command{}, usage()
		}
		if !approvalIDPattern.MatchString(args[0]) {
			return Command{}, perr("%q is not an approval id (see /pending)", clip(args[0]))
		}
		c.ID = args[0]
	case "lock":
		if len(args) < 3 {
			return Command{}, perr("usage: %s (a reason is required)", sp.usage)
		}
		if err := c.appEnv(args); err != nil {
			return Command{}, err
		}
		rest := args[2:]
		if d, ok := strings.CutPrefix(rest[0], "--for="); ok {
			rest = append([]string{"--for", d}, rest[1:]...)
		}
		if rest[0] == "--for" {
			if len(rest) < 3 {
				return Command{}, perr("usage: %s (a duration and a reason are required)", sp.usage)
			}
			d, err := ParseTTL(rest[1])
			if err != nil {
				return Command{}, err
			}
			c.For, rest = d, rest[2:]
		}
		c.Reason = cleanReason(strings.Join(rest, " "))
	case "extend":
		if len(args) < 2 || len(args) > 3 {
			return Command{}, usage()
		}
		if err := c.appEnv(args); err != nil {
			return Command{}, err
		}
		c.For = time.Hour
		if len(args) == 3 {
			d, err := ParseTTL(args[2])
			if err != nil {
				return Command{}, err
			}
			c.For = d
		}
	case "stats":
		if err := c.parseStats(args); err != nil {
			return Command{}, err
		}
	case "audit":
		c.Limit = 20
		for _, a := range args {
			if k, v, ok := strings.Cut(a, "="); ok {
				if !deploy.ValidName(v) {
					return Command{}, perr("%s=%q is not a valid name", k, clip(v))
				}
				switch k {
				case "app":
					c.App = v
				case "env":
					c.Env = v
				case "user":
					c.User = v
				default:
					return Command{}, perr("unknown filter %q; use app=, env= or user=", clip(k))
				}
				continue
			}
			n, err := strconv.Atoi(a)
			if err != nil || n < 1 || n > maxAuditRows {
				return Command{}, perr("N must be a number from 1 to %d; usage: %s", maxAuditRows, sp.usage)
			}
			c.Limit = n
		}
	}
	return c, nil
}

func (c *Command) appEnv(args []string) error {
	if !deploy.ValidName(args[0]) {
		return perr("app %q is not a valid name (lowercase letters, digits, . _ -)", clip(args[0]))
	}
	if !deploy.ValidName(args[1]) {
		return perr("env %q is not a valid name (lowercase letters, digits, . _ -)", clip(args[1]))
	}
	c.App, c.Env = args[0], args[1]
	return nil
}

// ParseTTL reads a lock duration: Go's form (90s, 45m, 2h, 1h30m) or whole
// days (3d), from a second up to deploy.MaxLockTTL.
func ParseTTL(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < time.Second || d > deploy.MaxLockTTL {
		return 0, perr("%q is not a duration from 1s to %s (like 30m, 2h, 1d)", clip(s), deploy.FormatDuration(deploy.MaxLockTTL))
	}
	return d, nil
}

// cleanReason keeps a lock reason printable and short: it is shown in chat
// and stored, never run.
func cleanReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len([]rune(s)) > maxReasonLen {
		s = string([]rune(s)[:maxReasonLen]) + "…"
	}
	return s
}

// clip shortens echoed input so a huge argument does not make a huge reply.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// HelpText lists the commands.
// HelpLines is /help for people on a phone: one short line per command,
// usage then what it does, without a wide monospace table.
func HelpLines() []string {
	out := make([]string, 0, len(helpOrder))
	for _, n := range helpOrder {
		out = append(out, specs[n].usage+" — "+specs[n].help)
	}
	return out
}

func HelpText() []string {
	out := make([]string, 0, len(helpOrder))
	for _, n := range helpOrder {
		out = append(out, fmt.Sprintf("%-40s %s", specs[n].usage, specs[n].help))
	}
	return out
}

// shaLike is a commit id: 7 to 40 hex digits with at least one letter (a
// number-only tag such as 20261123 stays a ref).
var shaLike = regexp.MustCompile(`^[0-9a-fA-F]{7,40}$`)

// RefForDriver refuses a ref the env's driver cannot deploy: Dokploy clones
// with `git clone --branch REF --depth 1`, which takes a branch or tag name,
// never a commit.
func RefForDriver(driver, ref string) error {
	if driver == "dokploy" && shaLike.MatchString(ref) && strings.ContainsAny(strings.ToLower(ref), "abcdef") {
		return perr("%s looks like a commit id, and Dokploy deploys a branch or tag only (it clones with git clone --branch REF); deploy the branch or tag, tagging the commit first if needed", clip(ref))
	}
	return nil
}
