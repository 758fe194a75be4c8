package telegram

import (
	"strings"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/chat"
	"github.com/shipbot/shipbot/internal/notify"
)

// MaxText is Telegram's limit for a message's text, in UTF-16 code units
// after entity parsing. Render counts the HTML source instead (tags and
// entities included), which is never less, so a card is never refused for
// its length.
const MaxText = 4096

// maxTitle and maxName bound values that have no business being long, so one
// pathological value cannot push everything else off the card.
const (
	maxTitle = 256
	maxName  = 64
)

const truncatedNote = "<i>(truncated)</i>"

// escape makes s safe inside Telegram HTML: the Bot API requires &, < and >
// as entities; quotes are escaped too so a value can never end an attribute.
var escape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace

// buttonStyle maps to the Bot API's button colours; other styles get the app default.
var buttonStyle = map[notify.Style]string{
	notify.StyleSuccess: "success",
	notify.StyleDanger:  "danger",
}

// line is one line of a card: HTML before one plain value, so a cut only
// ever shortens the plain value and the markup stays whole.
type line struct {
	pre, plain string
}

func (l line) html() string { return l.pre + escape(l.plain) }

// Render returns m as Telegram HTML and its inline keyboard (nil without
// buttons). Every value is escaped, and only the paragraph and the output
// span lines, so no value can pose as a field. A card over MaxText is cut:
// the title stays, the paragraph, fields and steps are kept from the top,
// output lines from the bottom (the last lines say what went wrong), and
// "(truncated)" says so.
func Render(m notify.Message) (string, *models.InlineKeyboardMarkup) {
	return renderText(m), keyboard(m.Buttons)
}

func renderText(m notify.Message) string {
	var title string
	if t := chat.OneLine(m.Title); t != "" {
		title = "<b>" + chat.StyleMark(m.Style) + escape(chat.ClipRunes(t, maxTitle)) + "</b>"
	}
	var body []line
	for _, l := range splitLines(m.Text) {
		body = append(body, line{plain: l})
	}
	for _, f := range m.Fields {
		body = append(body, line{pre: "<b>" + escape(chat.ClipRunes(chat.OneLine(f.Name), maxName)) + ":</b> ", plain: chat.OneLine(f.Value)})
	}
	for _, s := range m.Steps {
		mark := chat.StepMark(s.State)
		if d := chat.OneLine(s.Detail); d != "" {
			body = append(body, line{pre: mark + " " + escape(chat.ClipRunes(chat.OneLine(s.Name), maxName)) + ": ", plain: d})
		} else {
			body = append(body, line{pre: mark + " ", plain: chat.OneLine(s.Name)})
		}
	}
	var code []string
	for _, c := range m.Code {
		code = append(code, splitLines(c)...)
	}

	var head []string
	if title != "" {
		head = append(head, title)
	}
	for _, l := range body {
		head = append(head, l.html())
	}
	codeHTML := make([]string, len(code))
	for i, c := range code {
		codeHTML[i] = escape(c)
	}
	out := compose(head, false, codeHTML)
	if out == "" {
		return "(empty message)" // Telegram refuses an empty text
	}
	if units(out) <= MaxText {
		return out
	}
	return cut(title, body, code)
}

