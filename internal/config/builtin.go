package config

import (
	"strings"
	"time"
)

// The values a key takes when the file does not write it, all here, so a
// default is changed in one place; README's config table is held to them by
// TestREADMEDefaultsMatch. Each block starts as its default and its YAML is
// decoded over it, so a key written explicitly (even as 0) wins.

func defaultBot() Bot {
	return Bot{
		DataDir:         "./var",
		JobTimeout:      Duration{30 * time.Minute},
		ShutdownTimeout: Duration{2 * time.Minute},
		OutputLines:     200,
	}
}

// defaultDatabase is bot.database when unset: shipbot.db in the data dir.
func defaultDatabase(dataDir string) string {
	if dataDir == "" {
		return ""
	}
	return strings.TrimRight(dataDir, "/") + "/shipbot.db"
}

func defaultTelegram() Telegram {
	return Telegram{APIURL: "https://api.telegram.org", Mode: "polling"}
}

func defaultSlack() Slack {
	return Slack{Mode: "socket", APIURL: "https://slack.com/api/", Path: "/slack", DirectMessages: true}
}

// pipelines.dokploy_header and pipelines.max_attempts when unset (with or
// without a pipelines block).
const (
	defaultDokployHeader = "X-Shipbot-Token"
	defaultMaxAttempts   = 10
)

// defaultMCPPath is mcp.path when unset.
const defaultMCPPath = "/mcp"

// defaultEnv is an Env before its YAML is decoded over it, so a key that is
// written explicitly (even as 0) wins over its default.
func defaultEnv() Env {
	return Env{
		KeepReleases: 5,
		StepTimeout:  Duration{10 * time.Minute},
		Health: Health{
			ExpectStatus: 200,
			Retries:      10,
			Interval:     Duration{time.Second},
			Timeout:      Duration{5 * time.Second},
		},
		Logs:     Logs{MaxLines: 500, MaxBytes: 65536},
		Approval: Approval{TTL: Duration{30 * time.Minute}},
	}
}

// DefaultSSHParallel is ssh.parallel when unset: every host of the env at
// once, up to this many. A deploy costs each host two SSH sessions, so the
// bot's side stays light; the cap bounds its connections and goroutines.
const DefaultSSHParallel = 50

func defaultSSH() SSH {
	return SSH{
		Parallel:       DefaultSSHParallel,
		ConnectTimeout: Duration{10 * time.Second},
		Keepalive:      Duration{15 * time.Second},
	}
}

func defaultDokploy() Dokploy {
	// queue_grace defaults to poll_deadline as written (see the decoder).
	return Dokploy{PollInterval: Duration{2 * time.Second}, PollDeadline: Duration{30 * time.Minute},
		BackupTimeout: Duration{30 * time.Minute}}
}

func defaultBackup() Backup {
	return Backup{KeepDays: 30, Timeout: Duration{time.Hour}}
}
