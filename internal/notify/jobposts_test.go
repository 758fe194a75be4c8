package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// routes is a JobRoutes that sends every routed status to its chats and
// remembers what it was asked.
type routes struct {
	chats []notify.RoutedChat
	asked []string
}

func (r *routes) JobChats(_ context.Context, j deploy.Job, status string) []notify.RoutedChat {
	r.asked = append(r.asked, status)
	return r.chats
}

var (
	ops    = notify.Channel{Platform: "slack", ID: "C-ops"}
	tgOps  = notify.Channel{Platform: "telegram", ID: "-200"}
	mine   = notify.Channel{Platform: "telegram", ID: "-100"}
	pipeTS = &notify.Ref{Channel: ops, ID: "1700000000.000100"}
)

func jobFrom(chat string, s deploy.State) deploy.Job {
	return deploy.Job{ID: 7, App: "demo", Env: "production", Action: deploy.ActionDeploy, Ref: "v1", State: s,
		ApprovalID: "ab12", RequestedBy: deploy.Who{User: "alice", Chat: chat}}
}

func topics(posts []notify.Post) string {
	var out []string
	for _, p := range posts {
		out = append(out, p.Topic+"@"+p.Channel.String())
	}
	return strings.Join(out, " ")
}

// Every change gives the card (the store drops a message it already
// holds); the routes hear only a change of routed status, on a topic of
// their own, so a chat that is both gets both messages.
func TestJobPostsCardOnEveryChangeNoticesOnStatus(t *testing.T) {
	rt := &routes{chats: []notify.RoutedChat{{Channel: mine}, {Channel: ops, Under: pipeTS}, {Channel: tgOps, Under: &notify.Ref{Channel: tgOps, ID: "55"}}}}
	p := notify.NewJobPosts(notify.JobPostsOptions{Routes: rt, Doors: []string{"api", "auto"}})
	ctx := context.Background()
	steps := []struct {
		prev, state deploy.State
		want        string
	}{
		{"", deploy.Queued, "job:7@telegram:-100"},
		{deploy.Queued, deploy.Running, "job:7@telegram:-100 notice:job:7@telegram:-100 notice:job:7@slack:C-ops/1700000000.000100 notice:job:7@telegram:-200"},
		{deploy.Running, deploy.Running, "job:7@telegram:-100"}, // a step, output
		{deploy.Running, deploy.Failed, "job:7@telegram:-100 notice:job:7@telegram:-100 notice:job:7@slack:C-ops/1700000000.000100 notice:job:7@telegram:-200"},
	}
	for _, s := range steps {
		posts := p.Posts(ctx, s.prev, jobFrom(mine.String(), s.state))
		if got := topics(posts); got != s.want {
			t.Errorf("%s>%s: %s\nwant %s", s.prev, s.state, got, s.want)
		}
		for _, post := range posts {
			if post.Closing != nil {
				t.Errorf("%s>%s: a closing edit outside recovery", s.prev, s.state)
			}
			if post.Channel == tgOps && post.Message.ReplyTo != "55" {
				t.Errorf("telegram notice %+v: want a reply to the pipeline message", post.Message)
			}
		}
	}
	if got := strings.Join(rt.asked, ","); got != "running,failed" {
		t.Errorf("routes asked for %s", got)
	}
	// The card is the job card; the notice the short one.
	posts := p.Posts(ctx, deploy.Running, jobFrom(mine.String(), deploy.Succeeded))
	if posts[0].Message.Title != notify.JobCard(jobFrom(mine.String(), deploy.Succeeded)).Title ||
		!strings.Contains(posts[1].Message.Title, "succeeded (job #7)") {
		t.Errorf("posts %+v", posts)
	}
}

