package chattest

import (
	"time"

	"github.com/shipbot/shipbot/internal/insights"
	"github.com/shipbot/shipbot/internal/notify"
)

// StatsMessage is the /stats answer every adapter golden-tests: two envs,
// one with lead times and a failure not yet restored, one whose window is
// empty beside a deploy whose commit no pipeline carried; with a chart.
func StatsMessage() notify.Message {
	h := func(x float64) insights.Duration { return insights.Duration(x * float64(time.Hour)) }
	r := &insights.Report{Days: 7, From: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC), PrevFrom: time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC),
		Envs: []insights.EnvFigures{
			{App: "helpdesk", Env: "production",
				Current: insights.Figures{Deploys: 8, Successful: 5, DeploysPerDay: 5.0 / 7,
					LeadTime:       insights.Spread{N: 4, Median: h(4), P90: h(24), Unknown: 1},
					ChangeFailures: 3, ChangeFailureRate: 3.0 / 8,
					TimeToRestore: insights.Spread{N: 2, Median: h(1.25), P90: h(1.5), Unknown: 1},
					ApprovalWait:  insights.Spread{N: 2, Median: h(0.35), P90: h(0.5)},
					FailingSteps:  []insights.Count{{Name: "health", N: 2}, {Name: "build", N: 1}},
					Deployers:     []insights.Count{{Name: "alice", N: 4}, {Name: "bob", N: 3}, {Name: "carol", N: 1}}},
				Previous: insights.Figures{Deploys: 2, Successful: 1, DeploysPerDay: 1.0 / 7,
					LeadTime:       insights.Spread{N: 1, Median: h(1), P90: h(1)},
					ChangeFailures: 1, ChangeFailureRate: 0.5, TimeToRestore: insights.Spread{N: 1, Median: h(120), P90: h(120)}}},
			{App: "helpdesk", Env: "staging",
				Previous: insights.Figures{Deploys: 1, Successful: 1, DeploysPerDay: 1.0 / 7, LeadTime: insights.Spread{Unknown: 1},
					Deployers: []insights.Count{{Name: "alice", N: 1}}}},
		}}
	m := insights.Render(r, "Delivery: helpdesk, last 7 days <b>")
	m.Attachment = &notify.Attachment{Name: "delivery-helpdesk-7d.png", Content: []byte("\x89PNG\r\n\x1a\nnot really"), Type: notify.MediaPNG}
	return m
}
