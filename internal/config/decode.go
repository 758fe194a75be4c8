package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks the yaml.Node tree by hand rather than through
// yaml.Unmarshal so that it knows the line of every key, can report every
// unknown key with its full path, and keeps going after the first problem.
type decoder struct {
	file   string
	lookup func(string) (string, bool)
	errs   Errors
	// lines maps a key path ("apps.demo.envs.staging.path", "...build[0]")
	// to the line it was written on, so validation can point at it.
	lines map[string]int
	// broken holds key paths that already failed to decode; validation
	// stays quiet about them instead of restating the same mistake.
	broken map[string]bool
	// fromEnv holds key paths whose value came (partly) from ${VAR}: they
	// may be secrets, so the summary does not print them.
	fromEnv    map[string]bool
	resolved   map[string]*yaml.Node // see Config.resolved
	validating bool
	visits     int
}

// maxVisits bounds the walk: aliases can make a small file describe an
// exponentially large tree ("billion laughs").
const maxVisits = 1_000_000

func (d *decoder) fail(line int, key, format string, args ...any) {
	if d.validating && d.isBroken(key) {
		return
	}
	if !d.validating {
		if d.broken == nil {
			d.broken = map[string]bool{}
		}
		d.broken[key] = true
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) isBroken(key string) bool {
	for k := key; k != ""; k = parentKey(k) {
		if d.broken[k] {
			return true
		}
	}
	return false
}

// brokenUnder reports whether something inside key failed to decode, for
// checks about a block as a whole ("needs git or copy") that would be wrong
// when the block's content could not be read.
func (d *decoder) brokenUnder(key string) bool {
	for k := range d.broken {
		if strings.HasPrefix(k, key+".") || strings.HasPrefix(k, key+"[") {
			return true
		}
	}
	return false
}

// parentKey drops the last ".name" or "[i]" of a key path.
func parentKey(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}

// lineOf is the line of key, or of its nearest written ancestor when key
// itself is absent (a missing required key is reported where its parent is).
func (d *decoder) lineOf(key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := d.lines[k]; ok {
			return l
		}
	}
	return 1
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data into its root node; nil means nothing to decode
// (empty, or a syntax error that has been recorded).
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntax(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.fail(extra.Line, "", "only one YAML document is allowed")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntax(err)
		return nil
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return nil
}

func (d *decoder) syntax(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.fail(line, "", "YAML syntax: %s", m[2])
		return
	}
	d.fail(0, "", "%s", strings.TrimPrefix(msg, "yaml: "))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "document"
}

// resolve follows aliases to the node they name.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (d *decoder) budget(n *yaml.Node, key string) bool {
	d.visits++
	if d.visits == maxVisits {
		d.fail(n.Line, key, "document too large (aliases expand to more than %d nodes)", maxVisits)
	}
	return d.visits < maxVisits
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

type pair struct{ key, value *yaml.Node }

// pairs returns the entries of mapping n, with "<<" merge keys applied
// (explicit keys win over merged ones). A null value is an empty mapping.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	n = d.resolve(n)
	if !d.budget(n, path) || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "must be a mapping, not a %s", kindName(n))
		return nil
	}
	var own, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k.Line, path, "keys must be plain names, not a %s", kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k.Line, join(path, k.Value), "duplicate key (first written on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key.Line
			own = append(own, p)
		}
	}
	return own
}

// mergeSources is the entries a "<<" value contributes: one mapping, or a
// list of mappings where earlier ones win.
func (d *decoder) mergeSources(v *yaml.Node, path string) []pair {
	v = d.resolve(v)
	if v.Kind == yaml.SequenceNode {
		var out []pair
		for _, item := range v.Content {
			out = append(out, d.pairs(item, path)...)
		}
		return out
	}
	return d.pairs(v, path)
}

type fields map[string]func(v *yaml.Node, key string)

