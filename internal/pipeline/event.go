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
	"slices"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

// Sources.
const (
	GitLab  = "gitlab"
	GitHub  = "github"
	Dokploy = "dokploy"
	Generic = "generic"
)

// Normalised statuses. Routes match CI pipelines and shipbot's own job
// notices by the same words, so the ones a job can have are notify's.
const (
	StatusPending   = notify.NoticePending
	StatusRunning   = notify.NoticeRunning
	StatusSuccess   = notify.NoticeSuccess
	StatusFailed    = notify.NoticeFailed
	StatusCancelled = notify.NoticeCancelled
	StatusSkipped   = "skipped"
)

// Sources lists what routes may name as a source: the webhook sources and
// shipbot's own job notices (Shipbot), for config validation.
var Sources = []string{GitLab, GitHub, Dokploy, Generic, Shipbot}

// Statuses lists the normalised statuses, for config validation.
var Statuses = []string{StatusPending, StatusRunning, StatusSuccess, StatusFailed, StatusCancelled, StatusSkipped}

// Kinds of event.
const (
	KindPipeline   = "pipeline"
	KindJob        = "job"
	KindDeployment = "deployment"
)

// Event is one CI/CD happening in shipbot's terms, and, merged, the record
// shipbot keeps of one pipeline (see Merge): the stored record is an Event
// whose Jobs hold every job heard of.
type Event struct {
	Source      string `json:"source"`
	Kind        string `json:"kind"`
	Project     string `json:"project"` // "group/name", "owner/repo", a Dokploy project/app
	ID          string `json:"id"`      // the pipeline/run/deployment id at the source
	Ref         string `json:"ref"`
	SHA         string `json:"sha"`
	CommitTitle string `json:"commit_title,omitempty"`
	// CommitTime is when the commit at SHA was made, where the source says
	// (GitLab Pipeline Hook commit.timestamp, GitHub workflow_run
	// head_commit.timestamp, generic commit_time): delivery insights measure
	// lead time for changes from it.
	CommitTime time.Time `json:"commit_time,omitzero"`
	Author     string    `json:"author,omitempty"`
	// Status is the pipeline's own status, set only by pipeline-level news
	// (GitHub workflow_run, GitLab Pipeline Hook, a Job Hook's commit.status).
	// A job event that does not say how its pipeline stands leaves it empty:
	// one job's success is not its pipeline's.
	Status     string        `json:"status"`
	URL        string        `json:"url,omitempty"`
	Duration   time.Duration `json:"duration,omitempty"`
	FailedJobs []string      `json:"failed_jobs,omitempty"` // from sources that name failed jobs only (generic)
	// Workflow is the GitHub workflow's name ("CI") or the GitLab
	// pipeline's source ("push", "schedule"); deploy buttons and routes may
	// filter on it.
	Workflow    string    `json:"workflow,omitempty"`
	Jobs        []Job     `json:"jobs,omitempty"`
	Environment string    `json:"environment,omitempty"`
	Error       string    `json:"error,omitempty"` // Dokploy's errorMessage and the like
	Time        time.Time `json:"time"`            // when the source says Status began
	// Untrusted marks code that is not the project's own branch: a fork's
	// run, or a merge request pipeline. A fork can name its branch "main",
	// so such a pipeline never offers a Deploy button.
	Untrusted bool `json:"untrusted,omitempty"`
	// Vetted: an event that can tell (a GitHub workflow_run, a GitLab
	// Pipeline Hook, a generic post) has said whose code this is. A job
	// event cannot (a GitLab Job Hook names no merge request, a
	// workflow_job no head repository), so until then no Deploy button.
	Vetted bool `json:"vetted,omitempty"`
}

