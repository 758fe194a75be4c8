package slack

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// maxBody bounds one HTTP-mode request; Slack's payloads are a few kilobytes.
const maxBody = 1 << 20

// mention is a user mention as Slack sends it in message text: <@U123> or <@U123|name>.
var mention = regexp.MustCompile(`<@([A-Z0-9]+)(\|[^>]*)?>`)

// commandLine turns what a person typed after the bot's name into a command
// line for the dispatcher: "deploy demo prod" and "/deploy demo prod" both
// become "/deploy demo prod"; nothing at all asks for help. Slack escapes
// &, < and > in typed text; the parser sees what the person typed.
func commandLine(text string) string {
	t := strings.TrimSpace(unescape(text))
	if t == "" {
		return "/help"
	}
	if !strings.HasPrefix(t, "/") {
		t = "/" + t
	}
	return t
}

// slashLine is the command line of a slash command: "/shipbot deploy demo
// prod" reads as "/deploy demo prod"; "/deploy demo prod" (a per-verb command
// the workspace registered) is taken as it is.
func slashLine(cmd, text string) string {
	if cmd == "/shipbot" || cmd == "" {
		return commandLine(text)
	}
	return strings.TrimSpace(cmd + " " + strings.TrimSpace(unescape(text)))
}

// onSlash queues a slash command and returns the acknowledgement payload:
// nil, or an ephemeral refusal for a channel that may not use the bot.
func (a *Adapter) onSlash(ctx context.Context, s slackgo.SlashCommand) any {
	ch := notify.Channel{Platform: Platform, ID: s.ChannelID}
	if s.UserID == "" || s.ChannelID == "" {
		return nil
	}
	if !a.allowedChannel(s.ChannelID, s.ChannelName == "directmessage") {
		if msg, tell := a.refuse(ctx, s.UserID, ch); tell {
			return map[string]string{"response_type": "ephemeral", "text": msg}
		}
		return nil
	}
	key := "slack:slash:" + s.TriggerID
	if s.TriggerID == "" {
		return nil // no way to tell a retry from a new command
	}
	a.enqueue(ctx, item{key: key, user: s.UserID, req: commands.Request{Platform: Platform, UserID: s.UserID,
		UserName: s.UserName, Chat: ch, Text: slashLine(s.Command, s.Text)}})
	return nil
}

// onInteraction queues a click on one of shipbot's buttons.
func (a *Adapter) onInteraction(ctx context.Context, cb slackgo.InteractionCallback) {
	if cb.Type != slackgo.InteractionTypeBlockActions || cb.User.ID == "" {
		return
	}
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	ch := notify.Channel{Platform: Platform, ID: channel, Thread: cb.Container.ThreadTs}
	if ch.Thread == "" {
		ch.Thread = cb.Message.ThreadTimestamp
	}
	for _, act := range cb.ActionCallback.BlockActions {
		if act == nil || !strings.HasPrefix(act.ActionID, ActionPrefix) {
			continue
		}
		if !a.allowedChannel(channel, false) {
			if msg, tell := a.refuse(ctx, cb.User.ID, ch); tell {
				a.ephemeral(ctx, ch, cb.User.ID, msg)
			}
			return
		}
		// A click has no event id; its trigger_id is unique per click and
		// comes back unchanged if Slack redelivers the same one.
		key := "slack:action:" + cb.TriggerID + ":" + act.ActionTs
		// The message the button is on: container.message_ts
		// (https://api.slack.com/reference/interaction-payloads/block-actions).
		msg := cb.Container.MessageTs
		if msg == "" {
			msg = cb.Message.Timestamp
		}
		a.enqueue(ctx, item{key: key, user: cb.User.ID, button: true, req: commands.Request{Platform: Platform,
			UserID: cb.User.ID, UserName: cb.User.Name, Chat: ch, Action: act.Value, Message: msg}})
		return
	}
}