// object decodes mapping n whose keys must all be in fs.
func (d *decoder) object(n *yaml.Node, path string, fs fields) {
	for _, p := range d.pairs(n, path) {
		key := join(path, p.key.Value)
		fn, ok := fs[p.key.Value]
		if !ok {
			d.fail(p.key.Line, key, "unknown key%s", suggest(p.key.Value, fs))
			continue
		}
		d.lines[key] = p.key.Line
		fn(p.value, key)
	}
}

// named decodes a mapping whose keys are names chosen by the user (users,
// roles, apps, envs); validation checks the names.
func (d *decoder) named(n *yaml.Node, path string, each func(name string, v *yaml.Node, key string)) {
	for _, p := range d.pairs(n, path) {
		key := join(path, p.key.Value)
		d.lines[key] = p.key.Line
		each(p.key.Value, p.value, key)
	}
}

// scalar returns the ${VAR}-expanded text of a single value. ok is false
// for null (the caller keeps its default) and after a recorded error.
func (d *decoder) scalar(n *yaml.Node, key string) (s string, line int, ok bool) {
	n = d.resolve(n)
	line = n.Line
	if n.Kind != yaml.ScalarNode {
		d.fail(line, key, "must be a single value, not a %s", kindName(n))
		return "", line, false
	}
	if isNull(n) {
		return "", line, false
	}
	s, substituted, err := expand(n.Value, d.lookup)
	if err != nil {
		d.fail(line, key, "%v", err)
		return "", line, false
	}
	if substituted {
		d.fromEnv[key] = true
	}
	return s, line, true
}

func (d *decoder) str(n *yaml.Node, key string, dst *string) {
	if s, _, ok := d.scalar(n, key); ok {
		*dst = s
	}
}

func (d *decoder) int(n *yaml.Node, key string, dst *int) {
	s, line, ok := d.scalar(n, key)
	if !ok {
		return
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		d.fail(line, key, "must be a whole number, not %q", s)
		return
	}
	*dst = v
}

func (d *decoder) bool(n *yaml.Node, key string, dst *bool) {
	s, line, ok := d.scalar(n, key)
	if !ok {
		return
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		d.fail(line, key, "must be true or false, not %q", s)
	}
}

func (d *decoder) duration(n *yaml.Node, key string, dst *Duration) {
	s, line, ok := d.scalar(n, key)
	if !ok {
		return
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		d.fail(line, key, "must be a duration such as 30s, 10m or 1h30m, not %q", s)
	case v < 0:
		d.fail(line, key, "must not be negative")
	default:
		dst.Duration = v
	}
}

// list returns the items of sequence n; null is an empty list.
func (d *decoder) list(n *yaml.Node, key string) []*yaml.Node {
	n = d.resolve(n)
	if !d.budget(n, key) || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n.Line, key, "must be a list, not a %s", kindName(n))
		return nil
	}
	return n.Content
}

// strs decodes a list of single values. Items keep their index even when
// one is null or broken, so validation messages name the right [i].
func (d *decoder) strs(n *yaml.Node, key string, dst *[]string) {
	items := d.list(n, key)
	out := make([]string, len(items))
	for i, item := range items {
		k := index(key, i)
		d.lines[k] = d.resolve(item).Line
		d.str(item, k, &out[i])
	}
	*dst = out
}

// argvs decodes a list of commands, each a list of words. A command written
// as one string is refused rather than split: splitting would need shell
// quoting rules, and commands never go through a shell.
func (d *decoder) argvs(n *yaml.Node, key string, dst *[][]string) {
	items := d.list(n, key)
	out := make([][]string, len(items))
	for i, item := range items {
		k := index(key, i)
		r := d.resolve(item)
		d.lines[k] = r.Line
		if r.Kind == yaml.ScalarNode && !isNull(r) {
			d.fail(r.Line, k, "a command is a list of words (argv), e.g. [systemctl, restart, myapp], not %q", r.Value)
			continue
		}
		d.strs(item, k, &out[i])
	}
	*dst = out
}

// suggest names the known key closest to a misspelt one, if any is close.
func suggest(key string, fs fields) string {
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(key, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		return " (known: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
