package config

import (
	"net/url"
	"regexp"

	"github.com/shipbot/shipbot/internal/audit"
)

// Telegram is the Telegram Bot API adapter.
type Telegram struct {
	Enabled bool
	// Token is the bot token from @BotFather; write ${TELEGRAM_TOKEN}.
	Token audit.Secret
	// APIURL is the Bot API server (a local telegram-bot-api server, or a
	// test fake). Default https://api.telegram.org.
	APIURL string
	// Mode is "polling" (default: no public URL needed) or "webhook".
	Mode string
	// WebhookURL is the public https URL Telegram posts updates to; its
	// path is served on http.listen. Webhook mode only.
	WebhookURL string
	// WebhookSecret is sent back by Telegram in
	// X-Telegram-Bot-Api-Secret-Token; required in webhook mode.
	WebhookSecret audit.Secret
	// Chats are the chat ids allowed to use the bot (groups are negative).
	Chats []int64
}

func (t *Telegram) validate(d *decoder, c *Config) {
	if t == nil || !t.Enabled {
		return
	}
	const k = "chat.telegram"
	if t.Token.IsZero() {
		d.fail(d.lineOf(k), k+".token", "is required when Telegram is enabled (write ${TELEGRAM_TOKEN} and set it in the environment)")
	}
	if u, err := url.Parse(t.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		d.fail(d.lineOf(k+".api_url"), k+".api_url", "must be an http(s) URL")
	}
	if len(t.Chats) == 0 {
		d.fail(d.lineOf(k), k+".chats", "list the chat ids allowed to use the bot (nobody else can)")
	}
	switch t.Mode {
	case "polling":
	case "webhook":
		if t.WebhookSecret.IsZero() {
			d.fail(d.lineOf(k), k+".webhook_secret", "is required in webhook mode (write ${TELEGRAM_WEBHOOK_SECRET})")
		} else if !webhookSecretPattern.MatchString(t.WebhookSecret.Reveal()) {
			d.fail(d.lineOf(k+".webhook_secret"), k+".webhook_secret", "must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule)")
		}
		if u, err := url.Parse(t.WebhookURL); err != nil || u.Scheme != "https" || u.Host == "" {
			d.fail(d.lineOf(k), k+".webhook_url", "must be the public https URL Telegram posts to")
		}
		if c.HTTP.Listen == "" {
			d.fail(d.lineOf(k+".mode"), "http.listen", "is required for Telegram webhook mode")
		}
	default:
		d.fail(d.lineOf(k+".mode"), k+".mode", "must be polling or webhook, not %q", t.Mode)
	}
}

var webhookSecretPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)
