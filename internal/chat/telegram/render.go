// Package telegram is the Telegram chat adapter. This file renders the
// platform-neutral notify.Message as a Telegram message in HTML parse mode
// with an inline keyboard.
package telegram

import (
	"strings"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"

	"github.com/shipbot/shipbot/internal/notify"
)

// MaxText is Telegram's limit for a message's text.
const MaxText = 4096

const truncatedNote = "(truncated)"

// escape makes s safe inside Telegram HTML: the Bot API requires &, < and >
// as entities; quotes are escaped too so a value can never end an attribute.
var escape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace

var styleMark = map[notify.Style]string{
	notify.StyleSuccess: "✅ ",
	notify.StyleDanger:  "❌ ",
	notify.StyleWarning: "⚠️ ",
	notify.StyleInfo:    "",
}

var stepMark = map[string]string{
	"done":    "✅",
	"running": "⏳",
	"pending": "⬜",
	"failed":  "❌",
	"skipped": "➖",
}

// Render returns m as Telegram HTML and its inline keyboard (nil without
// buttons). The text never exceeds MaxText characters: output lines are
// dropped from the top first (the last lines matter most), then the
// paragraph is cut; either way "(truncated)" says so. Every value is
// escaped, and cuts happen on the plain values before escaping, so an
// entity or tag is never split.
func Render(m notify.Message) (string, *models.InlineKeyboardMarkup) {
	code := m.Code
	text := m.Text
	out := build(m, text, code, false)
	for len(code) > 0 && utf8.RuneCountInString(out) > MaxText {
		// Drop as many lines as needed at once, roughly, then refine.
		over := utf8.RuneCountInString(out) - MaxText
		drop := 1
		for n := 0; drop < len(code) && n < over; drop++ {
			n += utf8.RuneCountInString(escape(code[drop-1])) + 1
		}
		code = code[drop:]
		out = build(m, text, code, true)
	}
	for utf8.RuneCountInString(out) > MaxText && text != "" {
		over := utf8.RuneCountInString(out) - MaxText
		r := []rune(text)
		keep := len(r) - over - len(truncatedNote) - 8 // escaping may only grow the text
		if keep < 0 {
			keep = 0
		}
		text = string(r[:keep])
		out = build(m, text+" …", code, true)
		if keep == 0 {
			text = ""
		}
	}
	if utf8.RuneCountInString(out) > MaxText {
		// Only a pathological title or field list gets here: fall back to
		// plain escaped title so the message is still delivered.
		out = "<b>" + escape(clip(m.Title, 200)) + "</b>\n" + truncatedNote
	}
	return out, keyboard(m.Buttons)
}

func build(m notify.Message, text string, code []string, truncated bool) string {
	var b strings.Builder
	if m.Title != "" {
		b.WriteString("<b>" + styleMark[m.Style] + escape(oneLine(m.Title)) + "</b>\n")
	}
	if text != "" {
		b.WriteString(escape(text) + "\n")
	}
	for _, f := range m.Fields {
		b.WriteString("<b>" + escape(oneLine(f.Name)) + ":</b> " + escape(oneLine(f.Value)) + "\n")
	}
	for _, s := range m.Steps {
		mark, ok := stepMark[s.State]
		if !ok {
			mark = "❔"
		}
		line := mark + " " + escape(oneLine(s.Name))
		if s.Detail != "" {
			line += ": " + escape(oneLine(s.Detail))
		}
		b.WriteString(line + "\n")
	}
	if truncated {
		b.WriteString("<i>" + truncatedNote + "</i>\n")
	}
	if len(code) > 0 {
		b.WriteString("<pre>")
		for i, l := range code {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(escape(l))
		}
		b.WriteString("</pre>")
	}
	return strings.TrimRight(b.String(), "\n")
}

func keyboard(bs []notify.Button) *models.InlineKeyboardMarkup {
	if len(bs) == 0 {
		return nil
	}
	row := make([]models.InlineKeyboardButton, 0, len(bs))
	for _, btn := range bs {
		row = append(row, models.InlineKeyboardButton{Text: oneLine(btn.Label), CallbackData: btn.Data})
	}
	return &models.InlineKeyboardMarkup{InlineKeyboard: [][]models.InlineKeyboardButton{row}}
}

// oneLine keeps a value on its line: chat text cannot fake extra fields.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
