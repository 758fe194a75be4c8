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
	sp, ok := byName[name]
	if !ok {
		return Command{}, perr("unknown command %q; try /help", clip(words[0]))
	}
	c := Command{Name: name}
	var args []string
	for _, w := range words[1:] {
		if strings.HasPrefix(w, "-") {
			if f, ok := sp.flag(w); ok {
				f.set(&c)
				continue
			}
			if !sp.freeText { // a lock reason may contain anything printable
				return Command{}, perr("unknown option %q; usage: %s", clip(w), sp.usage)
			}
		}
		args = append(args, w)
	}
	c.Args = args
	parse := parseArgs(sp.args)
	if sp.parse != nil {
		parse = sp.parse
	}
	if err := parse(&c, args, sp.usage); err != nil {
		return Command{}, err
	}
	return c, nil
}

// parseArgs reads positional arguments by their kinds; optional ones come
// last.
func parseArgs(kinds []arg) func(c *Command, args []string, usage string) error {
	return func(c *Command, args []string, usage string) error {
		least := 0
		for _, a := range kinds {
			if !a.optional {
				least++
			}
		}
		if len(args) < least || len(args) > len(kinds) {
			return perr("usage: %s", usage)
		}
		for i, v := range args {
			if err := c.set(kinds[i].kind, v, usage); err != nil {
				return err
			}
		}
		return nil
	}
}

// set checks v as an argument of kind and records it on c.
func (c *Command) set(kind argKind, v, usage string) error {
	switch kind {
	case argApp:
		if !deploy.ValidName(v) {
			return perr("app %q is not a valid name (lowercase letters, digits, . _ -)", clip(v))
		}
		c.App = v
	case argEnv:
		if !deploy.ValidName(v) {
			return perr("env %q is not a valid name (lowercase letters, digits, . _ -)", clip(v))
		}
		c.Env = v
	case argRef:
		if err := deploy.ValidateRef(v); err != nil {
			return &ParseError{Msg: err.Error()}
		}
		c.Ref = v
	case argRelease:
		if !deploy.ValidName(v) {
			return perr("release %q is not a release name (see /releases %s %s)", clip(v), c.App, c.Env)
		}
		c.Release = v
	case argBackup:
		if !deploy.ValidName(v) {
			return perr("backup %q is not a backup id (see /backups %s %s)", clip(v), c.App, c.Env)
		}
		c.Backup = v
	case argLines:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogLines {
			return perr("LINES must be a number from 1 to %d", maxLogLines)
		}
		c.Lines = n
	case argJob:
		n, err := strconv.ParseInt(strings.TrimPrefix(v, "#"), 10, 64)
		if err != nil || n < 1 {
			return perr("%q is not a job number; usage: %s", clip(v), usage)
		}
		c.JobID = n
	case argApproval:
		if !approvalIDPattern.MatchString(v) {
			return perr("%q is not an approval id (see /pending)", clip(v))
		}
		c.ID = v
	case argDuration:
		d, err := ParseTTL(v)
		if err != nil {
			return err
		}
		c.For = d
	default:
		return perr("usage: %s", usage)
	}
	return nil
}

// parseBackup reads "APP ENV" or "verify APP ENV ID".
func parseBackup(c *Command, args []string, usage string) error {
	kinds := appEnv
	if len(args) > 0 && args[0] == "verify" {
		c.Verify, args, kinds = true, args[1:], appEnvAnd(arg{kind: argBackup})
	}
	if len(args) != len(kinds) {
		return perr("usage: %s", usage)
	}
	return parseArgs(kinds)(c, args, usage)
}

// parseLock reads "APP ENV [--for D] REASON…".
func parseLock(c *Command, args []string, usage string) error {
	if len(args) < 3 {
		return perr("usage: %s (a reason is required)", usage)
	}
	if err := parseArgs(appEnv)(c, args[:2], usage); err != nil {
		return err
	}
	rest := args[2:]
	if d, ok := strings.CutPrefix(rest[0], "--for="); ok {
		rest = append([]string{"--for", d}, rest[1:]...)
	}
	if rest[0] == "--for" {
		if len(rest) < 3 {
			return perr("usage: %s (a duration and a reason are required)", usage)
		}
		if err := c.set(argDuration, rest[1], usage); err != nil {
			return err
		}
		rest = rest[2:]
	}
	c.Reason = cleanReason(strings.Join(rest, " "))
	return nil
}

// parseExtend reads "APP ENV [DURATION]", an hour by default.
func parseExtend(c *Command, args []string, usage string) error {
	c.For = time.Hour
	return parseArgs(appEnvAnd(arg{kind: argDuration, optional: true}))(c, args, usage)
}

// parseAudit reads "[N] [app=…] [env=…] [user=…]" in any order.
func parseAudit(c *Command, args []string, usage string) error {
	c.Limit = 20
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if !deploy.ValidName(v) {
				return perr("%s=%q is not a valid name", k, clip(v))
			}
			switch k {
			case "app":
				c.App = v
			case "env":
				c.Env = v
			case "user":
				c.User = v
			default:
				return perr("unknown filter %q; use app=, env= or user=", clip(k))
			}
			continue
		}
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 || n > maxAuditRows {
			return perr("N must be a number from 1 to %d; usage: %s", maxAuditRows, usage)
		}
		c.Limit = n
	}
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
