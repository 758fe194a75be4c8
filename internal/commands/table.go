package commands

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// spec is one command, written once: its name, what /help says of it, the
// arguments and flags it takes, the permission it needs, whether it changes
// anything, and its handler. Help, the Telegram menu, the verbs config
// accepts and the parser are all made from the table, so none of them can
// name a command the others do not know.
type spec struct {
	name  string
	usage string
	help  string
	// args are its positional arguments, in order; parse reads them (and
	// a later door, an API or MCP schema, can describe them).
	args []arg
	// flags are the --options it takes.
	flags []flag
	// freeText: words after the arguments are text (a lock reason), where
	// a leading "-" is not an option.
	freeText bool
	// parse, if set, reads the arguments instead of args (a sub-verb,
	// filters); it still documents itself through args.
	parse func(c *Command, args []string, usage string) error
	// perm is the permission it needs and check how it is held; see
	// checkKind.
	perm  string
	check checkKind
	// force is a whole permission that passes instead of perm (lock:force).
	force string
	// filters: the app and env it takes narrow what it shows (/audit
	// app=…, /stats APP); they need not be configured ones, and the
	// handler checks them as it needs.
	filters bool
	// mutating commands are refused while shipbot drains.
	mutating bool
	// bare maps platform -> the command this one means there when typed
	// with no arguments (Telegram sends a bare /start when someone opens
	// the chat: the welcome, /help).
	bare map[string]string
	run  func(d *Dispatcher, ctx context.Context, c *call) Reply
}

// checkKind says how a command's permission is checked.
type checkKind int

const (
	// checkEnv: perm on the APP ENV the command names, before it runs.
	checkEnv checkKind = iota
	// checkSome: perm on at least one env; the handler lists only the
	// envs perm covers.
	checkSome
	// checkObject: perm on the app and env of the job or approval the
	// command names; the handler checks once it has looked it up.
	checkObject
	// checkWhole: perm is a whole permission (audit:read), held or not.
	checkWhole
	// checkNone: any configured person (help, whoami: how someone finds
	// out what they may do).
	checkNone
)

// flag is an --option; set records it on the Command.
type flag struct {
	name string
	set  func(*Command)
}

// argKind is what a positional argument names.
type argKind string

const (
	argApp      argKind = "app"
	argEnv      argKind = "env"
	argRef      argKind = "ref"
	argRelease  argKind = "release"
	argLines    argKind = "lines"
	argJob      argKind = "job"
	argApproval argKind = "approval"
	argBackup   argKind = "backup"
	argDuration argKind = "duration"
	argText     argKind = "text"
	argVerb     argKind = "verb"
	argCount    argKind = "count"
	argFilter   argKind = "filter"
	argWindow   argKind = "window"
)

// arg is one positional argument.
type arg struct {
	kind     argKind
	optional bool
}

var (
	appEnv    = []arg{{kind: argApp}, {kind: argEnv}}
	appEnvAnd = func(a ...arg) []arg { return append(slices.Clone(appEnv), a...) }
)

// table is every command, in /help order. It is filled in init: handlers
// such as /help read it.
var table []spec

// byName indexes table.
var byName map[string]*spec

