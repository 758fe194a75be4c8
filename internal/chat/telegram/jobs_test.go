package telegram_test

import (
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

func jobIn(ch notify.Channel) func(state string) deploy.Job {
	return func(state string) deploy.Job {
		return deploy.Job{ID: 12, App: "helpdesk", Env: "production", Action: deploy.ActionDeploy, State: deploy.State(state),
			RequestedBy: deploy.Who{User: "alice", Chat: ch.String()}}
	}
}
