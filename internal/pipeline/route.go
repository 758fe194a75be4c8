package pipeline

import (
	"fmt"
	"path"
	"slices"

	"github.com/shipbot/shipbot/internal/notify"
)

// Rule sends matching events to Chats. An empty list matches anything;
// Projects, Refs and Workflows are globs (path.Match: "acme/*",
// "feature/*", "Deploy*"). With Workflows, a pipeline whose workflow is not
// known (yet) does not match.
type Rule struct {
	Sources   []string
	Projects  []string
	Refs      []string
	Statuses  []string
	Workflows []string
	Chats     []notify.Channel
}

// Validate says what is wrong with r, for config errors.
func (r Rule) Validate() error {
	if len(r.Chats) == 0 {
		return fmt.Errorf("no chats: a rule must say where events go")
	}
	for _, g := range slices.Concat(r.Projects, r.Refs, r.Workflows) {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("glob %q: %v", g, err)
		}
	}
	for _, s := range r.Statuses {
		if !slices.Contains(Statuses, s) {
			return fmt.Errorf("status %q: want one of %v", s, Statuses)
		}
	}
	for _, s := range r.Sources {
		if !slices.Contains([]string{GitLab, GitHub, Dokploy, Generic, Shipbot}, s) {
			return fmt.Errorf("source %q: want gitlab, github, dokploy, generic or shipbot", s)
		}
	}
	return nil
}

// Shipbot is the source of shipbot's own deploy notices in routing rules.
const Shipbot = "shipbot"

func (r Rule) matches(source, project, ref, status, workflow string) bool {
	return anyOf(r.Sources, source, false) && anyOf(r.Projects, project, true) && anyOf(r.Refs, ref, true) &&
		anyOf(r.Statuses, status, false) && workflowOf(r.Workflows, workflow)
}

// workflowOf matches a workflow filter: none matches anything, and a
// filter never matches a workflow not known (not even "*").
func workflowOf(list []string, workflow string) bool {
	return len(list) == 0 || (workflow != "" && anyOf(list, workflow, true))
}

func anyOf(list []string, v string, glob bool) bool {
	if len(list) == 0 {
		return true
	}
	for _, p := range list {
		if p == v {
			return true
		}
		if ok, _ := path.Match(p, v); glob && ok {
			return true
		}
	}
	return false
}

// Routes are the configured rules, in order.
type Routes []Rule

// Match returns the chats of every rule the pipeline record e matches
// (by the status its card shows), each once, in rule order.
func (rs Routes) Match(e Event) []notify.Channel {
	return rs.match(e.Source, e.Project, e.Ref, e.Shown(), e.Workflow)
}

func (rs Routes) match(source, project, ref, status, workflow string) []notify.Channel {
	var out []notify.Channel
	for _, r := range rs {
		if !r.matches(source, project, ref, status, workflow) {
			continue
		}
		for _, c := range r.Chats {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// DeployOffer puts a "Deploy to ENV" button on green pipelines of Project
// at Ref; with Workflows (globs), only on those workflows' green runs, so
// a passing "CodeQL" does not offer what a failing "CI" should hold back.
type DeployOffer struct {
	Project, Ref string
	Workflows    []string
	App, Env     string
	// ByName offers the branch or tag, never the commit: the env's driver
	// cannot deploy a commit id (Dokploy clones with git clone --branch).
	ByName bool
}

// offerFor returns the offer that applies to e, if any.
func offerFor(offers []DeployOffer, e Event) *DeployOffer {
	// Only a whole pipeline of the project's own branch: a job's success
	// is not its pipeline's, and a fork's "main" is not main.
	if e.Status != StatusSuccess || e.Kind != KindPipeline || e.Untrusted || !e.Vetted {
		return nil
	}
	for i, o := range offers {
		if o.Project == e.Project && (o.Ref == e.Ref || o.Ref == "") && workflowOf(o.Workflows, e.Workflow) {
			return &offers[i]
		}
	}
	return nil
}
