package pipeline

import (
	"context"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// In Telegram a deploy notice answers its pipeline's message as a reply
// (Slack threads it instead; see TestServiceFlow).
func TestDeployNoticeRepliesToItsPipelineInTelegram(t *testing.T) {
	store := newMem()
	tg := notify.Channel{Platform: "telegram", ID: "-100", Thread: "7"}
	svc := New(Options{Store: store, Routes: Routes{{Sources: []string{Shipbot}, Chats: []notify.Channel{tg}}},
		Projects: map[string]string{"web": "octo-org/octo-repo"}})
	sha := "acb5820ced9479c074f688cc328bf03f341a511d"
	store.tracked["pipeline:github:octo-org/octo-repo:pipeline:1"] = notify.Tracked{Topic: "pipeline:github:octo-org/octo-repo:pipeline:1",
		Project: "octo-org/octo-repo", SHA: sha}
	j := deploy.Job{ID: 4, App: "web", Env: "staging", Action: deploy.ActionDeploy, Ref: sha, State: deploy.Running}
	jp := notify.NewJobPosts(notify.JobPostsOptions{Routes: svc})
	posts := jp.Posts(context.Background(), deploy.Queued, j)
	if len(posts) != 1 || posts[0].Message.ReplyTo != "1700000000.000100" || posts[0].Channel != tg {
		t.Fatalf("posts %+v: want one reply to the pipeline message, in the same topic", posts)
	}
	// A deploy of a ref with no pipeline message is a plain message.
	j.Ref = "v9.9.9"
	if posts := jp.Posts(context.Background(), deploy.Queued, j); len(posts) != 1 || posts[0].Message.ReplyTo != "" {
		t.Fatalf("posts %+v", posts)
	}
}

// Job notices are routed by the statuses rules name: each one notify uses
// must be a status the routes' config accepts.
func TestNoticeStatusesAreRouteStatuses(t *testing.T) {
	for _, s := range notify.NoticeStatuses {
		if err := (Rule{Statuses: []string{s}, Chats: []notify.Channel{{Platform: "shell", ID: "t"}}}).Validate(); err != nil {
			t.Errorf("notice status %q: %v", s, err)
		}
	}
}
