package main

import (
	"fmt"
	"io"

	"github.com/shipbot/shipbot/internal/config"
)

// explainEnv prints app's env as shipbot reads it: the app's defaults:
// applied key by key, each inherited key marked. Values are printed as
// written, so a ${VAR} stays a reference and no secret is shown.
func explainEnv(c *config.Config, app, env string, stdout, stderr io.Writer) int {
	out, err := c.Explain(app, env)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "# %s: apps.%s.envs.%s with apps.%s.defaults applied\n%s", c.Source, app, env, app, out)
	return 0
}
