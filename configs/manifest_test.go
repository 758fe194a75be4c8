package configs

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shipbot/shipbot/internal/commands"
)

// The manifest must grant what the Slack adapter uses; a scope missing here
// shows up in a workspace as a silent missing_scope on the first deploy.
func TestSlackManifestGrantsWhatTheAdapterUses(t *testing.T) {
	raw, err := os.ReadFile("slack-app-manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Features struct {
			SlashCommands []struct{ Command string } `yaml:"slash_commands"`
		}
		OAuth struct {
			Scopes struct{ Bot []string }
		} `yaml:"oauth_config"`
		Settings struct {
			Events struct {
				BotEvents []string `yaml:"bot_events"`
			} `yaml:"event_subscriptions"`
			Interactivity struct {
				Enabled bool `yaml:"is_enabled"`
			}
			SocketMode bool `yaml:"socket_mode_enabled"`
		}
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"app_mentions:read", "chat:write", "chat:write.public", "commands", "files:write", "im:history"} {
		if !slices.Contains(m.OAuth.Scopes.Bot, s) {
			t.Errorf("scope %s missing", s)
		}
	}
	for _, e := range []string{"app_mention", "message.im"} {
		if !slices.Contains(m.Settings.Events.BotEvents, e) {
			t.Errorf("event %s missing", e)
		}
	}
	if len(m.Features.SlashCommands) == 0 || m.Features.SlashCommands[0].Command != "/shipbot" {
		t.Errorf("slash commands %+v", m.Features.SlashCommands)
	}
	if !m.Settings.Interactivity.Enabled || !m.Settings.SocketMode {
		t.Errorf("settings %+v", m.Settings)
	}
}

// The manifest's per-verb slash commands (commented out, for workspaces
// that want them) name commands shipbot has, with the usage its command
// table gives: a renamed command or a changed argument list shows here.
func TestSlackManifestCommandsAreShipbotCommands(t *testing.T) {
	raw, err := os.ReadFile("slack-app-manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	usage := map[string]string{}
	for _, c := range commands.Commands() {
		usage[c.Name] = strings.TrimSpace(strings.TrimPrefix(c.Usage, "/"+c.Name))
	}
	var name string
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		l := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "#"))
		if c, ok := strings.CutPrefix(l, "- command: /"); ok {
			name = c
			if name != "shipbot" && !commands.Known(name) {
				t.Errorf("manifest command /%s is not a shipbot command", name)
			}
			continue
		}
		if hint, ok := strings.CutPrefix(l, "usage_hint: "); ok && name != "shipbot" && name != "" {
			n++
			if !strings.HasPrefix(usage[name], hint) {
				t.Errorf("/%s usage_hint %q; the command takes %q", name, hint, usage[name])
			}
		}
	}
	if n == 0 {
		t.Error("no per-verb commands found in the manifest")
	}
}