// Job is one job's newest known state within its pipeline.
type Job struct {
	Name   string    `json:"name"`
	Status string    `json:"status"`
	Time   time.Time `json:"time"` // the job's own time of Status: queued, started or finished
	// AllowFailure: a GitLab job whose failure does not fail the pipeline.
	AllowFailure bool `json:"allow_failure,omitempty"`
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

// rank orders statuses within one pipeline (or one job): later states
// win, and a final state is never replaced by an earlier one.
var rank = map[string]int{StatusPending: 1, StatusRunning: 2, StatusSkipped: 3, StatusCancelled: 3, StatusFailed: 3, StatusSuccess: 3}

// Final reports whether s ends a pipeline.
func Final(s string) bool { return rank[s] == 3 }

// supersedes reports whether state next (at nextT) replaces prev (at prevT)
// of one pipeline or one job. Sources redeliver and reorder, so:
//   - a final state is never undone by one still in progress ("running"
//     arriving after "success"), and is replaced by another final state
//     only when that is strictly later (a retried pipeline that now
//     passed); an equal or unknown time keeps what is stored;
//   - between states in progress the later time wins, and at an equal or
//     unknown time the further state (running over pending).
func supersedes(prev string, prevT time.Time, next string, nextT time.Time) bool {
	if rank[next] == 0 {
		return false
	}
	if rank[prev] == 0 {
		return true
	}
	known := !prevT.IsZero() && !nextT.IsZero()
	switch {
	case Final(prev):
		return Final(next) && known && nextT.After(prevT)
	case Final(next):
		return true
	case known && !nextT.Equal(prevT):
		return nextT.After(prevT)
	}
	return rank[next] > rank[prev]
}

// Newer reports whether next's status should replace prev's.
func Newer(prev, next Event) bool { return supersedes(prev.Status, prev.Time, next.Status, next.Time) }

// Merge folds event e into rec, the stored record of its pipeline (the
// zero Event when there is none), and returns the new record. The status
// moves only by Newer; each job moves only by its own times; commit,
// author, link, duration and workflow are kept from whichever event carried
// them (a newer pipeline state may correct them). A failed job stays listed
// until a strictly later state of that job replaces it.
func Merge(rec, e Event) Event {
	out := rec
	out.Jobs = append([]Job(nil), rec.Jobs...)
	if out.Source == "" {
		out.Source, out.Kind, out.Project, out.ID = e.Source, e.Kind, e.Project, e.ID
	}
	// The record is its pipeline's, whichever event started it. A record
	// stored before pipelines had records of their own says "job" when a
	// job event started it, and its status was that job's: forgotten.
	if out.Kind == KindJob {
		out.Kind = KindPipeline
		if rec.Kind == KindJob {
			out.Status, out.Time = "", time.Time{}
		}
	}
	newer := e.Status != "" && Newer(out, e)
	if newer {
		out.Status, out.Time, out.Error = e.Status, e.Time, e.Error
		if len(e.FailedJobs) > 0 {
			out.FailedJobs = e.FailedJobs
		}
	}
	keep := func(dst *string, v string) {
		if v != "" && (*dst == "" || newer) {
			*dst = v
		}
	}
	keep(&out.Ref, e.Ref)
	keep(&out.SHA, e.SHA)
	keep(&out.CommitTitle, e.CommitTitle)
	keep(&out.Author, e.Author)
	keep(&out.URL, e.URL)
	keep(&out.Workflow, e.Workflow)
	keep(&out.Environment, e.Environment)
	if !e.CommitTime.IsZero() && (out.CommitTime.IsZero() || newer) {
		out.CommitTime = e.CommitTime
	}
	if e.Duration > 0 && (out.Duration == 0 || newer) {
		out.Duration = e.Duration
	}
	// Once any event says this is a fork's or a merge request's code, it is.
	out.Untrusted = out.Untrusted || e.Untrusted
	out.Vetted = out.Vetted || e.Vetted
	for _, j := range e.Jobs {
		i := slices.IndexFunc(out.Jobs, func(k Job) bool { return k.Name == j.Name })
		switch {
		case i < 0:
			out.Jobs = append(out.Jobs, j)
		case supersedes(out.Jobs[i].Status, out.Jobs[i].Time, j.Status, j.Time):
			out.Jobs[i] = j
		}
	}
	slices.SortFunc(out.Jobs, func(a, b Job) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Shown is the status the card shows and routes match: the pipeline's own,
// or, before any pipeline-level news, "running" once a job has started
// (a job at work proves its pipeline runs) and "pending" until then.
func (e Event) Shown() string {
	if e.Status != "" {
		return e.Status
	}
	for _, j := range e.Jobs {
		if j.Status != StatusPending {
			return StatusRunning
		}
	}
	return StatusPending
}
