package shell

import (
	"strconv"
	"strings"

	"github.com/shipbot/shipbot/internal/chat"
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

// oneLine is chat.OneLine: titles, fields, steps and labels sit on one line
// each, and an embedded newline cannot forge extra checklist or field lines.
func oneLine(s string) string { return chat.OneLine(s) }

// clean is chat.Clean with tabs as spaces (a terminal would jump to a tab
// stop and misalign the card).
func clean(s string) string { return strings.ReplaceAll(chat.Clean(s), "\t", " ") }
