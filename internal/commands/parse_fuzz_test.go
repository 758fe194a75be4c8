package commands

import (
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
)

// shellMeta are characters with meaning to a POSIX shell or to option parsing.
const shellMeta = "`$;|&<>(){}[]*?!~#'\"\\\n\t\r "

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/deploy demo staging v1.2.3", "/deploy demo staging $(reboot)", "/rollback demo prod 2026-1",
		"/logs demo staging 50", "/lock demo staging because; rm -rf /", "/deploy@bot demo staging --plan", "deploy a b -x",
		"/audit 5 app=demo user=bob", "/approve abcdefghijklmnopqrstuvwx", "/deploy demo staging feature/x..y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(in)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("non-parse error %T", err)
			}
			return
		}
		// What reaches the engine and drivers: names and refs. None may
		// carry a shell metacharacter or start like an option.
		for _, name := range []string{c.App, c.Env, c.Release, c.User} {
			if name != "" && !deploy.ValidName(name) {
				t.Fatalf("invalid name %q passed", name)
			}
		}
		if c.Ref != "" {
			if deploy.ValidateRef(c.Ref) != nil || strings.ContainsAny(c.Ref, shellMeta) || strings.HasPrefix(c.Ref, "-") || strings.Contains(c.Ref, "..") {
				t.Fatalf("unsafe ref %q passed", c.Ref)
			}
		}
		if c.ID != "" && !approvalIDPattern.MatchString(c.ID) {
			t.Fatalf("bad approval id %q passed", c.ID)
		}
		for _, r := range c.Reason {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in reason %q", c.Reason)
			}
		}
	})
}
