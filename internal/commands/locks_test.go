package commands_test

import (
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/commands"
)

func TestParseLockFor(t *testing.T) {
	for _, c := range []struct {
		in     string
		ttl    time.Duration
		reason string
	}{
		{"/lock demo staging --for 2h db work", 2 * time.Hour, "db work"},
		{"/lock demo staging --for=30m db", 30 * time.Minute, "db"},
		{"/lock demo staging --for 1d long", 24 * time.Hour, "long"},
		{"/lock demo staging db --for 2h", 0, "db --for 2h"}, // only right after ENV
		{"/extend demo staging", time.Hour, ""},
		{"/extend demo staging 90s", 90 * time.Second, ""},
	} {
		cmd, err := commands.Parse(c.in)
		if err != nil || cmd.For != c.ttl || cmd.Reason != c.reason {
			t.Errorf("%q = for %v reason %q (%v), want %v %q", c.in, cmd.For, cmd.Reason, err, c.ttl, c.reason)
		}
	}
	for _, bad := range []string{"/lock demo staging --for 2h", "/lock demo staging --for soon x", "/lock demo staging --for 0s x",
		"/lock demo staging --for 90d x", "/extend demo staging -1h", "/locks all"} {
		if _, err := commands.Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
