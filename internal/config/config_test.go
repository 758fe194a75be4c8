package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	gitToken    = "s3cr3t-git-token"
	healthToken = "h3alth-token"
	apiKey      = "4p1-k3y"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func parseFull(t *testing.T) *Config {
	t.Helper()
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "full.yaml", envOf(map[string]string{"GIT_TOKEN": gitToken, "HEALTH_TOKEN": healthToken, "API_KEY": apiKey}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestParseFullConfigAppliesValuesAndDefaults(t *testing.T) {
	c := parseFull(t)

	if c.Source != "full.yaml" {
		t.Errorf("Source = %q", c.Source)
	}
	wantBot := Bot{
		DataDir:         "/var/lib/shipbot",
		Database:        "/var/lib/shipbot/shipbot.db",
		JobTimeout:      Duration{45 * time.Minute},
		ShutdownTimeout: Duration{2 * time.Minute},
		OutputLines:     300,
	}
	if c.Bot != wantBot {
		t.Errorf("Bot = %+v, want %+v", c.Bot, wantBot)
	}
	if c.Chat.Shell == nil || !c.Chat.Shell.Enabled || c.Chat.Shell.User != "alice" {
		t.Errorf("Chat.Shell = %+v", c.Chat.Shell)
	}
	wantUsers := map[string]User{
		"alice": {Identities: []string{"shell:alice", "telegram:1001"}, Roles: []string{"admin"}},
		"bob":   {Identities: []string{"slack:U02BOB", "shell:bob"}, Roles: []string{"developer"}},
		"carol": {Identities: []string{"telegram:1003"}, Roles: []string{"developer", "releaser"}},
	}
	if !reflect.DeepEqual(c.Users, wantUsers) {
		t.Errorf("Users = %+v", c.Users)
	}
	if got := c.Roles["developer"].Permissions; !reflect.DeepEqual(got, []string{"deploy:staging", "logs:*", "status", "lock:helpdesk/staging"}) {
		t.Errorf("developer permissions = %q", got)
	}

	wantStaging := Env{
		Driver:       "local",
		Path:         "./var/helpdesk",
		KeepReleases: 5,
		Fetch:        Fetch{Copy: "./examples/helpdesk"},
		Shared:       []string{".env", "uploads"},
		Build: [][]string{
			{"python3", "-m", "venv", "{{release_path}}/.venv"},
			{"{{release_path}}/.venv/bin/pip", "install", "-r", "requirements.txt"},
		},
		Restart:     [][]string{{"echo", "restarted {{app}} {{env}} at {{release}}"}},
		StepTimeout: Duration{10 * time.Minute},
		Health: Health{
			URL:          "http://127.0.0.1:8000/health?token=" + healthToken,
			ExpectStatus: 200,
			ExpectBody:   "ok",
			Retries:      10,
			Interval:     Duration{time.Second},
			Timeout:      Duration{5 * time.Second},
		},
		Logs:     Logs{File: "{{shared_path}}/app.log", MaxLines: 500, MaxBytes: 65536},
		Approval: Approval{TTL: Duration{30 * time.Minute}},
	}
	if got := c.Apps["helpdesk"].Envs["staging"]; !reflect.DeepEqual(got, wantStaging) {
		t.Errorf("helpdesk/staging =\n%+v\nwant\n%+v", got, wantStaging)
	}

	prod := c.Apps["helpdesk"].Envs["production"]
	if prod.Fetch.Git != "https://deploy:"+gitToken+"@git.example.com/it/helpdesk.git" || prod.Fetch.Ref != "main" {
		t.Errorf("production fetch = %+v", prod.Fetch)
	}
	// The merge key brings url and expect_body; explicit keys override the rest.
	wantHealth := Health{
		URL:          "http://127.0.0.1:8000/health?token=" + healthToken,
		ExpectStatus: 200,
		ExpectBody:   "ok",
		Retries:      3,
		Interval:     Duration{2 * time.Second},
		Timeout:      Duration{5 * time.Second},
	}
	if !reflect.DeepEqual(prod.Health, wantHealth) {
		t.Errorf("production health = %+v, want %+v", prod.Health, wantHealth)
	}
	wantSSH := &SSH{
		Hosts:          []string{"web1.example.com", "10.0.0.7:2222"},
		User:           "deploy",
		KeyFile:        "/etc/shipbot/id_ed25519",
		KnownHosts:     "/etc/shipbot/known_hosts",
		Parallel:       2,
		ConnectTimeout: Duration{10 * time.Second},
		Keepalive:      Duration{15 * time.Second},
	}
	if !reflect.DeepEqual(prod.SSH, wantSSH) {
		t.Errorf("production ssh = %+v, want %+v", prod.SSH, wantSSH)
	}
	wantApproval := Approval{Required: true, ApproverRoles: []string{"releaser", "admin"}, TTL: Duration{time.Hour}}
	if !reflect.DeepEqual(prod.Approval, wantApproval) {
		t.Errorf("production approval = %+v", prod.Approval)
	}
	if prod.Logs.MaxLines != 1000 || prod.Logs.MaxBytes != 65536 || prod.KeepReleases != 10 || prod.StepTimeout.Duration != 15*time.Minute {
		t.Errorf("production logs/keep/step = %+v %d %s", prod.Logs, prod.KeepReleases, prod.StepTimeout)
	}
}

func TestParseMinimalConfigGetsBotDefaults(t *testing.T) {
	c, err := Parse([]byte(base), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Bot{
		DataDir:         "./var",
		Database:        "./var/shipbot.db",
		JobTimeout:      Duration{30 * time.Minute},
		ShutdownTimeout: Duration{2 * time.Minute},
		OutputLines:     200,
	}
	if c.Bot != want {
		t.Errorf("Bot = %+v, want %+v", c.Bot, want)
	}
	if c.Chat.Shell != nil {
		t.Errorf("Chat.Shell = %+v, want nil without a chat block", c.Chat.Shell)
	}
}

func TestLoadReadsFileWithProcessEnvironment(t *testing.T) {
	t.Setenv("SHIPBOT_TEST_PATH", "/srv/from-env")
	path := filepath.Join(t.TempDir(), "bot.yaml")
	data := strings.Replace(base, "path: ./var/demo", "path: ${SHIPBOT_TEST_PATH}", 1)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != path || c.Apps["demo"].Envs["staging"].Path != "/srv/from-env" {
		t.Errorf("Source %q, path %q", c.Source, c.Apps["demo"].Envs["staging"].Path)
	}

	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestRecipeMapsEnvFields(t *testing.T) {
	c := parseFull(t)
	got := c.Recipe("helpdesk", "production")
	want := deploy.Recipe{
		App:          "helpdesk",
		Env:          "production",
		Path:         "/srv/helpdesk",
		KeepReleases: 10,
		Fetch: deploy.Fetch{
			GitRepo:    "https://deploy:" + gitToken + "@git.example.com/it/helpdesk.git",
			DefaultRef: "main",
		},
		Shared:      []string{".env", "instance/uploads"},
		Build:       []deploy.Command{{"python3", "-m", "venv", ".venv"}},
		Migrate:     []deploy.Command{{".venv/bin/flask", "db", "upgrade"}},
		Restart:     []deploy.Command{{"sudo", "systemctl", "restart", "helpdesk"}},
		StepTimeout: 15 * time.Minute,
		Health: deploy.Health{
			URL:          "http://127.0.0.1:8000/health?token=" + healthToken,
			ExpectStatus: 200,
			ExpectBody:   "ok",
			Retries:      3,
			Interval:     2 * time.Second,
			Timeout:      5 * time.Second,
		},
		Logs: deploy.LogSource{
			Command:  deploy.Command{"journalctl", "-u", "helpdesk", "-n", "{{lines}}", "--no-pager"},
			MaxLines: 1000,
			MaxBytes: 65536,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Recipe =\n%+v\nwant\n%+v", got, want)
	}

	// Relative paths stay relative; copy maps to CopyFrom, a log file to File.
	st := c.Recipe("helpdesk", "staging")
	if st.Path != "./var/helpdesk" || st.Fetch.CopyFrom != "./examples/helpdesk" || st.Fetch.GitRepo != "" ||
		st.Logs.File != "{{shared_path}}/app.log" || st.Health.Command != nil {
		t.Errorf("staging recipe = %+v", st)
	}
	if hc := c.Recipe("supermock", "staging").Health.Command; !reflect.DeepEqual(hc, deploy.Command{"curl", "-fsS", "-H", "X-Api-Key: " + apiKey, "http://localhost:3000/api/health"}) {
		t.Errorf("supermock health command = %q", hc)
	}

	// A recipe is a copy: editing it must not change the config other jobs use.
	got.Build[0][0] = "rm"
	got.Shared[0] = "/"
	if e := c.Apps["helpdesk"].Envs["production"]; e.Build[0][0] != "python3" || e.Shared[0] != ".env" {
		t.Errorf("editing the recipe changed the config: %q %q", e.Build[0], e.Shared)
	}

	if r := c.Recipe("helpdesk", "nope"); !reflect.DeepEqual(r, deploy.Recipe{}) {
		t.Errorf("Recipe of unknown env = %+v, want zero", r)
	}
	if r := c.Recipe("nope", "staging"); !reflect.DeepEqual(r, deploy.Recipe{}) {
		t.Errorf("Recipe of unknown app = %+v, want zero", r)
	}
}

func TestUserByIdentity(t *testing.T) {
	c := parseFull(t)
	for _, tc := range []struct {
		identity, user string
		ok             bool
	}{
		{"shell:alice", "alice", true},
		{"telegram:1001", "alice", true},
		{"slack:U02BOB", "bob", true},
		{"telegram:1003", "carol", true},
		{"telegram:9999", "", false},
		{"slack:u02bob", "", false}, // ids are case-sensitive
		{"alice", "", false},
		{"", "", false},
	} {
		user, ok := c.UserByIdentity(tc.identity)
		if user != tc.user || ok != tc.ok {
			t.Errorf("UserByIdentity(%q) = %q, %v; want %q, %v", tc.identity, user, ok, tc.user, tc.ok)
		}
	}
}

func TestSummaryMatchesGoldenAndHidesSecrets(t *testing.T) {
	got := parseFull(t).Summary()
	for _, secret := range []string{gitToken, healthToken, apiKey} {
		if strings.Contains(got, secret) {
			t.Errorf("summary contains secret %q:\n%s", secret, got)
		}
	}
	const golden = "testdata/full.summary.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("summary differs from %s (run go test -update to accept):\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
	// Maps iterate in random order; the summary must not.
	for range 5 {
		if again := parseFull(t).Summary(); again != got {
			t.Fatalf("summary is not deterministic:\n%s\n---\n%s", got, again)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Minute:                "30m",
		90 * time.Second:                "1m30s",
		time.Hour:                       "1h",
		time.Hour + 30*time.Minute:      "1h30m",
		time.Hour + 5*time.Second:       "1h0m5s",
		1500 * time.Millisecond:         "1.5s",
		10 * time.Second:                "10s",
		2*time.Hour + 10*time.Minute:    "2h10m",
		24*time.Hour + 20*time.Minute:   "24h20m",
		100*time.Minute + 0*time.Second: "1h40m",
	} {
		if got := short(Duration{d}); got != want {
			t.Errorf("short(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://deploy:tok@git.example.com/a.git": "https://[redacted]@git.example.com/a.git",
		"https://tok@github.com/a.git":             "https://[redacted]@github.com/a.git",
		"http://h/health?token=abc&x=1":            "http://h/health?token=redacted&x=redacted",
		"git@gitlab.example.com:product/a.git":     "git@gitlab.example.com:product/a.git",
		"http://h:8080/health":                     "http://h:8080/health",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
