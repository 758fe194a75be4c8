package release

import (
	"slices"
	"sort"
	"testing"
)

// TemplateVars, which config validates templates against, is exactly what
// the runner fills in (plus "lines", which logs commands get).
func TestTemplateVarsAreWhatTheRunnerFills(t *testing.T) {
	r := &Runner{}
	var got []string
	for k := range r.vars(&target{base: "/srv/demo"}, "r1", "main") {
		got = append(got, k)
	}
	got = append(got, "lines")
	sort.Strings(got)
	want := slices.Sorted(slices.Values(TemplateVars))
	if !slices.Equal(got, want) {
		t.Fatalf("runner fills %v, TemplateVars says %v", got, want)
	}
}
