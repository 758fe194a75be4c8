package audit

import (
	"log/slog"
	"sort"
	"strings"
)

// Secret holds a credential read from configuration. Every way of printing it
// (fmt, JSON, YAML, slog) shows a placeholder; only Reveal gives the value, so
// a secret that reaches a log or a chat message has been revealed on purpose.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

const redacted = "[redacted]"

func (s Secret) Reveal() string               { return s.v }
func (s Secret) IsZero() bool                 { return s.v == "" }
func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Redactor replaces known secret values in free text (command output, error
// messages) before that text is stored, logged or posted.
type Redactor struct {
	values []string
}

// NewRedactor knows the given secrets. Values shorter than 4 bytes are ignored:
// redacting "1" everywhere would destroy output without protecting anything.
func NewRedactor(secrets ...Secret) *Redactor {
	r := &Redactor{}
	for _, s := range secrets {
		if len(s.v) >= 4 {
			r.values = append(r.values, s.v)
		}
	}
	// Longest first so a secret that contains another is replaced whole.
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	return r
}

// String returns s with every known secret replaced.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}

// Event redacts every free-text field of e in place.
func (r *Redactor) Event(e *Event) {
	if r == nil {
		return
	}
	for i := range e.Args {
		e.Args[i] = r.String(e.Args[i])
	}
	e.Outcome = r.String(e.Outcome)
}
