package config

import (
	"strings"
	"testing"
)

const telegramBlock = `
http:
  listen: 127.0.0.1:8080
chat:
  telegram:
    enabled: true
    token: ${TG_TOKEN}
    mode: MODE
    webhook_url: https://bot.example.com/hooks/telegram
    webhook_secret: ${TG_SECRET}
    chats: [-1001234567890, 42]
`

func parseTelegram(t *testing.T, mode string, env map[string]string) (*Config, error) {
	t.Helper()
	return Parse([]byte(base+strings.Replace(telegramBlock, "MODE", mode, 1)), "t.yaml", envOf(env))
}

func TestTelegramConfig(t *testing.T) {
	c, err := parseTelegram(t, "webhook", map[string]string{"TG_TOKEN": "123:secret-token-abc", "TG_SECRET": "hook_secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Chat.Telegram
	if tg == nil || !tg.Enabled || tg.Token.Reveal() != "123:secret-token-abc" || tg.APIURL != "https://api.telegram.org" ||
		len(tg.Chats) != 2 || tg.Chats[0] != -1001234567890 || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Fatalf("telegram = %+v, http %+v", tg, c.HTTP)
	}
	sum := c.Summary()
	if strings.Contains(sum, "secret-token") || strings.Contains(sum, "hook_secret") || !strings.Contains(sum, "telegram enabled (webhook") {
		t.Fatalf("summary:\n%s", sum)
	}
}

func TestTelegramConfigErrors(t *testing.T) {
	cases := []struct {
		mode string
		env  map[string]string
		want string
	}{
		{"polling", map[string]string{"TG_TOKEN": "", "TG_SECRET": ""}, "chat.telegram.token: is required"},
		{"webhook", map[string]string{"TG_TOKEN": "1:x", "TG_SECRET": ""}, "chat.telegram.webhook_secret: is required in webhook mode"},
		{"webhook", map[string]string{"TG_TOKEN": "1:x", "TG_SECRET": "has spaces!"}, "chat.telegram.webhook_secret: must be"},
		{"carrier-pigeon", map[string]string{"TG_TOKEN": "1:x", "TG_SECRET": "s"}, "chat.telegram.mode: must be polling or webhook"},
		{"polling", map[string]string{"TG_SECRET": "s"}, "TG_TOKEN"},
	}
	for _, tc := range cases {
		_, err := parseTelegram(t, tc.mode, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mode %s env %v: err = %v, want %q", tc.mode, tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "has spaces!") {
			t.Errorf("error prints the secret: %v", err)
		}
	}
	bad := strings.Replace(base+strings.Replace(telegramBlock, "MODE", "polling", 1), "42]", "general]", 1)
	if _, err := Parse([]byte(bad), "t.yaml", envOf(map[string]string{"TG_TOKEN": "1:x", "TG_SECRET": "s"})); err == nil ||
		!strings.Contains(err.Error(), "chat.telegram.chats[1]") {
		t.Fatalf("bad chat id: %v", err)
	}
}
