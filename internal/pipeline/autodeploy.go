package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// AutoRule deploys every green pipeline of Project at Ref (of one of
// Workflows, globs, when given) to App/Env as the configured user As,
// through the same dispatcher, policy, locks and approvals as a chat
// command (pipelines.auto_deploy).
type AutoRule struct {
	Project, Ref string
	Workflows    []string
	App, Env, As string
	// ByName deploys the branch, not the commit: the env's driver cannot
	// deploy a commit id (Dokploy clones with git clone --branch).
	ByName bool
}

// Key names the rule in the store: one green pipeline deploys once per rule.
func (r AutoRule) Key() string { return r.App + "/" + r.Env + " " + r.Project + "@" + r.Ref }

// Auto-deploy states.
const (
	AutoPending    = "pending"    // recorded, not yet asked for (or asked, the answer not yet recorded)
	AutoStarted    = "started"    // a job exists: JobID
	AutoSkipped    = "skipped"    // refused (locked env, policy): Note says why
	AutoSuperseded = "superseded" // a newer green pipeline of the same rule came first
)

// AutoDeploy is the durable record of one rule meeting one green pipeline.
type AutoDeploy struct {
	ID       int64
	Rule     string // AutoRule.Key
	Pipeline string // the pipeline record's key (its card's topic)
	Source   string
	RunID    string // the pipeline id at the source
	Order    int64  // which pipeline is newer: the numeric id, else the time
	SHA      string
	State    string
	JobID    int64
	Note     string
	Created  time.Time
}

// AutoStore keeps auto-deploys. AddAutoDeploy returns false, changing
// nothing, when (Rule, Pipeline) is recorded already: that is what makes a
// redelivered webhook deploy nothing twice.
type AutoStore interface {
	AddAutoDeploy(ctx context.Context, a *AutoDeploy) (bool, error)
	AutoDeploys(ctx context.Context, rule string) ([]AutoDeploy, error) // open ones (pending, started) first
	UpdateAutoDeploy(ctx context.Context, a AutoDeploy) error
	OpenAutoDeploys(ctx context.Context) ([]AutoDeploy, error) // every pending one, for start-up
}

// AutoAnswer is what the dispatcher answered an auto-deploy.
type AutoAnswer struct {
	JobID   int64
	Refused bool
	Denial  string // the refusal's kind: "locked", "permission", …
	Reason  string
}

// Deployer asks for deploys and cancels on a rule's behalf, as its user,
// through the dispatcher (wired in cmd/bot, so this package needs no
// commands import).
type Deployer interface {
	AutoDeploy(ctx context.Context, r AutoRule, sha, door string) AutoAnswer
	Cancel(ctx context.Context, r AutoRule, jobID int64, door string) error
	// FindJob is the job a crash may have left unrecorded: a deploy of sha
	// to the rule's env by its user created at or after since.
	FindJob(ctx context.Context, r AutoRule, sha string, since time.Time) (*deploy.Job, error)
	Job(ctx context.Context, id int64) (*deploy.Job, error)
}

// autoDeployer is the part of Service that runs auto-deploys; one at a time,
// so two green pipelines of one rule never race past each other.
type autoDeployer struct {
	mu       sync.Mutex
	deployer Deployer
	wg       sync.WaitGroup
}

// SetDeployer wires the dispatcher in (it is built after the service) and
// resumes the auto-deploys a stop left pending. Call it once, before the
// HTTP server serves webhooks.
func (s *Service) SetDeployer(ctx context.Context, d Deployer) error {
	s.auto.mu.Lock()
	s.auto.deployer = d
	s.auto.mu.Unlock()
	if len(s.o.AutoDeploy) == 0 || s.o.Auto == nil {
		return nil
	}
	open, err := s.o.Auto.OpenAutoDeploys(ctx)
	if err != nil {
		return err
	}
	for _, a := range open {
		s.runAuto(context.WithoutCancel(ctx), a)
	}
	return nil
}

