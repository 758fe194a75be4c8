package release

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// exitTail is how many last lines an *ExitError carries.
const exitTail = 5

// ansiEscape matches terminal control sequences (CSI ... final byte, and
// OSC ... BEL/ST) that programs print because the step runs on a PTY. They
// would show up as garbage in a chat message.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)`)

// LineWriter turns a command's output stream into lines for out, for Host
// implementations: it splits on '\n', drops a '\r' before it (PTYs add one),
// keeps only what follows the last inner '\r' (a progress bar redrawing its
// line ends as its final state, as on a terminal), strips terminal escape
// sequences and cuts lines longer than max bytes at a rune boundary. It
// keeps the last lines for an *ExitError. Safe for concurrent writers
// (stdout and stderr may share it).
type LineWriter struct {
	max int
	out func(string)

	mu     sync.Mutex
	cur    []byte
	cut    bool
	last   []string
	closed bool
}

// NewLineWriter returns a LineWriter cutting lines at max bytes (max > 0).
func NewLineWriter(max int, out func(string)) *LineWriter {
	return &LineWriter{max: max, out: out}
}

func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		// Escape sequences may be cut between writes, so the line keeps
		// some slack beyond max and is trimmed when emitted.
		if room := 2*w.max - len(w.cur); len(chunk) > room {
			w.cur = append(w.cur, chunk[:max(room, 0)]...)
			w.cut = true
		} else {
			w.cur = append(w.cur, chunk...)
		}
		if i < 0 {
			break
		}
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (w *LineWriter) emit() {
	line := strings.TrimRight(string(w.cur), "\r")
	if i := strings.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	line = ansiEscape.ReplaceAllString(line, "")
	cut := w.cut
	if len(line) > w.max {
		end := w.max
		for end > 0 && !utf8.RuneStart(line[end]) {
			end--
		}
		line, cut = line[:end], true
	}
	if cut {
		line += " …"
	}
	w.cur, w.cut = w.cur[:0], false
	w.last = append(w.last, line)
	if len(w.last) > exitTail {
		w.last = w.last[1:]
	}
	if w.out != nil {
		w.out(line)
	}
}

// Close flushes a last line without newline; later writes are dropped so
// out is never called after the command's Run returned.
func (w *LineWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if len(w.cur) > 0 || w.cut {
		w.emit()
	}
	w.closed = true
}

// Tail is the last few lines, for an *ExitError.
func (w *LineWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, "\n")
}
