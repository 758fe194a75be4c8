package notify

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy"
)

// CardTopic is the outbox topic of job id's card in the requester's chat.
func CardTopic(id int64) string { return fmt.Sprintf("job:%d", id) }

// NoticeTopic is the outbox topic of job id's notice in the chats the
// routes send shipbot's own jobs to. It differs from CardTopic so that a
// chat that is both the requester's and a routed one gets both messages
// (the card with its buttons, the short notice), not one overwriting the other.
func NoticeTopic(id int64) string { return fmt.Sprintf("notice:job:%d", id) }

// The statuses a job's notice is routed by: the pipeline statuses that
// route rules name, so one rule ("statuses: [failed]") catches failed CI
// and failed deploys alike.
const (
	NoticePending   = "pending"
	NoticeRunning   = "running"
	NoticeSuccess   = "success"
	NoticeFailed    = "failed"
	NoticeCancelled = "cancelled"
)

// NoticeStatuses lists them, for the router's check that it knows each.
var NoticeStatuses = []string{NoticePending, NoticeRunning, NoticeSuccess, NoticeFailed, NoticeCancelled}

// RoutedChat is a chat a job's notice goes to. Under, when set, is the
// message of the pipeline that built the job's commit in that chat: the
// notice goes in its thread (Slack) or answers it (Telegram).
type RoutedChat struct {
	Channel Channel
	Under   *Ref
}

// JobRoutes says where shipbot's own job notices go; pipeline.Service
// implements it from the configured routes (source "shipbot"). It is
// called inside the transaction that changes the job, so it must only read.
type JobRoutes interface {
	JobChats(ctx context.Context, j deploy.Job, status string) []RoutedChat
}

// JobPosts turns a job's change into outbox rows: the card in the chat
// that asked for the job (topic CardTopic, every change: state, steps,
// output, a released lock) and the notices the routes ask for (topic
// NoticeTopic, on a change of routed status). The store calls Posts inside
// the transaction that changes the job, so what the chat will show commits
// with the change itself: one delivery path, durable, deduplicated,
// retried and dead-lettered by the relay like every other message.
type JobPosts struct {
	routes JobRoutes
	doors  []string
	silent []string
	log    *slog.Logger
}

// JobPostsOptions configure JobPosts.
type JobPostsOptions struct {
	// Routes may be nil: no notices.
	Routes JobRoutes
	// Doors are the platforms of requests no person watches ("api",
	// "auto", "mcp"): their approval card also goes to the routes, where
	// the team looks.
	Doors []string
	// Silent are the platforms whose Sender drops every message ("api":
	// the client reads the job): their jobs get no card row at all.
	Silent []string
	Log    *slog.Logger
}

// NewJobPosts returns the job reporter.
func NewJobPosts(o JobPostsOptions) *JobPosts {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &JobPosts{routes: o.Routes, doors: o.Doors, silent: o.Silent, log: o.Log}
}

// CardChannel returns the chat j's card goes to; false when it has none
// (a scheduled job, a silent platform). A door's card otherwise goes to
// the door's Sender like any other, which decides: MCP forwards it to its
// approval chat when one is set.
func (p *JobPosts) CardChannel(j deploy.Job) (Channel, bool) {
	if j.RequestedBy.Chat == "" {
		// Scheduled jobs come from no chat; their results go out through
		// the routes instead.
		return Channel{}, false
	}
	ch, err := ParseChannel(j.RequestedBy.Chat)
	if err != nil {
		p.log.Warn("job has no chat to report to", "job", j.ID, "chat", j.RequestedBy.Chat)
		return Channel{}, false
	}
	if slices.Contains(p.silent, ch.Platform) {
		return Channel{}, false
	}
	return ch, true
}