// WaitAuto waits for auto-deploys being asked for (tests, shutdown).
func (s *Service) WaitAuto() { s.auto.wg.Wait() }

// autoRuleFor returns the rules e triggers: a whole green pipeline of the
// project's own branch, vetted like a Deploy button.
func (s *Service) autoRulesFor(e Event) []AutoRule {
	if e.Status != StatusSuccess || e.Kind != KindPipeline || e.Untrusted || !e.Vetted || e.SHA == "" {
		return nil
	}
	var out []AutoRule
	for _, r := range s.o.AutoDeploy {
		if r.Project == e.Project && r.Ref == e.Ref && workflowOf(r.Workflows, e.Workflow) {
			out = append(out, r)
		}
	}
	return out
}

// autoDeploy records the auto-deploys e triggers and starts each new one.
// It runs for every verified delivery, a redelivery too: a crash after the
// pipeline was stored but before its auto-deploy was is healed by the
// source's retry, and the store's uniqueness keeps it to once.
func (s *Service) autoDeploy(ctx context.Context, e Event) error {
	if s.o.Auto == nil {
		return nil
	}
	for _, r := range s.autoRulesFor(e) {
		a := &AutoDeploy{Rule: r.Key(), Pipeline: e.Key(), Source: e.Source, RunID: e.ID, Order: order(e), SHA: e.SHA,
			State: AutoPending, Created: time.Now().UTC()}
		added, err := s.o.Auto.AddAutoDeploy(ctx, a)
		if err != nil {
			return err
		}
		if added {
			s.runAuto(context.WithoutCancel(ctx), *a)
		}
	}
	return nil
}

// order ranks pipelines of one project: ids grow at GitLab and GitHub.
func order(e Event) int64 {
	if n, err := strconv.ParseInt(e.ID, 10, 64); err == nil {
		return n
	}
	return e.Time.UnixNano()
}

func (s *Service) runAuto(ctx context.Context, a AutoDeploy) {
	s.auto.wg.Add(1)
	go func() {
		defer s.auto.wg.Done()
		s.waitPipelineMessage(ctx, a)
		s.auto.mu.Lock()
		defer s.auto.mu.Unlock()
		if s.auto.deployer == nil {
			return // resumed by SetDeployer
		}
		if err := s.startAuto(ctx, a); err != nil {
			s.o.Log.Error("auto-deploy", "rule", a.Rule, "pipeline", a.Pipeline, "err", err)
		}
	}()
}

