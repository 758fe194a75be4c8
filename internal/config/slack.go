package config

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/shipbot/shipbot/internal/audit"
)

// Slack is the Slack adapter (slack-go): Socket Mode or HTTP.
type Slack struct {
	Enabled bool
	// Mode is "socket" (default: an outbound websocket, no public URL) or
	// "http" (Slack posts to http.listen under Path).
	Mode string
	// BotToken (xoxb-…) calls the Web API; write ${SLACK_BOT_TOKEN}.
	BotToken audit.Secret
	// AppToken (xapp-…, scope connections:write) opens Socket Mode.
	AppToken audit.Secret
	// SigningSecret verifies every request in HTTP mode.
	SigningSecret audit.Secret
	// APIURL is the Web API base, ending in "/"; default https://slack.com/api/.
	APIURL string
	// Path is the HTTP-mode prefix: PATH/commands, PATH/events, PATH/interactivity.
	Path string
	// Channels are the channel ids allowed to use the bot.
	Channels []string
	// DirectMessages lets people use the bot in a DM with it (default true);
	// the policy still decides what each person may do.
	DirectMessages bool
}

// slackChannelPattern is a Slack conversation id: C… public, G… private.
var slackChannelPattern = regexp.MustCompile(`^[CG][A-Z0-9]{2,20}$`)

func (s *Slack) validate(d *decoder, c *Config) {
	if s == nil || !s.Enabled {
		return
	}
	const k = "chat.slack"
	if s.BotToken.IsZero() {
		d.fail(d.lineOf(k), k+".bot_token", "is required when Slack is enabled (write ${SLACK_BOT_TOKEN}: the xoxb- token)")
	} else if !strings.HasPrefix(s.BotToken.Reveal(), "xoxb-") {
		d.fail(d.lineOf(k+".bot_token"), k+".bot_token", "must be a bot token (xoxb-…)")
	}
	if u, err := url.Parse(s.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasSuffix(s.APIURL, "/") {
		d.fail(d.lineOf(k+".api_url"), k+".api_url", "must be an http(s) URL ending in /")
	}
	if len(s.Channels) == 0 && !s.DirectMessages {
		d.fail(d.lineOf(k), k+".channels", "list the channel ids allowed to use the bot, or allow direct_messages")
	}
	for i, ch := range s.Channels {
		if !slackChannelPattern.MatchString(ch) {
			key := index(k+".channels", i)
			d.fail(d.lineOf(key), key, "%q is not a Slack channel id (like C0123ABCD; copy it from the channel's details)", ch)
		}
	}
	switch s.Mode {
	case "socket":
		if s.AppToken.IsZero() {
			d.fail(d.lineOf(k), k+".app_token", "is required in socket mode (write ${SLACK_APP_TOKEN}: the xapp- token with connections:write)")
		} else if !strings.HasPrefix(s.AppToken.Reveal(), "xapp-") {
			d.fail(d.lineOf(k+".app_token"), k+".app_token", "must be an app-level token (xapp-…)")
		}
	case "http":
		if s.SigningSecret.IsZero() {
			d.fail(d.lineOf(k), k+".signing_secret", "is required in http mode (write ${SLACK_SIGNING_SECRET}); unsigned requests are never accepted")
		}
		if c.HTTP.Listen == "" {
			d.fail(d.lineOf(k+".mode"), "http.listen", "is required for Slack http mode")
		}
		if !strings.HasPrefix(s.Path, "/") || strings.HasSuffix(s.Path, "/") {
			d.fail(d.lineOf(k+".path"), k+".path", "must start with / and not end with / (e.g. /slack)")
		}
	default:
		d.fail(d.lineOf(k+".mode"), k+".mode", "must be socket or http, not %q", s.Mode)
	}
}