// onEventsAPI queues an @mention or a direct message. raw is the outer
// event (event_callback) as Slack sent it.
func (a *Adapter) onEventsAPI(ctx context.Context, raw json.RawMessage) {
	var outer struct {
		Type    string          `json:"type"`
		EventID string          `json:"event_id"`
		Event   json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(raw, &outer); err != nil || outer.Type != "event_callback" || outer.EventID == "" {
		return
	}
	var ev struct {
		Type        string `json:"type"`
		User        string `json:"user"`
		Text        string `json:"text"`
		Channel     string `json:"channel"`
		ChannelType string `json:"channel_type"`
		TS          string `json:"ts"`
		ThreadTS    string `json:"thread_ts"`
		SubType     string `json:"subtype"`
		BotID       string `json:"bot_id"`
	}
	if err := json.Unmarshal(outer.Event, &ev); err != nil {
		return
	}
	// Bots (shipbot itself included) never give commands, and edits,
	// joins and other subtypes are not new requests.
	if ev.User == "" || ev.BotID != "" || ev.SubType != "" || ev.Channel == "" {
		return
	}
	_, me := a.current()
	var text string
	dm := false
	switch ev.Type {
	case "app_mention":
		// The mention that addressed the event leads the text; the bot's
		// own id may not be known yet (auth.test still running) and is not
		// needed for that one.
		text = strings.TrimSpace(ev.Text)
		if loc := mention.FindStringIndex(text); loc != nil && loc[0] == 0 {
			text = text[loc[1]:]
		}
		if me != "" {
			text = strings.ReplaceAll(text, "<@"+me+">", "")
		}
	case "message":
		if ev.ChannelType != "im" {
			return // channel chatter: only mentions are for shipbot
		}
		dm, text = true, ev.Text
	default:
		return
	}
	ch := notify.Channel{Platform: Platform, ID: ev.Channel, Thread: ev.ThreadTS}
	if !a.allowedChannel(ev.Channel, dm) {
		if msg, tell := a.refuse(ctx, ev.User, ch); tell {
			a.ephemeral(ctx, ch, ev.User, msg)
		}
		return
	}
	a.enqueue(ctx, item{key: "slack:event:" + outer.EventID, user: ev.User, req: commands.Request{Platform: Platform,
		UserID: ev.User, Chat: ch, Text: commandLine(text)}})
}

// Route is one HTTP-mode endpoint: POST Path is served by Handler.
type Route struct {
	Path    string
	Handler http.Handler
}

// Routes are the HTTP-mode endpoints, to mount on the bot's router under
// prefix (e.g. "/slack"): PREFIX/commands (slash commands), PREFIX/events
// (Events API) and PREFIX/interactivity (button clicks). Every request is
// verified before anything reads it: Slack's HMAC-SHA256 of
// "v0:{timestamp}:{raw body}" in X-Slack-Signature, a timestamp within five
// minutes, constant-time comparison. The answer is immediate; the work
// happens after, in order, on Run's worker.
func (a *Adapter) Routes(prefix string) []Route {
	return []Route{
		{Path: prefix + "/commands", Handler: a.verified(a.serveCommand)},
		{Path: prefix + "/events", Handler: a.verified(a.serveEvent)},
		{Path: prefix + "/interactivity", Handler: a.verified(a.serveInteraction)},
	}
}

// verified reads the body, checks Slack's signature over it, and passes the
// raw body on; anything unsigned or stale is a 401 and is never parsed.
func (a *Adapter) verified(next func(http.ResponseWriter, *http.Request, []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.mode != ModeHTTP {
			http.Error(w, "slack http mode is off", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		sv, err := slackgo.NewSecretsVerifier(r.Header, a.signing)
		if err == nil {
			_, _ = sv.Write(body)
			err = sv.Ensure()
		}
		if err != nil {
			a.log.Warn("slack: unverified request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		next(w, r, body)
	})
}

func (a *Adapter) serveCommand(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s := slackgo.SlashCommand{TeamID: form.Get("team_id"), ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"),
		UserID: form.Get("user_id"), UserName: form.Get("user_name"), Command: form.Get("command"), Text: form.Get("text"),
		TriggerID: form.Get("trigger_id")}
	ack := a.onSlash(r.Context(), s)
	if ack == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ack)
}

func (a *Adapter) serveEvent(w http.ResponseWriter, r *http.Request, body []byte) {
	ev, err := slackevents.ParseEvent(body, slackevents.OptionNoVerifyToken())
	if err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if ev.Type == slackevents.URLVerification {
		if v, ok := ev.Data.(*slackevents.EventsAPIURLVerificationEvent); ok {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, v.Challenge)
			return
		}
	}
	a.onEventsAPI(r.Context(), body)
	w.WriteHeader(http.StatusOK)
}

func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		http.Error(w, "no payload", http.StatusBadRequest)
		return
	}
	var cb slackgo.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	a.onInteraction(r.Context(), cb)
	w.WriteHeader(http.StatusOK)
}