func init() {
	table = []spec{
		{name: "help", usage: "/help", help: "this list", check: checkNone, run: (*Dispatcher).help},
		{name: "whoami", usage: "/whoami", help: "who shipbot thinks you are, your roles and permissions", check: checkNone, run: (*Dispatcher).whoami},
		{name: "apps", usage: "/apps", help: "apps and envs with their current release and lock", perm: PermView, check: checkSome, run: (*Dispatcher).apps},
		{name: "deploy", usage: "/deploy APP ENV [REF] [--plan] [--redeploy]",
			help:  "deploy REF (or the default) to ENV; --plan shows what would run; --redeploy rebuilds without new code (Dokploy)",
			args:  appEnvAnd(arg{kind: argRef, optional: true}),
			flags: []flag{{"--plan", func(c *Command) { c.Plan = true }}, {"--redeploy", func(c *Command) { c.Redeploy = true }}},
			perm:  "deploy", mutating: true, run: (*Dispatcher).deploy},
		{name: "rollback", usage: "/rollback APP ENV [RELEASE] [--with-db]",
			help:  "switch back to the previous good release (or the named one); --with-db also restores the database backup taken before the current release (needs approval)",
			args:  appEnvAnd(arg{kind: argRelease, optional: true}),
			flags: []flag{{"--with-db", func(c *Command) { c.WithDB = true }}},
			perm:  "rollback", mutating: true, run: (*Dispatcher).rollback},
		{name: "releases", usage: "/releases APP ENV", help: "releases on the target with ref, who, when, state", args: appEnv, perm: "status", run: (*Dispatcher).releases},
		{name: "status", usage: "/status APP ENV", help: "what is live and healthy", args: appEnv, perm: "status", run: (*Dispatcher).status},
		{name: "logs", usage: "/logs APP ENV [LINES] [--build]", help: "the last LINES lines of the app's log; --build: of the last build's log (Dokploy)",
			args:  appEnvAnd(arg{kind: argLines, optional: true}),
			flags: []flag{{"--build", func(c *Command) { c.Build = true }}},
			perm:  "logs", run: (*Dispatcher).logs},
		{name: "stop", usage: "/stop APP ENV", help: "stop the app (drivers that support it, e.g. Dokploy)", args: appEnv, perm: "stop", mutating: true, run: (*Dispatcher).stop},
		{name: "start", usage: "/start APP ENV", help: "start a stopped app", args: appEnv, perm: "start", mutating: true,
			bare: map[string]string{"telegram": "help"}, run: (*Dispatcher).start},
		{name: "backup", usage: "/backup APP ENV | /backup verify APP ENV ID",
			help:  "back up files and databases now; verify: checksums plus a restore drill into a scratch database",
			args:  []arg{{kind: argVerb, optional: true}, {kind: argApp}, {kind: argEnv}, {kind: argBackup, optional: true}},
			parse: parseBackup, perm: "backup", mutating: true, run: (*Dispatcher).backup},
		{name: "backups", usage: "/backups APP ENV", help: "backups with time, size, who and last drill", args: appEnv, perm: "backup", run: (*Dispatcher).backups},
		{name: "restore", usage: "/restore APP ENV ID", help: "restore a backup (always needs a second person; takes a safety backup first)",
			args: appEnvAnd(arg{kind: argBackup}), perm: "restore", mutating: true, run: (*Dispatcher).restore},
		{name: "jobs", usage: "/jobs", help: "recent jobs", perm: PermView, check: checkSome, run: (*Dispatcher).jobs},
		{name: "job", usage: "/job ID", help: "one job: state, steps, last output", args: []arg{{kind: argJob}}, perm: "status", check: checkObject, run: (*Dispatcher).job},
		{name: "cancel", usage: "/cancel ID", help: "stop a job", args: []arg{{kind: argJob}}, perm: "cancel", check: checkObject, mutating: true, run: (*Dispatcher).cancel},
		{name: "lock", usage: "/lock APP ENV [--for 2h] REASON…",
			help: "stop deploys to ENV until unlocked or, with --for (or the env's lock.default_ttl), until it expires",
			args: appEnvAnd(arg{kind: argDuration, optional: true}, arg{kind: argText}), freeText: true,
			parse: parseLock, perm: "lock", mutating: true, run: (*Dispatcher).lock},
		{name: "unlock", usage: "/unlock APP ENV", help: "remove a lock (holder, or lock:force)", args: appEnv, perm: "lock", force: "lock:force", mutating: true, run: (*Dispatcher).unlock},
		{name: "extend", usage: "/extend APP ENV [DURATION]", help: "push an expiring lock's end back (default 1h)",
			args: appEnvAnd(arg{kind: argDuration, optional: true}), parse: parseExtend, perm: "lock", force: "lock:force", mutating: true, run: (*Dispatcher).extend},
		{name: "locks", usage: "/locks", help: "every lock: holder, reason, age, expiry", perm: PermView, check: checkSome, run: (*Dispatcher).locks},
		{name: "pending", usage: "/pending", help: "approvals waiting for a decision", perm: PermView, check: checkSome, run: (*Dispatcher).pending},
		{name: "approve", usage: "/approve ID", help: "approve a pending request (not your own)", args: []arg{{kind: argApproval}},
			perm: "approve", check: checkObject, mutating: true, run: (*Dispatcher).approve},
		{name: "deny", usage: "/deny ID", help: "deny a pending request", args: []arg{{kind: argApproval}},
			perm: "approve", check: checkObject, mutating: true, run: (*Dispatcher).denyRequest},
		{name: "audit", usage: "/audit [N] [app=…] [env=…] [user=…]", help: "the last N audit rows",
			args:  []arg{{kind: argCount, optional: true}, {kind: argFilter, optional: true}},
			parse: parseAudit, perm: "audit:read", check: checkWhole, filters: true, run: (*Dispatcher).auditLog},
		{name: "stats", usage: "/stats [APP] [ENV] [7d|30d|90d]", help: "delivery figures (DORA) beside the window before, with a chart",
			args:  []arg{{kind: argApp, optional: true}, {kind: argEnv, optional: true}, {kind: argWindow, optional: true}},
			parse: parseStats, perm: "status", check: checkObject, filters: true, run: (*Dispatcher).statsReport},
	}
	byName = make(map[string]*spec, len(table))
	for i := range table {
		byName[table[i].name] = &table[i]
	}
}

