package config

import (
	"fmt"
	"regexp"
	"strings"
)

var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces each ${VAR} in s with its value from lookup and reports
// whether it substituted any. "$${" stands for a literal "${"; any other '$'
// is kept as written, so shell-looking text such as "$HOME" or "$$" passes
// through untouched.
func expand(s string, lookup func(string) (string, bool)) (out string, substituted bool, err error) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), substituted, nil
		}
		if i > 0 && s[i-1] == '$' {
			// "$${": drop one '$' and keep "${" literally.
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", false, fmt.Errorf("unclosed ${ (write $${ for a literal ${)")
		}
		name := s[i+2 : i+2+end]
		if !envVarName.MatchString(name) {
			return "", false, fmt.Errorf("invalid environment variable name %q in ${...}", name)
		}
		v, ok := lookup(name)
		if !ok {
			return "", false, fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(v)
		substituted = true
		s = s[i+2+end+1:]
	}
}
