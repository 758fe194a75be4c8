package configs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The systemd unit passes `systemd-analyze verify` with nothing to say: an
// unknown or misspelt directive is only a warning there, so any output
// fails the test. The binary path is pointed at an executable that exists
// (this test's own binary): verify checks that ExecStart can run.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("SHIPBOT_REQUIRE_INTEGRATION") != "" {
			t.Fatal("systemd-analyze is missing (Debian package systemd); scripts/test.sh installs it")
		}
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile("shipbot.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	if !strings.Contains(text, "/usr/local/bin/shipbot ") {
		t.Fatal("the unit no longer runs /usr/local/bin/shipbot; update this test and the README")
	}
	path := filepath.Join(t.TempDir(), "shipbot.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/usr/local/bin/shipbot ", self+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// What the unit promises, line by line: its own user, the hardening the
// README describes, a config check before start, and a stop timeout that
// outlasts shipbot's own drain (bot.shutdown_timeout, 2m by default).
func TestSystemdUnitSettings(t *testing.T) {
	unit, err := os.ReadFile("shipbot.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{"User=shipbot", "StateDirectory=shipbot", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"PrivateTmp=yes", "EnvironmentFile=/etc/shipbot/shipbot.env",
		"ExecStartPre=/usr/local/bin/shipbot check --config /etc/shipbot/shipbot.yaml",
		"ExecStart=/usr/local/bin/shipbot run --config /etc/shipbot/shipbot.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "KillSignal=SIGTERM", "KillMode=mixed"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(text) {
			t.Errorf("the unit lacks the line %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no TimeoutStopSec")
	}
	d, err := time.ParseDuration(m[1])
	if err != nil || d <= 2*time.Minute {
		t.Fatalf("TimeoutStopSec=%s must outlast the 2m drain (%v)", m[1], err)
	}
}
