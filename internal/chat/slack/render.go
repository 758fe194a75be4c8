package slack

import (
	"fmt"
	"net/url"
	"strings"

	slackgo "github.com/slack-go/slack"

	"github.com/shipbot/shipbot/internal/chat"
	"github.com/shipbot/shipbot/internal/notify"
)

// Block Kit limits (api.slack.com/reference/block-kit): Slack answers
// invalid_blocks to a message that breaks any of them, so Render never does.
const (
	maxSectionText  = 3000
	maxFieldText    = 2000
	maxFields       = 10 // per section block
	maxButtonLabel  = 75
	maxButtonValue  = 2000
	maxBlocks       = 50
	maxFallbackText = 4000 // Slack truncates the top-level text at 40,000; keep notifications short
	maxTitle        = 256
)

// ActionPrefix starts the action_id of every button shipbot renders; clicks
// on anything else (another app's blocks, a link button) are not commands.
const ActionPrefix = "shipbot:"

// escape makes s literal in mrkdwn: Slack requires &, < and > as entities,
// and without escaping "<!channel>" or "<https://evil|docs>" in a ref or an
// output line would ping everyone or hide a link.
var escape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// unescape undoes Slack's escaping of typed text before it is parsed.
var unescape = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace

// buttonStyle: Block Kit knows only primary and danger; others get the default.
var buttonStyle = map[notify.Style]slackgo.Style{
	notify.StyleSuccess: slackgo.StylePrimary,
	notify.StyleDanger:  slackgo.StyleDanger,
}

// Render returns m as Block Kit blocks and the plain fallback text Slack
// shows in notifications. Every value is escaped; long parts are cut to
// Block Kit's limits (output keeps its last lines: they say what went wrong).
func Render(m notify.Message) ([]slackgo.Block, string) {
	var blocks []slackgo.Block
	title := chat.ClipHeadBytes(chat.OneLine(m.Title), maxTitle)
	if title != "" {
		blocks = append(blocks, section("*"+chat.StyleMark(m.Style)+escape(title)+"*"))
	}
	if t := strings.TrimSpace(chat.Clean(m.Text)); t != "" {
		blocks = append(blocks, section(chat.ClipHeadBytes(escape(t), maxSectionText)))
	}
	var fields []*slackgo.TextBlockObject
	for _, f := range m.Fields {
		v := chat.ClipHeadBytes(escape(chat.OneLine(f.Name)), 100)
		if link, ok := linkValue(f.Value); ok {
			fields = append(fields, mrkdwn("*"+v+"*\n"+link))
			continue
		}
		fields = append(fields, mrkdwn(chat.ClipHeadBytes("*"+v+"*\n"+escape(strings.TrimSpace(chat.Clean(f.Value))), maxFieldText)))
	}
	for len(fields) > 0 {
		n := min(len(fields), maxFields)
		blocks = append(blocks, slackgo.NewSectionBlock(nil, fields[:n], nil))
		fields = fields[n:]
	}
	if len(m.Steps) > 0 {
		var b strings.Builder
		for i, s := range m.Steps {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(chat.StepMark(s.State) + " " + escape(chat.OneLine(s.Name)))
			if d := chat.OneLine(s.Detail); d != "" {
				b.WriteString(" — " + escape(d))
			}
		}
		blocks = append(blocks, section(chat.ClipHeadBytes(b.String(), maxSectionText)))
	}
	if len(m.Code) > 0 {
		blocks = append(blocks, section(codeBlock(m.Code)))
	}
	if len(m.Buttons) > 0 {
		var els []slackgo.BlockElement
		for i, b := range m.Buttons {
			btn := slackgo.NewButtonBlockElement(fmt.Sprintf("%s%d", ActionPrefix, i), b.Data,
				slackgo.NewTextBlockObject(slackgo.PlainTextType, chat.ClipHeadBytes(chat.OneLine(b.Label), maxButtonLabel), false, false))
			btn.Style = buttonStyle[b.Style]
			els = append(els, btn)
		}
		blocks = append(blocks, slackgo.NewActionBlock("shipbot_actions", els...))
	}
	if len(blocks) > maxBlocks {
		blocks = blocks[:maxBlocks]
	}
	return blocks, fallback(m, title)
}

// maxLink bounds a URL rendered as a link; a longer one is shown as text
// (a cut URL would lead somewhere else).
const maxLink = 1000

// linkValue renders a value that is exactly one http(s) URL as a Slack
// link, <URL|text> (api.slack.com/reference/surfaces/formatting, "Linking
// URLs"): the fields are mrkdwn with verbatim set, and verbatim text gets no
// automatic linking of bare URLs (api.slack.com/reference/block-kit/
// composition-objects#text). The link text is the URL without its scheme. A
// value with anything that could close or split the link (<, >, |, spaces,
// control characters) stays escaped text.
func linkValue(v string) (string, bool) {
	v = strings.TrimSpace(v)
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(v) > maxLink ||
		strings.ContainsAny(v, "<>| \t\n") || chat.Clean(v) != v {
		return "", false
	}
	text := chat.ClipHeadBytes(strings.TrimPrefix(strings.TrimPrefix(v, u.Scheme+"://"), "www."), 200)
	return "<" + strings.ReplaceAll(v, "&", "&amp;") + "|" + escape(text) + ">", true
}

// fallback is the notification text: the title and the state, escaped
// like the blocks (chat.postMessage parses it as mrkdwn too).
func fallback(m notify.Message, title string) string {
	s := chat.StyleMark(m.Style) + title
	for _, f := range m.Fields {
		if f.Name == "state" {
			s += " — " + chat.OneLine(f.Value)
			break
		}
	}
	return chat.ClipHeadBytes(escape(s), maxFallbackText)
}

// codeBlock shows output lines in a preformatted block, keeping the last
// lines that fit. A line cannot close the block early: "```" inside output is
// broken with a zero-width space.
func codeBlock(lines []string) string {
	const fence, cutNote = "```", "…\n"
	room := maxSectionText - 2*len(fence) - len(cutNote) - 2
	var kept []string
	used := 0
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.ReplaceAll(escape(chat.Clean(lines[i])), fence, "``\u200b`")
		if used+len(l)+1 > room {
			if len(kept) == 0 {
				kept = append(kept, chat.ClipTailBytes(l, room))
			}
			kept = append(kept, strings.TrimSuffix(cutNote, "\n"))
			break
		}
		kept = append(kept, l)
		used += len(l) + 1
	}
	for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
		kept[i], kept[j] = kept[j], kept[i]
	}
	return fence + "\n" + strings.Join(kept, "\n") + "\n" + fence
}

func section(text string) *slackgo.SectionBlock {
	return slackgo.NewSectionBlock(mrkdwn(text), nil, nil)
}

func mrkdwn(text string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.MarkdownType, text, false, true)
}
