package shell

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shipbot/shipbot/internal/notify"
)

// Step states as the engine writes them (deploy.StepState values). They are
// spelled out here rather than imported so the terminal renderer depends only
// on the notify message model.
const (
	statePending = "pending"
	stateRunning = "running"
	stateDone    = "done"
	stateFailed  = "failed"
	stateSkipped = "skipped"
)

// Render draws m as terminal text, one line per element, every line ending in
// "\n". label is asked once per button, in order, for what the person types
// to press it; a nil label renders "[?]". Every value is cleaned of
// control characters first, so chat text cannot move the cursor, recolour or
// retitle the terminal.
func Render(m notify.Message, label func(i int, b notify.Button) string) string {
	var b strings.Builder
	if m.Title != "" {
		b.WriteString(styleMarker(m.Style))
		b.WriteByte(' ')
		b.WriteString(oneLine(m.Title))
		b.WriteByte('\n')
	}
	if text := strings.TrimRight(clean(m.Text), "\n"); text != "" {
		b.WriteString(text)
		b.WriteByte('\n')
	}
	for _, f := range m.Fields {
		b.WriteString("  ")
		b.WriteString(oneLine(f.Name))
		b.WriteString(": ")
		b.WriteString(oneLine(f.Value))
		b.WriteByte('\n')
	}
	for _, st := range m.Steps {
		b.WriteString("  ")
		b.WriteString(stepLine(st))
		b.WriteByte('\n')
	}
	for _, c := range m.Code {
		for _, line := range strings.Split(strings.TrimRight(clean(c), "\n"), "\n") {
			b.WriteString("  │ ")
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	if a := m.Attachment; a != nil {
		b.WriteString("  (")
		if a.Type == notify.MediaPNG {
			b.WriteString("picture ")
		} else {
			b.WriteString("attachment ")
		}
		b.WriteString(oneLine(a.Name))
		b.WriteString(", ")
		b.WriteString(strconv.Itoa(len(a.Content)))
		b.WriteString(" bytes)\n")
	}
	if len(m.Buttons) > 0 {
		for i, btn := range m.Buttons {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteByte('[')
			if label != nil {
				b.WriteString(label(i, btn))
			} else {
				b.WriteByte('?')
			}
			b.WriteString("] ")
			b.WriteString(oneLine(btn.Label))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func styleMarker(s notify.Style) string {
	switch s {
	case notify.StyleSuccess:
		return "✔"
	case notify.StyleDanger:
		return "✖"
	case notify.StyleWarning:
		return "⚠"
	default:
		return "•"
	}
}

func stepLine(st notify.Step) string {
	name := oneLine(st.Name)
	var line string
	switch st.State {
	case stateDone:
		line = "[x] " + name
	case stateRunning:
		line = "[>] " + name + " (running)"
	case statePending:
		line = "[ ] " + name
	case stateFailed:
		line = "[!] " + name
	case stateSkipped:
		line = "[-] " + name
	default:
		// A state this renderer does not know still shows, rather than
		// passing for pending.
		line = "[?] " + name + " (" + oneLine(st.State) + ")"
	}
	if d := oneLine(st.Detail); d != "" {
		line += ": " + d
	}
	return line
}

// oneLine cleans s and folds its line breaks into spaces: titles, fields,
// steps and labels sit on one line each, and an embedded newline would
// otherwise forge extra checklist or field lines.
func oneLine(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(clean(s), "\n", " "))
}

// clean removes everything from s that a terminal would act on instead of
// print: ANSI/VT escape sequences (CSI, OSC, DCS and the short ESC forms), C0
// controls other than "\n" (a tab becomes a space so words stay apart), DEL,
// C1 controls (U+0080..U+009F, which include the 8-bit CSI) and the Unicode
// bidirectional overrides that can reorder what the reader sees. Invalid UTF-8
// becomes U+FFFD so no stray byte reaches the terminal.
func clean(s string) string {
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
			i += size
			if size == 0 {
				i++
			}
		case r == 0x1b:
			i = skipEscape(s, i)
		case r == '\n':
			b.WriteByte('\n')
			i += size
		case r == '\t':
			b.WriteByte(' ')
			i += size
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, isBidiControl(r):
			i += size
		default:
			b.WriteString(s[i : i+size])
			i += size
		}
	}
	return b.String()
}

// isPlain reports whether s is printable ASCII (plus "\n"), the common case
// that needs no copy.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\n') || c >= 0x7f {
			return false
		}
	}
	return true
}

func isBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// skipEscape returns the index just past the escape sequence starting with
// ESC at s[i]. An unterminated sequence swallows the rest of s: printing its
// tail could complete it together with whatever the terminal shows next.
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
