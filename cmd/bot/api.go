package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/api"
	"github.com/shipbot/shipbot/internal/apitoken"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/config"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/pipeline"
	"github.com/shipbot/shipbot/internal/sqlite"
)

// autoPlatform is the door of auto-deploy rules: "auto:SOURCE-PIPELINE" is
// the chat of their jobs and audit rows.
const autoPlatform = "auto"

// doors are the platforms of requests no person watches.
var doors = []string{api.Platform, autoPlatform}

// newAPIDoor builds the HTTP API. Its tokens follow the running config, so
// a SIGHUP that removes a token revokes it at once.
func newAPIDoor(lv *live, db *sqlite.DB, log *slog.Logger) *api.Server {
	tokens := liveTokens(lv)
	return api.New(api.Options{Tokens: tokens, Store: db, Keys: db, Log: log,
		Catalog: func() commands.Catalog { return catalog(lv.config()) }})
}

// ruleDeployer is how auto-deploy rules reach the dispatcher: as the rule's
// user, through the door "auto", like a chat command.
type ruleDeployer struct {
	h  commands.Handler
	db *sqlite.DB
}

var _ pipeline.Deployer = ruleDeployer{}

func (r ruleDeployer) req(rule pipeline.AutoRule, door, text string) commands.Request {
	return commands.Request{Platform: autoPlatform, UserID: rule.As, As: rule.As, Via: autoPlatform,
		Chat: notify.Channel{Platform: autoPlatform, ID: door}, Text: text}
}

func (r ruleDeployer) AutoDeploy(ctx context.Context, rule pipeline.AutoRule, sha, door string) pipeline.AutoAnswer {
	ref := sha
	if rule.ByName {
		ref = rule.Ref
	}
	rep := r.h.Handle(ctx, r.req(rule, door, fmt.Sprintf("/deploy %s %s %s", rule.App, rule.Env, ref)))
	return pipeline.AutoAnswer{JobID: rep.JobID, Refused: rep.Refused, Denial: rep.Denial, Reason: rep.Notice}
}

func (r ruleDeployer) Cancel(ctx context.Context, rule pipeline.AutoRule, jobID int64, door string) error {
	if rep := r.h.Handle(ctx, r.req(rule, door, fmt.Sprintf("/cancel %d", jobID))); rep.Refused {
		return fmt.Errorf("cancel job #%d: %s", jobID, rep.Notice)
	}
	return nil
}

func (r ruleDeployer) FindJob(ctx context.Context, rule pipeline.AutoRule, sha string, since time.Time) (*deploy.Job, error) {
	js, err := r.db.Jobs(ctx, deploy.JobFilter{App: rule.App, Env: rule.Env, Limit: 20})
	if err != nil {
		return nil, err
	}
	for _, j := range js {
		if (j.Ref == sha || (rule.ByName && j.Ref == rule.Ref)) && j.RequestedBy.User == rule.As &&
			j.RequestedBy.Identity == autoPlatform+":"+rule.As && !j.Created.Before(since.Add(-time.Second)) {
			return j, nil
		}
	}
	return nil, nil
}

func (r ruleDeployer) Job(ctx context.Context, id int64) (*deploy.Job, error) {
	return r.db.Job(ctx, id)
}

// autoRules are the config's auto_deploy rules for the pipeline service.
func autoRules(c *config.Config) []pipeline.AutoRule {
	var out []pipeline.AutoRule
	for _, a := range c.Pipelines.AutoDeploy {
		out = append(out, pipeline.AutoRule{Project: a.Project, Ref: a.Ref, Workflows: a.Workflows, App: a.App, Env: a.Env, As: a.As,
			ByName: c.Apps[a.App].Envs[a.Env].Driver == "dokploy"})
	}
	return out
}

// liveTokens gives the token set of the running config, built again only
// when a reload replaced the config, so every door revokes a removed token
// at the reload.
func liveTokens(lv *live) func() *apitoken.Set {
	var mu sync.Mutex
	var seen *config.Config
	var set *apitoken.Set
	return func() *apitoken.Set {
		c := lv.config()
		mu.Lock()
		defer mu.Unlock()
		if c != seen {
			seen, set = c, apitoken.NewSet(c.API.Tokens)
		}
		return set
	}
}
