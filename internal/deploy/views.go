package deploy

import (
	"context"
	"errors"
)

// Plan says what a deploy would do, running nothing.
func (e *Engine) Plan(ctx context.Context, app, env, ref string) (Plan, *Lock, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return Plan{}, nil, err
	}
	cur, err := e.currentRelease(ctx, d)
	if err != nil {
		return Plan{}, nil, err
	}
	p, err := d.Plan(ctx, DeployRequest{App: app, Env: env, Ref: ref, Release: NewReleaseID(e.now(), 0), Previous: cur})
	if err != nil {
		return Plan{}, nil, err
	}
	l, err := e.store.Lock(ctx, app, env)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return p, nil, err
	}
	return p, l, nil
}

// ReleaseView is a release on the target joined with the engine's record of it.
type ReleaseView struct {
	ReleaseInfo
	Record *Release // nil when the engine has no record (made by hand, or before shipbot)
}

// Releases lists what is on the target, newest first, with who/when/state.
func (e *Engine) Releases(ctx context.Context, app, env string) ([]ReleaseView, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return nil, err
	}
	onDisk, err := d.Releases(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := e.store.Releases(ctx, app, env)
	if err != nil {
		return nil, err
	}
	byID := map[string]*Release{}
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	out := make([]ReleaseView, 0, len(onDisk))
	for _, r := range onDisk {
		out = append(out, ReleaseView{ReleaseInfo: r, Record: byID[r.ID]})
	}
	return out, nil
}

// Status asks the driver what is live.
func (e *Engine) Status(ctx context.Context, app, env string) (Status, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return Status{}, err
	}
	return d.Status(ctx)
}

// Logs reads bounded log lines; secrets known to the redactor are removed.
func (e *Engine) Logs(ctx context.Context, app, env string, lines int) (Logs, error) {
	d, err := e.driver(app, env)
	if err != nil {
		return Logs{}, err
	}
	l, err := d.Logs(ctx, lines)
	for i := range l.Lines {
		l.Lines[i] = e.redact.String(l.Lines[i])
	}
	return l, err
}

// Store gives read access for listings.
func (e *Engine) Store() Store { return e.store }
