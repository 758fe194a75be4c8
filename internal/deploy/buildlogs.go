package deploy

import "context"

// BuildLogger is implemented by a driver whose target keeps the log of each
// build apart from the app's own log (Dokploy): /logs APP ENV --build.
type BuildLogger interface {
	// BuildLogs returns at most lines lines of the last build's log.
	BuildLogs(ctx context.Context, lines int) (Logs, error)
}

// BuildLogs reads the last build's log; secrets known to the redactor are
// removed. Drivers without build logs are refused.
func (e *Engine) BuildLogs(ctx context.Context, app, env string, lines int) (Logs, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return Logs{}, err
	}
	bl, ok := As[BuildLogger](d)
	if !ok {
		return Logs{}, refuse("%s/%s keeps no build log apart from its app log; use /logs %s %s", app, env, app, env)
	}
	l, err := bl.BuildLogs(ctx, lines)
	for i := range l.Lines {
		l.Lines[i] = e.redact.String(l.Lines[i])
	}
	return l, err
}