// waitPipelineMessage gives the relay a moment to post the pipeline's card,
// so the deploy notice can thread under it; a slow chat only costs the
// threading, never the deploy.
func (s *Service) waitPipelineMessage(ctx context.Context, a AutoDeploy) {
	chats := s.pipelineChats(a)
	if len(chats) == 0 {
		return // the pipeline goes to no chat: nothing to thread under
	}
	deadline := time.Now().Add(5 * time.Second)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		for _, ch := range chats {
			if ref, err := s.o.Store.SentRef(ctx, a.Pipeline, ch); err == nil && ref != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) pipelineChats(a AutoDeploy) []notify.Channel {
	r, ok := s.rule(a.Rule)
	if !ok {
		return nil
	}
	return s.o.Routes.match(a.Source, r.Project, r.Ref, StatusSuccess, "")
}

func (s *Service) rule(key string) (AutoRule, bool) {
	for _, r := range s.o.AutoDeploy {
		if r.Key() == key {
			return r, true
		}
	}
	return AutoRule{}, false
}

// startAuto asks for one auto-deploy, newest pipeline wins: an older one of
// the same rule still pending, queued or awaiting approval is superseded
// (its job cancelled), and this one is itself superseded if a newer one is
// already known. Holds s.auto.mu.
func (s *Service) startAuto(ctx context.Context, a AutoDeploy) error {
	r, ok := s.rule(a.Rule)
	if !ok {
		a.State, a.Note = AutoSkipped, "the rule is no longer configured"
		return s.o.Auto.UpdateAutoDeploy(ctx, a)
	}
	d := s.auto.deployer
	if a.State == AutoPending {
		// A crash after the job was created and before it was recorded:
		// find that job rather than deploy again.
		if j, err := d.FindJob(ctx, r, a.SHA, a.Created); err == nil && j != nil {
			a.State, a.JobID = AutoStarted, j.ID
			return s.o.Auto.UpdateAutoDeploy(ctx, a)
		}
	}
	all, err := s.o.Auto.AutoDeploys(ctx, a.Rule)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.ID == a.ID {
			continue
		}
		if o.Order > a.Order && o.State != AutoSkipped {
			a.State, a.Note = AutoSuperseded, fmt.Sprintf("pipeline %s is newer", o.RunID)
			return s.o.Auto.UpdateAutoDeploy(ctx, a)
		}
	}
	for _, o := range all {
		if o.ID == a.ID || o.Order > a.Order {
			continue
		}
		switch o.State {
		case AutoPending:
		case AutoStarted:
			j, err := d.Job(ctx, o.JobID)
			if err != nil || (j.State != deploy.Queued && j.State != deploy.AwaitingApproval) {
				continue // running or over: a deploy already under way is not cut short
			}
			if err := d.Cancel(ctx, r, o.JobID, a.Source+"-"+a.RunID); err != nil {
				s.o.Log.Warn("auto-deploy: superseded job not cancelled", "job", o.JobID, "err", err)
				continue
			}
		default:
			continue
		}
		o.State, o.Note = AutoSuperseded, fmt.Sprintf("superseded by pipeline %s", a.RunID)
		if err := s.o.Auto.UpdateAutoDeploy(ctx, o); err != nil {
			return err
		}
	}
	ans := d.AutoDeploy(ctx, r, a.SHA, a.Source+"-"+a.RunID)
	if ans.JobID != 0 {
		a.State, a.JobID = AutoStarted, ans.JobID
		return s.o.Auto.UpdateAutoDeploy(ctx, a)
	}
	if ans.Denial == "draining" {
		return nil // shipbot is stopping: the row stays pending and is asked again after the restart
	}
	a.State, a.Note = AutoSkipped, ans.Denial+": "+ans.Reason
	if err := s.o.Auto.UpdateAutoDeploy(ctx, a); err != nil {
		return err
	}
	return s.skipNotice(ctx, r, a, ans)
}

// skipNotice tells the pipeline's thread why its green run was not deployed.
func (s *Service) skipNotice(ctx context.Context, r AutoRule, a AutoDeploy, ans AutoAnswer) error {
	title := fmt.Sprintf("Auto-deploy %s → %s skipped", r.App, r.Env)
	if ans.Denial == "locked" {
		title = fmt.Sprintf("Auto-deploy %s → %s skipped: the env is locked", r.App, r.Env)
	}
	m := notify.Message{Title: title, Style: notify.StyleWarning, Text: ans.Reason,
		Fields: []notify.Field{{Name: "ref", Value: a.SHA}, {Name: "pipeline", Value: a.RunID}, {Name: "as", Value: r.As}}}
	var posts []notify.Post
	for _, ch := range s.pipelineChats(a) {
		mm := m
		if ref, err := s.o.Store.SentRef(ctx, a.Pipeline, ch); err == nil && ref != nil {
			if ch.Platform == "slack" && ch.Thread == "" {
				ch.Thread = ref.ID
			} else {
				mm.ReplyTo = ref.ID
			}
		}
		posts = append(posts, notify.Post{Topic: fmt.Sprintf("autodeploy:%d", a.ID), Channel: ch, Message: mm})
	}
	if len(posts) == 0 {
		s.o.Log.Warn("auto-deploy skipped", "rule", a.Rule, "pipeline", a.RunID, "reason", ans.Reason)
		return nil
	}
	if err := s.o.Store.Enqueue(ctx, posts...); err != nil {
		return err
	}
	s.o.Wake()
	return nil
}
