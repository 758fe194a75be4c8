package chat

import (
	"strings"
	"unicode/utf8"

	"github.com/shipbot/shipbot/internal/notify"
)

// Clean removes from s what no chat should receive from a log line or a
// value: ANSI/VT escape sequences whole (CSI, OSC, DCS and the short ESC
// forms; dropping only the ESC would leave "[31m" behind), C0 controls other
// than newline and tab, DEL, C1 controls (U+0080..U+009F, which include the
// 8-bit CSI) and the Unicode bidirectional controls that can make text read
// in another order than it is (a ref or a file name that looks like
// something else). Invalid UTF-8 becomes U+FFFD.
func Clean(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune(utf8.RuneError)
			i += max(size, 1)
		case r == 0x1b:
			i = skipEscape(s, i)
		case r == '\n', r == '\t':
			b.WriteByte(byte(r))
			i += size
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, IsBidiControl(r):
			i += size
		default:
			b.WriteString(s[i : i+size])
			i += size
		}
	}
	return b.String()
}

// OneLine cleans s and folds every run of white space (line breaks
// included) into one space: titles, fields, steps and labels sit on one line
// each, and an embedded newline cannot forge an extra field or step.
func OneLine(s string) string { return strings.Join(strings.Fields(Clean(s)), " ") }

// isPlain reports whether s is printable ASCII plus newline and tab, the
// common case that needs no copy.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// IsBidiControl reports the Unicode bidirectional embeddings, overrides,
// isolates and marks (LRE..RLO, LRI..PDI, LRM, RLM, ALM).
func IsBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// skipEscape returns the index just past the escape sequence starting with
// ESC at s[i]. An unterminated sequence swallows the rest of s: printing its
// tail could complete it together with whatever a terminal shows next.
func skipEscape(s string, i int) int {
	i++ // ESC
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[': // CSI: parameter and intermediate bytes, then one final byte.
		i++
		for i < len(s) {
			c := s[i]
			i++
			if c >= 0x40 && c <= 0x7e {
				return i
			}
			if c < 0x20 || c > 0x7e {
				// Not a CSI byte: the sequence is malformed; drop what we
				// have and resume at this byte.
				return i - 1
			}
		}
		return i
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (ESC \).
		i++
		for i < len(s) {
			switch {
			case s[i] == 0x07:
				return i + 1
			case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
				return i + 2
			}
			i++
		}
		return i
	default: // ESC, intermediates (0x20..0x2f), one final byte: ESC ( B, ESC 7, ESC c...
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	}
}

// ClipRunes keeps the first n runes of s, marking a cut with "…".
func ClipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// ClipHeadBytes keeps the start of s within n bytes ("…" included), on a
// rune boundary.
func ClipHeadBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ClipTailBytes keeps the end of s within n bytes ("…" included): the last
// lines of output say what went wrong.
func ClipTailBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	start := len(s) - n + len("…")
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return "…" + s[start:]
}

// StepMark is the emoji of a checklist step's state (a deploy.StepState)
// in the chat apps; a state without one gets "❔" rather than passing for
// a plain list item.
func StepMark(state string) string {
	if m, ok := stepMarks[state]; ok {
		return m
	}
	return "❔"
}

var stepMarks = map[string]string{
	"done":    "✅",
	"running": "⏳",
	"pending": "⬜",
	"failed":  "❌",
	"skipped": "➖",
}

// StyleMark is the emoji, with a space after it, that leads a title of that
// style in the chat apps; info has none.
func StyleMark(s notify.Style) string { return styleMarks[s] }

var styleMarks = map[notify.Style]string{
	notify.StyleSuccess: "✅ ",
	notify.StyleDanger:  "❌ ",
	notify.StyleWarning: "⚠️ ",
}
