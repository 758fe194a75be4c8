package slack

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"

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

var styleMark = map[notify.Style]string{
	notify.StyleSuccess: "✅ ",
	notify.StyleDanger:  "❌ ",
	notify.StyleWarning: "⚠️ ",
}

// buttonStyle: Block Kit knows only primary and danger; others get the default.
var buttonStyle = map[notify.Style]slackgo.Style{
	notify.StyleSuccess: slackgo.StylePrimary,
	notify.StyleDanger:  slackgo.StyleDanger,
}

var stepMark = map[string]string{
	"done":    "✅",
	"running": "⏳",
	"pending": "⬜",
	"failed":  "❌",
	"skipped": "➖",
}

// Render returns m as Block Kit blocks and the plain fallback text Slack
// shows in notifications. Every value is escaped; long parts are cut to
// Block Kit's limits (output keeps its last lines: they say what went wrong).
func Render(m notify.Message) ([]slackgo.Block, string) {
	var blocks []slackgo.Block
	title := clipHead(oneLine(m.Title), maxTitle)
	if title != "" {
		blocks = append(blocks, section("*"+styleMark[m.Style]+escape(title)+"*"))
	}
	if t := strings.TrimSpace(clean(m.Text)); t != "" {
		blocks = append(blocks, section(clipHead(escape(t), maxSectionText)))
	}
	var fields []*slackgo.TextBlockObject
	for _, f := range m.Fields {
		v := clipHead(escape(oneLine(f.Name)), 100)
		if link, ok := linkValue(f.Value); ok {
			fields = append(fields, mrkdwn("*"+v+"*\n"+link))
			continue
		}
		fields = append(fields, mrkdwn(clipHead("*"+v+"*\n"+escape(strings.TrimSpace(clean(f.Value))), maxFieldText)))
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
			mark := stepMark[s.State]
			if mark == "" {
				mark = "•"
			}
			b.WriteString(mark + " " + escape(oneLine(s.Name)))
			if d := oneLine(s.Detail); d != "" {
				b.WriteString(" — " + escape(d))
			}
		}
		blocks = append(blocks, section(clipHead(b.String(), maxSectionText)))
	}
	if len(m.Code) > 0 {
		blocks = append(blocks, section(codeBlock(m.Code)))
	}
	if len(m.Buttons) > 0 {
		var els []slackgo.BlockElement
		for i, b := range m.Buttons {
			btn := slackgo.NewButtonBlockElement(fmt.Sprintf("%s%d", ActionPrefix, i), b.Data,
				slackgo.NewTextBlockObject(slackgo.PlainTextType, clipHead(oneLine(b.Label), maxButtonLabel), false, false))
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
		strings.ContainsAny(v, "<>| \t\n") || clean(v) != v {
		return "", false
	}
	text := clipHead(strings.TrimPrefix(strings.TrimPrefix(v, u.Scheme+"://"), "www."), 200)
	return "<" + strings.ReplaceAll(v, "&", "&amp;") + "|" + escape(text) + ">", true
}

// fallback is the notification text: the title and the state, escaped
// like the blocks (chat.postMessage parses it as mrkdwn too).
func fallback(m notify.Message, title string) string {
	s := styleMark[m.Style] + title
	for _, f := range m.Fields {
		if f.Name == "state" {
			s += " — " + oneLine(f.Value)
			break
		}
	}
	return clipHead(escape(s), maxFallbackText)
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
		l := strings.ReplaceAll(escape(clean(lines[i])), fence, "``\u200b`")
		if used+len(l)+1 > room {
			if len(kept) == 0 {
				kept = append(kept, clipTail(l, room))
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

// clipHead keeps the start of s within n bytes, on a rune boundary. Cuts
// happen after escaping, so an entity may be split; "&am…" still shows as
// text, never as markup.
func clipHead(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// clipTail keeps the end of s within n bytes.
func clipTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	start := len(s) - n + len("…")
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return "…" + s[start:]
}

// clean drops control characters other than newline and tab: they have no
// business in a chat message and some break Slack's rendering.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
}

func oneLine(s string) string { return strings.Join(strings.Fields(clean(s)), " ") }
