// Package pipeline turns CI/CD webhooks (GitLab, GitHub Actions, Dokploy, a
// generic signed JSON) into one normalised Event, verifies them before
// anything reads them, routes events to chats by rules, renders the one
// chat message a pipeline keeps up to date, and serves the webhook
// endpoints that write it all to the outbox in one transaction.
//
// One package serves every source because they share all of it but the
// parsing; DESIGN.md's notify/{gitlab,github,dokploy} became its files.
package pipeline

import (
	"time"
)

// Sources.
const (
	GitLab  = "gitlab"
	GitHub  = "github"
	Dokploy = "dokploy"
	Generic = "generic"
)

// Normalised statuses.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusSuccess   = "success"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	StatusSkipped   = "skipped"
)

// Statuses lists the normalised statuses, for config validation.
var Statuses = []string{StatusPending, StatusRunning, StatusSuccess, StatusFailed, StatusCancelled, StatusSkipped}

// Kinds of event.
const (
	KindPipeline   = "pipeline"
	KindJob        = "job"
	KindDeployment = "deployment"
)

// Event is one CI/CD happening in shipbot's terms.
type Event struct {
	Source      string        `json:"source"`
	Kind        string        `json:"kind"`
	Project     string        `json:"project"` // "group/name", "owner/repo", a Dokploy project/app
	ID          string        `json:"id"`      // the pipeline/run/deployment id at the source
	Ref         string        `json:"ref"`
	SHA         string        `json:"sha"`
	CommitTitle string        `json:"commit_title,omitempty"`
	Author      string        `json:"author,omitempty"`
	Status      string        `json:"status"`
	URL         string        `json:"url,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
	FailedJobs  []string      `json:"failed_jobs,omitempty"`
	Environment string        `json:"environment,omitempty"`
	Error       string        `json:"error,omitempty"` // Dokploy's errorMessage and the like
	Time        time.Time     `json:"time"`            // when the source says this state began
	// Untrusted marks code that is not the project's own branch: a fork's
	// run, or a merge request pipeline. A fork can name its branch "main",
	// so such a pipeline never offers a Deploy button.
	Untrusted bool `json:"untrusted,omitempty"`
}

// Key names the pipeline an event belongs to: every event with the same key
// edits the same chat message.
// A job's events belong to its pipeline's message ("not a new message per
// job"), so a job's key is its pipeline's.
func (e Event) Key() string {
	kind := e.Kind
	if kind == KindJob {
		kind = KindPipeline
	}
	return "pipeline:" + e.Source + ":" + e.Project + ":" + kind + ":" + e.ID
}

// Merge folds a job event into its pipeline's stored state: the pipeline's
// status stays (a job does not end a pipeline) unless nothing better is
// known, and a failed job is listed.
func Merge(prev, job Event) Event {
	out := prev
	for _, f := range job.FailedJobs {
		found := false
		for _, g := range out.FailedJobs {
			found = found || g == f
		}
		if !found {
			out.FailedJobs = append(out.FailedJobs, f)
		}
	}
	if !Final(prev.Status) && job.Status == StatusRunning {
		out.Status = StatusRunning
	}
	if job.Time.After(out.Time) {
		out.Time = job.Time
	}
	return out
}

// rank orders statuses within one pipeline: later states win, and a final
// state is never replaced by an earlier one.
var rank = map[string]int{StatusPending: 1, StatusRunning: 2, StatusSkipped: 3, StatusCancelled: 3, StatusFailed: 3, StatusSuccess: 3}

// Final reports whether s ends a pipeline.
func Final(s string) bool { return rank[s] == 3 }

// Newer reports whether next should replace prev as the pipeline's state.
// Sources redeliver and reorder: a "running" arriving after "success" must
// not undo it. A final state replaces a final state only when it is
// strictly later (a retried pipeline that now passed).
func Newer(prev, next Event) bool {
	rp, rn := rank[prev.Status], rank[next.Status]
	if rn != rp {
		if rn < rp && Final(prev.Status) {
			return false
		}
		return rn > rp || next.Time.After(prev.Time)
	}
	if next.Time.IsZero() || prev.Time.IsZero() {
		return next.Status != prev.Status || len(next.FailedJobs) != len(prev.FailedJobs)
	}
	return !next.Time.Before(prev.Time)
}
