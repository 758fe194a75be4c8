package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int    // 0 when the problem has no line (an empty file)
	Key  string // full key path, "apps.demo.envs.staging.path"; "" for syntax errors
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem Parse found, in file order.
type Errors []*Error

var (
	_ error = (*Error)(nil)
	_ error = Errors(nil)
)

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find an individual *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Msg < b.Msg
	})
}

// dedupe drops an error that repeats an earlier one at the same line about
// the same key name: a key inherited from an app's defaults is decoded once
// under defaults and again in every env, and a mistake in it is one mistake.
func (es Errors) dedupe() Errors {
	type spot struct {
		line int
		name string
		msg  string
	}
	seen := map[spot]bool{}
	out := es[:0]
	for _, e := range es {
		s := spot{e.Line, lastKey(e.Key), e.Msg}
		if e.Line > 0 && seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, e)
	}
	return out
}

// lastKey is the last name of a key path, without list indexes.
func lastKey(k string) string {
	for k != "" {
		i := strings.LastIndexAny(k, ".[")
		if i < 0 || k[i] == '.' {
			return k[i+1:]
		}
		k = k[:i]
	}
	return ""
}
