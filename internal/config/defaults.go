package config

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// inherit returns env's mapping with the app's defaults under it, key by
// key: a key the env writes wins; where both write a mapping the two are
// merged the same way, one level down at a time; anything else (a list, a
// single value, null) is replaced whole, so a list is never merged. Nodes
// keep their lines, so an error still points at the line it was written
// on. A key that comes from the defaults is marked for Explain.
func (d *decoder) inherit(defaults, env *yaml.Node, path string) *yaml.Node {
	base, over := d.resolve(defaults), d.resolve(env)
	if base.Kind != yaml.MappingNode || (over.Kind != yaml.MappingNode && !isNull(over)) {
		return env
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: over.Line, Column: over.Column}
	if isNull(over) {
		out.Line, out.Column = base.Line, base.Column
	}
	own := map[string]*yaml.Node{}
	ownPairs := d.quietPairs(over)
	for _, p := range ownPairs {
		own[p.key.Value] = p.value
	}
	for _, p := range d.quietPairs(base) {
		v, ok := own[p.key.Value]
		switch {
		case !ok:
			k := *p.key
			k.LineComment = "from defaults"
			out.Content = append(out.Content, &k, p.value)
		case d.resolve(v).Kind == yaml.MappingNode && d.resolve(p.value).Kind == yaml.MappingNode:
			own[p.key.Value] = d.inherit(p.value, v, join(path, p.key.Value))
		}
	}
	for _, p := range ownPairs {
		out.Content = append(out.Content, p.key, own[p.key.Value])
	}
	return out
}

// quietPairs is pairs without reporting: the mapping is reported on when it
// is decoded, and reporting here too would say everything twice.
func (d *decoder) quietPairs(n *yaml.Node) []pair {
	errs := len(d.errs)
	before := map[string]bool{}
	for k := range d.broken {
		before[k] = true
	}
	ps := d.pairs(n, "")
	d.errs = d.errs[:errs]
	for k := range d.broken {
		if !before[k] {
			delete(d.broken, k)
		}
	}
	return ps
}

// Explain is the YAML of app's env with the app's defaults applied, each
// inherited key marked "# from defaults", as `bot check --explain` prints
// it; values are as written (a ${VAR} stays a reference, never its secret).
func (c *Config) Explain(app, env string) (string, error) {
	a, ok := c.Apps[app]
	if !ok {
		return "", fmt.Errorf("no app %q in %s", app, c.Source)
	}
	if _, ok := a.Envs[env]; !ok {
		return "", fmt.Errorf("no env %q in app %s", env, app)
	}
	n := c.resolved[app+"/"+env]
	if n == nil {
		return "", fmt.Errorf("app %s has no defaults: its env %s is as written", app, env)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(plain(n)); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return b.String(), nil
}

// plain copies n without the file's comments (they describe the file, not
// the resolved env). Lists of single values (argv) stay on one line; the
// rest is written in block style, where a key can carry its "from
// defaults" mark (on a one-line value the mark goes on the value).
func plain(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c := *n
	c.HeadComment, c.FootComment = "", ""
	if c.LineComment != "from defaults" {
		c.LineComment = ""
	}
	if c.Kind == yaml.SequenceNode && leaves(n) {
		c.Style |= yaml.FlowStyle
	} else {
		c.Style &^= yaml.FlowStyle
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = plain(k)
	}
	if c.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(c.Content); i += 2 {
			k, v := c.Content[i], c.Content[i+1]
			if k.LineComment != "" && (v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0) {
				v.LineComment, k.LineComment = k.LineComment, ""
			}
		}
	}
	return &c
}

func leaves(n *yaml.Node) bool {
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}