// Posts returns the outbox rows for j's change from state prev ("" when j
// is new). The same card again is no news: the store writes no version
// for a message it already holds.
func (p *JobPosts) Posts(ctx context.Context, prev deploy.State, j deploy.Job) []Post {
	var posts []Post
	if ch, ok := p.CardChannel(j); ok {
		card := Post{Topic: CardTopic(j.ID), Channel: ch, Message: JobCard(j)}
		if j.State == deploy.Interrupted && prev != deploy.Interrupted && prev != "" && j.LockReleasedBy == "" {
			// Recovery after a stop. An edit notifies nobody (Telegram),
			// so the old card is closed and the state goes out as a new
			// message, which becomes the job's card.
			closing := JobCard(j)
			closing.Buttons, closing.Attachment = nil, nil
			closing.Text = strings.TrimSpace(closing.Text + "\n(continued in a new message below)")
			card.Closing = &closing
		}
		posts = append(posts, card)
	}
	return append(posts, p.notices(ctx, prev, j)...)
}

// noticeStatus is the routed status of a job in state s.
func noticeStatus(s deploy.State) (string, bool) {
	switch s {
	case deploy.Running:
		return NoticeRunning, true
	case deploy.Succeeded:
		return NoticeSuccess, true
	case deploy.Failed, deploy.Interrupted, deploy.RolledBack:
		return NoticeFailed, true
	}
	return "", false
}

func (p *JobPosts) isDoor(chat string) bool {
	ch, err := ParseChannel(chat)
	return err == nil && slices.Contains(p.doors, ch.Platform)
}

// notices are the routed rows of j's change from prev: one message per job
// in each routed chat, edited as it goes, written only when the routed
// status changes (a step or new output is no news there).
func (p *JobPosts) notices(ctx context.Context, prev deploy.State, j deploy.Job) []Post {
	if p.routes == nil || prev == j.State {
		return nil // a step, new output, a released lock: no news for the routes
	}
	status, ok := noticeStatus(j.State)
	door := p.isDoor(j.RequestedBy.Chat)
	switch {
	case ok:
	case door && j.State == deploy.AwaitingApproval:
		// No person watches the API or a rule: the approval card, buttons
		// and all, goes where the team reads deploy notices.
		status, ok = NoticePending, true
	case door && j.State == deploy.Cancelled && prev == deploy.AwaitingApproval:
		status, ok = NoticeCancelled, true // the card loses its buttons
	}
	if !ok {
		return nil
	}
	if before, _ := noticeStatus(prev); before == status {
		return nil
	}
	msg := DeployNotice(j)
	if status == NoticePending {
		msg = JobCard(j)
	}
	var posts []Post
	for _, rc := range p.routes.JobChats(ctx, j, status) {
		ch, m := rc.Channel, msg
		if rc.Under != nil {
			if ch.Platform == "slack" && ch.Thread == "" {
				ch.Thread = rc.Under.ID // a Slack reply thread under the pipeline's message
			} else {
				m.ReplyTo = rc.Under.ID // a reply to it where the platform has replies (Telegram)
			}
		}
		posts = append(posts, Post{Topic: NoticeTopic(j.ID), Channel: ch, Message: m})
	}
	return posts
}

// DeployNotice is the message shipbot posts about its own jobs through the
// routes: started, succeeded, failed, rolled back, edited in place as the
// job goes.
func DeployNotice(j deploy.Job) Message {
	verb := j.Action.Noun()
	state := string(j.State)
	style := StyleInfo
	switch j.State {
	case deploy.Running:
		state = "started"
	case deploy.Succeeded:
		style = StyleSuccess
	case deploy.RolledBack:
		state, style = "rolled back (health check failed)", StyleWarning
	case deploy.Failed, deploy.Interrupted:
		style = StyleDanger
	}
	m := Message{Title: fmt.Sprintf("%s %s → %s %s (job #%d)", verb, j.App, j.Env, state, j.ID), Style: style}
	if j.Ref != "" {
		m.Fields = append(m.Fields, Field{Name: "ref", Value: j.Ref})
	}
	if t := j.Target(); t != "" {
		m.Fields = append(m.Fields, Field{Name: "release", Value: t})
	}
	m.Fields = append(m.Fields, Field{Name: "by", Value: j.RequestedBy.User})
	if j.ApprovedBy != "" {
		m.Fields = append(m.Fields, Field{Name: "approved by", Value: j.ApprovedBy})
	}
	m.Text = j.Reason
	return m
}
