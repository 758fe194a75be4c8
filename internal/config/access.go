package config

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// User is a person: the platform identities that prove it is them, and roles.
type User struct {
	Identities []string // "PLATFORM:ID", e.g. "telegram:123456"
	Roles      []string
}

func (d *decoder) validateUsers(c *Config) {
	owner := map[string]string{} // identity -> user
	for _, name := range sortedKeys(c.Users) {
		key := join("users", name)
		d.checkName(key, name)
		u := c.Users[name]
		for i, id := range u.Identities {
			k := index(key+".identities", i)
			if err := checkIdentity(id); err != nil {
				d.fail(d.lineOf(k), k, "%v", err)
				continue
			}
			if prev, taken := owner[id]; taken {
				if prev == name {
					d.fail(d.lineOf(k), k, "identity %q is listed twice", id)
				} else {
					d.fail(d.lineOf(k), k, "identity %q already belongs to user %q; one identity maps to one user", id, prev)
				}
				continue
			}
			owner[id] = name
		}
		for i, role := range u.Roles {
			k := index(key+".roles", i)
			if _, ok := c.Roles[role]; !ok {
				d.fail(d.lineOf(k), k, "unknown role %q%s", role, known(sortedKeys(c.Roles)))
			}
		}
	}
}

func checkIdentity(id string) error {
	platform, user, ok := strings.Cut(id, ":")
	switch {
	case !ok:
		return fmt.Errorf("identity %q must be PLATFORM:ID, e.g. telegram:123456", id)
	case !slices.Contains(platforms, platform) && platform != "api": // api:NAME is a token of api.tokens
		return fmt.Errorf("identity %q names unknown platform %q (known: %s)", id, platform, strings.Join(platforms, ", "))
	case user == "":
		return fmt.Errorf("identity %q has an empty id", id)
	case strings.IndexFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("identity %q must not contain spaces", id)
	}
	return nil
}

// Role is a named set of permissions ("deploy:staging", "logs:*", "*").
type Role struct {
	Permissions []string
}

func (d *decoder) validateRole(c *Config, name string) {
	key := join("roles", name)
	d.checkName(key, name)
	for i, p := range c.Roles[name].Permissions {
		k := index(key+".permissions", i)
		if err := checkPermission(c, p); err != nil {
			d.fail(d.lineOf(k), k, "%v", err)
		}
	}
}

// checkPermission accepts "*", "VERB", "VERB:*", "VERB:ENV", "VERB:APP/ENV"
// and the special grants; names must exist so a typo cannot silently grant
// nothing (or, worse, something once an env of that name is added).
func checkPermission(c *Config, p string) error {
	if p == "*" || slices.Contains(specialPermissions, p) {
		return nil
	}
	verb, scope, scoped := strings.Cut(p, ":")
	if !slices.Contains(verbs, verb) {
		return fmt.Errorf("permission %q has unknown verb %q (known: %s)", p, verb, strings.Join(verbs, ", "))
	}
	if !scoped || scope == "*" {
		return nil
	}
	if scope == "" {
		return fmt.Errorf("permission %q has an empty scope: write %s, %s:*, %s:ENV or %s:APP/ENV", p, verb, verb, verb, verb)
	}
	if app, env, ok := strings.Cut(scope, "/"); ok {
		a, found := c.Apps[app]
		if !found {
			return fmt.Errorf("permission %q names unknown app %q", p, app)
		}
		if _, found := a.Envs[env]; !found {
			return fmt.Errorf("permission %q names env %q, which app %q does not have", p, env, app)
		}
		return nil
	}
	for _, a := range c.Apps {
		if _, found := a.Envs[scope]; found {
			return nil
		}
	}
	return fmt.Errorf("permission %q names env %q, which no app has", p, scope)
}
