package config

import (
	"strings"
	"testing"
)

const slackBlock = `
http:
  listen: 127.0.0.1:8080
chat:
  slack:
    enabled: true
    mode: MODE
    bot_token: ${SL_BOT}
    app_token: ${SL_APP}
    signing_secret: ${SL_SIGN}
    channels: [C0123ABCD, G9PRIVATE]
`

func parseSlack(t *testing.T, mode string, env map[string]string) (*Config, error) {
	t.Helper()
	return Parse([]byte(base+strings.Replace(slackBlock, "MODE", mode, 1)), "t.yaml", envOf(env))
}

func TestSlackConfig(t *testing.T) {
	env := map[string]string{"SL_BOT": "xoxb-1-bot-secret", "SL_APP": "xapp-1-app-secret", "SL_SIGN": "sign-secret-123"}
	for _, mode := range []string{"socket", "http"} {
		c, err := parseSlack(t, mode, env)
		if err != nil {
			t.Fatal(mode, err)
		}
		s := c.Chat.Slack
		if s == nil || !s.Enabled || s.Mode != mode || s.BotToken.Reveal() != "xoxb-1-bot-secret" || s.APIURL != "https://slack.com/api/" ||
			s.Path != "/slack" || !s.DirectMessages || len(s.Channels) != 2 || s.Channels[1] != "G9PRIVATE" {
			t.Fatalf("%s: slack = %+v", mode, s)
		}
		sum := c.Summary()
		if strings.Contains(sum, "secret") || !strings.Contains(sum, "slack enabled") {
			t.Fatalf("summary:\n%s", sum)
		}
	}
}

func TestSlackConfigErrors(t *testing.T) {
	ok := map[string]string{"SL_BOT": "xoxb-1", "SL_APP": "xapp-1", "SL_SIGN": "s3cret-value"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		m[k] = v
		return m
	}
	cases := []struct {
		mode string
		env  map[string]string
		want string
	}{
		{"socket", with("SL_BOT", ""), "chat.slack.bot_token: is required"},
		{"socket", with("SL_BOT", "xoxp-user-token"), "chat.slack.bot_token: must be a bot token"},
		{"socket", with("SL_APP", ""), "chat.slack.app_token: is required in socket mode"},
		{"socket", with("SL_APP", "xoxb-wrong"), "chat.slack.app_token: must be an app-level token"},
		{"http", with("SL_SIGN", ""), "chat.slack.signing_secret: is required in http mode"},
		{"carrier-pigeon", ok, "chat.slack.mode: must be socket or http"},
	}
	for _, tc := range cases {
		_, err := parseSlack(t, tc.mode, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mode %s env %v: err = %v, want %q", tc.mode, tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "xoxp-user-token") {
			t.Errorf("error prints the token: %v", err)
		}
	}
	// HTTP mode needs the one listener.
	noListen := strings.Replace(base+strings.Replace(slackBlock, "MODE", "http", 1), "listen: 127.0.0.1:8080", "listen: \"\"", 1)
	if _, err := Parse([]byte(noListen), "t.yaml", envOf(ok)); err == nil || !strings.Contains(err.Error(), "http.listen: is required for Slack http mode") {
		t.Fatalf("no listener: %v", err)
	}
	bad := strings.Replace(base+strings.Replace(slackBlock, "MODE", "socket", 1), "G9PRIVATE]", "\"#deploys\"]", 1)
	if _, err := Parse([]byte(bad), "t.yaml", envOf(ok)); err == nil || !strings.Contains(err.Error(), "chat.slack.channels[1]") {
		t.Fatalf("bad channel id: %v", err)
	}
	typo := strings.Replace(base+strings.Replace(slackBlock, "MODE", "socket", 1), "channels:", "chanels:", 1)
	if _, err := Parse([]byte(typo), "t.yaml", envOf(ok)); err == nil || !strings.Contains(err.Error(), "chanels") {
		t.Fatalf("typo: %v", err)
	}
}