// Recovery turns a running job into an interrupted one: the card gets a
// closing edit for the old message and goes out anew; a later change of
// the same job (its lock released) edits the new card in place.
func TestJobPostsRepostOnlyWhenRecoveryInterrupts(t *testing.T) {
	p := notify.NewJobPosts(notify.JobPostsOptions{})
	ctx := context.Background()
	j := jobFrom(mine.String(), deploy.Interrupted)
	j.FromRelease, j.Switch = "r1", deploy.SwitchDone
	posts := p.Posts(ctx, deploy.Running, j)
	if len(posts) != 1 || posts[0].Closing == nil {
		t.Fatalf("posts %+v: want the card with a closing edit", posts)
	}
	c := posts[0].Closing
	if len(c.Buttons) != 0 || c.Attachment != nil || !strings.HasSuffix(c.Text, "(continued in a new message below)") {
		t.Errorf("closing edit %+v", c)
	}
	if len(posts[0].Message.Buttons) != 2 {
		t.Errorf("new card %+v: want Release lock and Rollback", posts[0].Message.Buttons)
	}
	j.LockReleasedBy = "bob"
	if posts := p.Posts(ctx, deploy.Interrupted, j); len(posts) != 1 || posts[0].Closing != nil || len(posts[0].Message.Buttons) != 0 {
		t.Errorf("lock released: %+v", posts)
	}
}

// Jobs nobody watches in a chat: a scheduled job has no card; a door's
// (API, auto-deploy, MCP) approval card, buttons and all, also goes to the
// routes as "pending", losing its buttons when cancelled.
func TestJobPostsForJobsWithoutAChat(t *testing.T) {
	rt := &routes{chats: []notify.RoutedChat{{Channel: ops}}}
	p := notify.NewJobPosts(notify.JobPostsOptions{Routes: rt, Doors: []string{"api", "auto"}})
	ctx := context.Background()
	if posts := p.Posts(ctx, deploy.Queued, jobFrom("", deploy.Running)); topics(posts) != "notice:job:7@slack:C-ops" {
		t.Errorf("scheduled job: %s", topics(posts))
	}
	if posts := p.Posts(ctx, "", jobFrom("", deploy.AwaitingApproval)); len(posts) != 0 {
		t.Errorf("scheduled approval: %s", topics(posts))
	}
	if posts := p.Posts(ctx, deploy.Queued, jobFrom("not a chat", deploy.Running)); topics(posts) != "notice:job:7@slack:C-ops" {
		t.Errorf("unreadable chat: %s", topics(posts))
	}
	// The door's own card goes to the door's Sender, which decides.
	door := jobFrom("api:ci", deploy.AwaitingApproval)
	posts := p.Posts(ctx, "", door)
	if topics(posts) != "job:7@api:ci notice:job:7@slack:C-ops" || len(posts[1].Message.Buttons) != 2 {
		t.Fatalf("door approval: %+v", posts)
	}
	door.State = deploy.Cancelled
	posts = p.Posts(ctx, deploy.AwaitingApproval, door)
	if topics(posts) != "job:7@api:ci notice:job:7@slack:C-ops" || len(posts[1].Message.Buttons) != 0 {
		t.Fatalf("door approval cancelled: %+v", posts)
	}
	// A silent door (the API drops every message) gets no card row at all.
	quiet := notify.NewJobPosts(notify.JobPostsOptions{Routes: rt, Doors: []string{"api"}, Silent: []string{"api"}})
	door.State = deploy.AwaitingApproval
	if posts := quiet.Posts(ctx, "", door); topics(posts) != "notice:job:7@slack:C-ops" {
		t.Fatalf("silent door approval: %s", topics(posts))
	}
	if _, ok := quiet.CardChannel(door); ok {
		t.Fatal("silent door has a card channel")
	}
	// A person's job is not a door's: its approval card stays in its chat.
	if posts := p.Posts(ctx, "", jobFrom(mine.String(), deploy.AwaitingApproval)); topics(posts) != "job:7@telegram:-100" {
		t.Fatalf("person's approval: %s", topics(posts))
	}
	if ch, ok := p.CardChannel(jobFrom(mine.String(), deploy.Running)); !ok || ch != mine {
		t.Errorf("card channel %v %v", ch, ok)
	}
	if got := fmt.Sprint(notify.CardTopic(7), " ", notify.NoticeTopic(7)); got != "job:7 notice:job:7" {
		t.Errorf("topics %s", got)
	}
}
