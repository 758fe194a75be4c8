package commands

import (
	"fmt"
	"sort"
	"strings"
)

// Actor is the verified person behind a request, resolved from the platform
// identity, never from message text or button data.
type Actor struct {
	User     string
	Identity string
	Roles    []string
	Perms    []string
}

// UserSpec is one configured person.
type UserSpec struct {
	Identities []string
	Roles      []string
}

// Policy is default-deny RBAC: a permission is granted only by a role that lists it.
type Policy struct {
	identities map[string]string
	users      map[string]UserSpec
	roles      map[string][]string
}

// PermView is the grant the list commands (/apps, /jobs, /locks, /pending)
// need; what they list is cut to the envs it covers.
const PermView = "view"

// SpecialPermissions are grants that read like VERB:ENV but are not: they
// are whole tokens, matched only by Has. ReservedEnvNames are their second
// halves, which config refuses as env names so no env can be granted by
// them.
var (
	SpecialPermissions = []string{"lock:force", "audit:read"}
	ReservedEnvNames   = []string{"force", "read"}
)

// NewPolicy builds a policy from users and role -> permissions.
//
// A role that grants no view permission of its own gets "view" (every env):
// before view existed every configured person could list apps, jobs, locks
// and approvals, and a config written then keeps working. A role that names
// view (view:staging, say) gets exactly what it names.
func NewPolicy(users map[string]UserSpec, roles map[string][]string) *Policy {
	withView := make(map[string][]string, len(roles))
	for r, perms := range roles {
		withView[r] = perms
		if !grantsVerb(perms, PermView) {
			withView[r] = append(append([]string(nil), perms...), PermView)
		}
	}
	roles = withView
	p := &Policy{identities: map[string]string{}, users: users, roles: roles}
	for name, u := range users {
		for _, id := range u.Identities {
			p.identities[id] = name
		}
	}
	return p
}

// Actor resolves a verified identity ("telegram:123").
func (p *Policy) Actor(identity string) (Actor, bool) {
	name, ok := p.identities[identity]
	if !ok {
		return Actor{}, false
	}
	return p.User(name, identity)
}

// User resolves a configured user by name, for in-process doors that act
// as one (an auto-deploy rule's "as:"); identity is recorded as given.
func (p *Policy) User(name, identity string) (Actor, bool) {
	u, ok := p.users[name]
	if !ok {
		return Actor{}, false
	}
	a := Actor{User: name, Identity: identity, Roles: append([]string(nil), u.Roles...)}
	seen := map[string]bool{}
	for _, r := range u.Roles {
		for _, perm := range p.roles[r] {
			if !seen[perm] {
				seen[perm] = true
				a.Perms = append(a.Perms, perm)
			}
		}
	}
	sort.Strings(a.Perms)
	return a, true
}

// Can reports whether a holds verb on app/env. Grants: "*", "verb",
// "verb:*", "verb:ENV", "verb:APP/ENV".
func (a Actor) Can(verb, app, env string) bool {
	for _, p := range a.Perms {
		if isSpecial(p) {
			continue // lock:force is not lock on an env named "force"
		}
		if p == "*" || p == verb || p == verb+":*" || p == verb+":"+env || p == verb+":"+app+"/"+env {
			return true
		}
	}
	return false
}

// CanSome reports whether a holds verb on at least one env: enough to ask
// for a list, which then shows only what Can allows.
func (a Actor) CanSome(verb string) bool {
	return grantsVerb(a.Perms, verb)
}

// grantsVerb reports whether perms hold verb in any scope.
func grantsVerb(perms []string, verb string) bool {
	for _, p := range perms {
		if isSpecial(p) {
			continue
		}
		if v, _, _ := strings.Cut(p, ":"); p == "*" || v == verb {
			return true
		}
	}
	return false
}

func isSpecial(p string) bool {
	for _, s := range SpecialPermissions {
		if p == s {
			return true
		}
	}
	return false
}

// Has reports whether a holds a special permission like "lock:force" or
// "audit:read" (or a wildcard covering it).
func (a Actor) Has(perm string) bool {
	verb, _, _ := strings.Cut(perm, ":")
	for _, p := range a.Perms {
		if p == "*" || p == perm || p == verb || p == verb+":*" {
			return true
		}
	}
	return false
}

// HasRole reports whether a has one of roles (any role when roles is empty).
func (a Actor) HasRole(roles []string) bool {
	if len(roles) == 0 {
		return true
	}
	for _, r := range a.Roles {
		for _, want := range roles {
			if r == want {
				return true
			}
		}
	}
	return false
}

// Missing is the refusal text naming the permission a lacks.
func Missing(verb, app, env string) string {
	return fmt.Sprintf("permission denied: you need %s:%s (or %s:%s/%s)", verb, env, verb, app, env)
}