func (sp *spec) flag(w string) (flag, bool) {
	for _, f := range sp.flags {
		if f.name == w {
			return f, true
		}
	}
	return flag{}, false
}

// Info is what a door outside this package may know of a command.
type Info struct {
	Name, Usage, Help string
	// Perm is the permission it needs ("" for any configured person).
	Perm string
	// Mutating commands change something (and are refused while draining).
	Mutating bool
}

// Commands lists every command in /help order.
func Commands() []Info {
	out := make([]Info, len(table))
	for i, sp := range table {
		out[i] = Info{Name: sp.name, Usage: sp.usage, Help: sp.help, Perm: sp.perm, Mutating: sp.mutating}
	}
	return out
}

// Known reports whether name (without the slash) is a command.
func Known(name string) bool { return byName[name] != nil }

// Bare is what name typed with no arguments means on platform: another
// command's name (Telegram's bare /start is /help), or name itself.
func Bare(platform, name string) string {
	if sp := byName[name]; sp != nil && sp.bare[platform] != "" {
		return sp.bare[platform]
	}
	return name
}

// Menu is the commands a platform's command menu offers: all but those a
// bare tap of which means something else there (Telegram's /start).
func Menu(platform string) []Info {
	var out []Info
	for _, c := range Commands() {
		if Bare(platform, c.Name) == c.Name {
			out = append(out, c)
		}
	}
	return out
}

// HelpLines is /help for people on a phone: one short line per command,
// usage then what it does, without a wide monospace table.
func HelpLines() []string {
	out := make([]string, 0, len(table))
	for _, sp := range table {
		out = append(out, sp.usage+" — "+sp.help)
	}
	return out
}

// HelpText is /help as a two-column table, for a terminal.
func HelpText() []string {
	out := make([]string, 0, len(table))
	for _, sp := range table {
		out = append(out, fmt.Sprintf("%-40s %s", sp.usage, sp.help))
	}
	return out
}

// PermissionVerbs are the verbs a role may grant, each as VERB, VERB:*,
// VERB:ENV or VERB:APP/ENV: those the commands need, sorted. A whole
// permission's verb (audit of audit:read) grants it too.
func PermissionVerbs() []string {
	var out []string
	for _, sp := range table {
		verb, _, _ := strings.Cut(sp.perm, ":")
		if verb != "" && !slices.Contains(out, verb) {
			out = append(out, verb)
		}
	}
	sort.Strings(out)
	return out
}
