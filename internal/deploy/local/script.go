package local

import (
	"context"
	"errors"

	"github.com/shipbot/shipbot/internal/deploy/release"
)

var _ release.ScriptHost = (*Host)(nil)

// RunScript runs the script with /bin/sh through Run, so it gets Run's
// process group, environment and output handling: cancelling ctx kills the
// script and every step it started.
func (h *Host) RunScript(ctx context.Context, s release.Script, out func(line string)) error {
	if s.Stdin != nil {
		return errors.New("the local host takes no script input")
	}
	return h.run(ctx, "", []string{"/bin/sh", "-c", s.Text, "sh"}, true, out)
}

// Remote is false: the script reads the artifact from its path and the bot
// itself bounds each step.
func (h *Host) Remote() bool { return false }
