// Command bot is shipbot: a ChatOps deploy bot. This is the only place where
// adapters are wired to the core.
//
//	bot [run] [--config F]        run the bot (default: the embedded configs/example.yaml)
//	bot check [--config F]        validate a config and print a summary
//	bot check --explain APP ENV   print an env with its app's defaults applied
//	bot audit verify [--config F] recompute the audit hash chain
//	bot audit export [--config F] write the audit log as JSON lines
//	bot version
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/shipbot/shipbot/configs"
	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/config"
	sshdriver "github.com/shipbot/shipbot/internal/deploy/ssh"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own streams.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(ctx, args, stdin, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args, stdout, stderr)
	case "hosts":
		return cmdHosts(ctx, args, stdout, stderr)
	case "token":
		return cmdToken(args, stdout, stderr)
	case "deploy", "rollback":
		return cmdClient(ctx, cmd, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "shipbot", version)
		return 0
	case "help":
		fmt.Fprintln(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s\n", cmd, usage)
	return 2
}

const usage = `usage:
  bot [run] [--config FILE]         run shipbot (default config: the embedded configs/example.yaml)
  bot check [--config FILE]         validate a config file and print a summary
  bot check [--config FILE] --explain APP ENV
                                    print APP's ENV as resolved, with the app's defaults applied
  bot audit verify [--config FILE]  recompute the audit hash chain; exit 1 naming the first bad row
  bot audit export [--config FILE]  write the audit log as JSON lines to stdout
  bot hosts scan HOST[:PORT]        print a host's SSH key line for known_hosts (trusts nothing)
  bot token new                     print a fresh random API token (for api.tokens)
  bot deploy APP ENV [REF] --server URL [--wait] [--timeout 30m]
  bot rollback APP ENV [RELEASE] --server URL [--wait] [--timeout 30m]
                                    start a job through shipbot's HTTP API (token in SHIPBOT_TOKEN);
                                    with --wait exit 0 succeeded, 1 failed, 2 refused, 3 timeout, 4 awaiting approval
  bot version`

// loadConfig reads --config, or the embedded example when none is given.
func loadConfig(name string) (*config.Config, error) {
	if name == "" {
		return config.Parse(configs.Example, configs.ExampleName, os.LookupEnv)
	}
	return config.Load(name)
}

func flags(name string, args []string, stderr io.Writer) (*flag.FlagSet, *string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "config file (default: embedded configs/example.yaml)")
	return fs, cfg, fs.Parse(args)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("config", "", "config file (default: embedded configs/example.yaml)")
	explain := fs.Bool("explain", false, "print APP ENV as resolved: the app's defaults applied")
	if err := fs.Parse(args); err != nil || (fs.NArg() != 0 && !*explain) || (*explain && fs.NArg() != 2) {
		fmt.Fprintln(stderr, "usage: bot check [--config FILE] [--explain APP ENV]")
		return 2
	}
	c, err := loadConfig(*name)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *explain {
		return explainEnv(c, fs.Arg(0), fs.Arg(1), stdout, stderr)
	}
	fmt.Fprintln(stdout, c.Summary())
	fmt.Fprintln(stdout, "config OK")
	return 0
}

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "export") {
		fmt.Fprintln(stderr, "usage: bot audit verify|export [--config FILE]")
		return 2
	}
	sub := args[0]
	fs, name, err := flags("audit "+sub, args[1:], stderr)
	if err != nil || fs.NArg() != 0 {
		return 2
	}
	// The audit needs only the database: no other setting, secret or not,
	// has to be set (or even valid) for it.
	var database string
	if *name == "" {
		database, err = config.DatabasePath(configs.Example, configs.ExampleName, os.LookupEnv)
	} else {
		database, err = config.LoadDatabasePath(*name)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if _, err := os.Stat(database); err != nil {
		fmt.Fprintf(stderr, "no database at %s: %v\n", database, err)
		return 1
	}
	db, err := sqlite.Open(ctx, database)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer db.Close()
	if sub == "verify" {
		n, err := db.VerifyAudit(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "audit log BROKEN: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "audit log OK: %d rows, chain intact\n", n)
		return 0
	}
	enc := json.NewEncoder(stdout)
	err = db.WalkAudit(ctx, func(e *audit.Event) error { return enc.Encode(e) })
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// logger writes to a file under the data dir when the terminal is the chat,
// so log lines do not interleave with the conversation.
func logger(c *config.Config, stderr io.Writer) (*slog.Logger, func(), error) {
	if c.Chat.Shell == nil || !c.Chat.Shell.Enabled {
		return slog.New(slog.NewTextHandler(stderr, nil)), func() {}, nil
	}
	if err := os.MkdirAll(c.Bot.DataDir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.Bot.DataDir, "shipbot.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewTextHandler(f, nil)), func() { f.Close() }, nil
}

// cmdHosts prints the key line a host presents so an admin can compare its
// fingerprint with one obtained out of band and add it to known_hosts.
// Nothing is written and nothing is trusted.
func cmdHosts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "scan" {
		fmt.Fprintln(stderr, "usage: bot hosts scan HOST[:PORT]")
		return 2
	}
	line, fp, err := sshdriver.ScanHostKey(ctx, args[1])
	if err != nil {
		fmt.Fprintln(stderr, "scan:", err)
		return 1
	}
	fmt.Fprintf(stderr, "# %s presents %s\n# compare this fingerprint with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host);\n# if they match, append the next line to the known_hosts file named in the config.\n", args[1], fp)
	fmt.Fprintln(stdout, line)
	return 0
}
