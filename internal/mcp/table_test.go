package mcp

import (
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/commands"
)

// Every tool is a chat command from the command table: its line parses as
// that command, and a tool is read-only exactly when the command changes
// nothing (plan is deploy --plan, which runs nothing).
func TestToolsAreTableCommands(t *testing.T) {
	mutating := map[string]bool{}
	for _, c := range commands.Commands() {
		mutating[c.Name] = c.Mutating
	}
	sample := Args{App: "demo", Env: "staging", Ref: "main", Release: "r1", Lines: 10, ID: 3, Reason: "db work", For: "2h", Limit: 5, User: "alice"}
	for _, tl := range tools {
		line, err := tl.line(sample)
		if err != nil {
			t.Errorf("%s: %v", tl.name, err)
			continue
		}
		c, err := commands.Parse(line)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", tl.name, line, err)
			continue
		}
		if want := !mutating[c.Name] || c.Plan; tl.readOnly != want {
			t.Errorf("%s: read-only %v, but /%s changes things: %v", tl.name, tl.readOnly, c.Name, mutating[c.Name])
		}
		if !strings.Contains(tl.desc, "/"+c.Name) {
			t.Errorf("%s: description does not name /%s", tl.name, c.Name)
		}
	}
}
