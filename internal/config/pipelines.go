package config

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
)

// Pipelines configures webhook sources, routes and deploy buttons. A source
// is enabled by giving its secret; none is served without one.
type Pipelines struct {
	GitLabToken   audit.Secret // X-Gitlab-Token
	GitHubSecret  audit.Secret // HMAC key of X-Hub-Signature-256
	DokploySecret audit.Secret // the value of DokployHeader
	DokployHeader string       // default X-Shipbot-Token
	GenericSecret audit.Secret // HMAC key of X-Shipbot-Signature
	AdminChat     string       // dead letters are reported here
	MaxAttempts   int          // before a notification is dead-lettered; default 10
	Routes        []PipelineRoute
	DeployButtons []DeployButton
	AutoDeploy    []AutoDeploy
}

// PipelineRoute sends matching events to Chats ("telegram:-100123/7", "slack:C0123").
// Workflows (globs) is the GitHub workflow name or GitLab pipeline source.
type PipelineRoute struct {
	Sources, Projects, Refs, Statuses, Workflows []string
	Chats                                        []string
}

// DeployButton offers "Deploy to ENV" on green pipelines of Project at Ref;
// with Workflows (globs: [CI, "Deploy*"]) only on those workflows' runs.
type DeployButton struct {
	Project, Ref, App, Env string
	Workflows              []string
}

// Enabled reports whether any webhook source is configured.
func (p Pipelines) Enabled() bool {
	return !p.GitLabToken.IsZero() || !p.GitHubSecret.IsZero() || !p.DokploySecret.IsZero() || !p.GenericSecret.IsZero()
}

// pipelineStatuses and pipelineSources are what routes may name: the
// pipeline package's own lists.
var (
	pipelineStatuses = pipeline.Statuses
	pipelineSources  = pipeline.Sources
)

func (d *decoder) validatePipelines(c *Config) {
	if c.Pipelines.DokployHeader == "" { // no pipelines block: the defaults
		c.Pipelines.DokployHeader, c.Pipelines.MaxAttempts = defaultDokployHeader, defaultMaxAttempts
	}
	p := c.Pipelines
	const k = "pipelines"
	if p.Enabled() && c.HTTP.Listen == "" {
		d.fail(d.lineOf(k), "http.listen", "is required to receive pipeline webhooks")
	}
	if p.AdminChat != "" {
		if _, err := notify.ParseChannel(p.AdminChat); err != nil {
			d.fail(d.lineOf(k+".admin_chat"), k+".admin_chat", "%v", err)
		}
	}
	if p.MaxAttempts < 1 {
		d.fail(d.lineOf(k+".max_attempts"), k+".max_attempts", "must be at least 1")
	}
	for i, r := range p.Routes {
		key := index(k+".routes", i)
		if len(r.Chats) == 0 {
			d.fail(d.lineOf(key), key+".chats", "is required: a route must say where events go")
		}
		for j, ch := range r.Chats {
			cp, err := notify.ParseChannel(ch)
			if err == nil && !slices.Contains(platforms, cp.Platform) {
				err = fmt.Errorf("unknown platform %q", cp.Platform)
			}
			if err != nil {
				d.fail(d.lineOf(index(key+".chats", j)), index(key+".chats", j), "%v (write telegram:CHAT[/TOPIC] or slack:CHANNEL[/THREAD_TS])", err)
			}
		}
		for _, g := range slices.Concat(r.Projects, r.Refs, r.Workflows) {
			if _, err := path.Match(g, ""); err != nil {
				d.fail(d.lineOf(key), key, "glob %q: %v", g, err)
			}
		}
		for _, s := range r.Statuses {
			if !slices.Contains(pipelineStatuses, s) {
				d.fail(d.lineOf(key+".statuses"), key+".statuses", "unknown status %q (known: %s)", s, strings.Join(pipelineStatuses, ", "))
			}
		}
		for _, s := range r.Sources {
			if !slices.Contains(pipelineSources, s) {
				d.fail(d.lineOf(key+".sources"), key+".sources", "unknown source %q (known: %s)", s, strings.Join(pipelineSources, ", "))
			}
		}
	}
	for i, b := range p.DeployButtons {
		key := index(k+".deploy_buttons", i)
		if b.Project == "" {
			d.fail(d.lineOf(key), key+".project", "is required")
		}
		for _, g := range b.Workflows {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				d.fail(d.lineOf(key+".workflows"), key+".workflows", "glob %q: want a workflow name or pattern (CI, \"Deploy*\")", g)
			}
		}
		if a, ok := c.Apps[b.App]; !ok {
			d.fail(d.lineOf(key), key+".app", "unknown app %q", b.App)
		} else if _, ok := a.Envs[b.Env]; !ok {
			d.fail(d.lineOf(key), key+".env", "app %q has no env %q", b.App, b.Env)
		}
	}
}