// cut fits an over-long card into MaxText. Output may take half of the room
// the title leaves, so a long step list cannot hide the error at the end of
// the log, and a long log cannot hide the steps.
func cut(title string, body []line, code []string) string {
	const nl = 1
	ellipsis := units("…")
	room := MaxText - units(truncatedNote) - nl
	var head []string
	if title != "" {
		head = append(head, title)
		room -= units(title) + nl
	}
	codeAll := 0
	for _, c := range code {
		codeAll += units(escape(c)) + nl
	}
	headRoom := room
	if len(code) > 0 {
		room -= units("<pre></pre>")
		headRoom = room - min(codeAll, room/2)
	}
	for _, l := range body {
		h := l.html()
		if units(h)+nl <= headRoom {
			head = append(head, h)
			headRoom -= units(h) + nl
			room -= units(h) + nl
			continue
		}
		// The first line that does not fit is cut to the room left; the rest go.
		if fit := headRoom - nl - units(l.pre) - ellipsis; fit > 0 {
			h = l.pre + escape(clipHeadFit(l.plain, fit)) + "…"
			head = append(head, h)
			room -= units(h) + nl
		}
		break
	}
	var tail []string // output lines, last first
	for i := len(code) - 1; i >= 0; i-- {
		h := escape(code[i])
		if units(h)+nl <= room {
			tail = append(tail, h)
			room -= units(h) + nl
			continue
		}
		if len(tail) == 0 && room-nl-ellipsis > 0 {
			// Even the last line alone is too long: keep its end.
			tail = append(tail, "…"+escape(clipTailFit(code[i], room-nl-ellipsis)))
		}
		break
	}
	for i, j := 0, len(tail)-1; i < j; i, j = i+1, j-1 {
		tail[i], tail[j] = tail[j], tail[i]
	}
	return compose(head, true, tail)
}

func compose(head []string, truncated bool, code []string) string {
	var b strings.Builder
	for _, h := range head {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	if truncated {
		b.WriteString(truncatedNote + "\n")
	}
	if len(code) > 0 {
		b.WriteString("<pre>" + strings.Join(code, "\n") + "</pre>")
	}
	return strings.TrimRight(b.String(), "\n")
}

// units is the length Telegram measures: UTF-16 code units.
func units(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// clipHeadFit is the longest prefix of s whose escaped form fits in room units.
func clipHeadFit(s string, room int) string {
	rs := []rune(s)
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if units(escape(string(rs[:mid]))) <= room {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return string(rs[:lo])
}

// clipTailFit is the longest suffix of s whose escaped form fits in room units.
func clipTailFit(s string, room int) string {
	rs := []rune(s)
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if units(escape(string(rs[len(rs)-mid:]))) <= room {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return string(rs[len(rs)-lo:])
}

func splitLines(s string) []string {
	s = strings.TrimRight(chat.Clean(s), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func keyboard(bs []notify.Button) *models.InlineKeyboardMarkup {
	if len(bs) == 0 {
		return nil
	}
	// Up to three buttons share a row; more wrap, so labels stay readable on a phone.
	var rows [][]models.InlineKeyboardButton
	for i, btn := range bs {
		if i%3 == 0 {
			rows = append(rows, nil)
		}
		label := chat.ClipRunes(chat.OneLine(btn.Label), maxName)
		if label == "" {
			label = "•" // Telegram refuses a button without a label
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], models.InlineKeyboardButton{
			Text: label, CallbackData: btn.Data, Style: buttonStyle[btn.Style]})
	}
	return &models.InlineKeyboardMarkup{InlineKeyboard: rows}
}

// wireKeyboard is an inline keyboard as sent. The library's button type
// always serialises "copy_text":{"text":""}, which Telegram refuses
// (BUTTON_COPY_TEXT_INVALID), so buttons go out in this narrower form.
type wireKeyboard struct {
	InlineKeyboard [][]wireButton `json:"inline_keyboard"`
}

type wireButton struct {
	Text         string `json:"text"`
	CallbackData string `json:"callback_data"`
	Style        string `json:"style,omitempty"`
}

// wire converts kb; nil becomes an empty keyboard, which removes the buttons
// of an edited message.
func wire(kb *models.InlineKeyboardMarkup) *wireKeyboard {
	w := &wireKeyboard{InlineKeyboard: [][]wireButton{}}
	if kb == nil {
		return w
	}
	for _, row := range kb.InlineKeyboard {
		r := []wireButton{}
		for _, b := range row {
			r = append(r, wireButton{Text: b.Text, CallbackData: b.CallbackData, Style: b.Style})
		}
		w.InlineKeyboard = append(w.InlineKeyboard, r)
	}
	return w
}
