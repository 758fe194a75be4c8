package commands

// access is who may do what, and on which apps: the part of the
// configuration a reload replaces while requests are being handled.
type access struct {
	policy  *Policy
	catalog Catalog
}

// SetAccess replaces the policy and the catalog (a config reload). A request
// already being handled finishes with what it started with; jobs already
// created keep their recipe.
func (d *Dispatcher) SetAccess(p *Policy, c Catalog) {
	d.access.Store(&access{policy: p, catalog: c})
}

func (d *Dispatcher) pol() *Policy { return d.access.Load().policy }
func (d *Dispatcher) cat() Catalog { return d.access.Load().catalog }

// Catalog is the configured apps as the dispatcher sees them now, for doors
// that list them (the HTTP API's /apps).
func (d *Dispatcher) Catalog() Catalog { return d.cat() }
