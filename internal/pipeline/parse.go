package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrIgnored is a verified delivery shipbot has nothing to say about (a
// GitHub ping, a GitLab push): answered 200 and counted, never posted.
var ErrIgnored = errors.New("event ignored")

// Parse turns a verified delivery into events. It returns ErrIgnored for
// event types shipbot does not report and a descriptive error for bodies
// that do not parse.
func Parse(source string, h http.Header, body []byte) ([]Event, error) {
	var (
		e   Event
		err error
	)
	switch source {
	case GitLab:
		e, err = parseGitLab(h.Get("X-Gitlab-Event"), body)
	case GitHub:
		e, err = parseGitHub(h.Get("X-GitHub-Event"), body)
	case Dokploy:
		e, err = parseDokploy(body)
	case Generic:
		e, err = parseGeneric(body)
	default:
		return nil, fmt.Errorf("unknown source %q", source)
	}
	if err != nil {
		return nil, err
	}
	e.Source = source
	// A signed body of the wrong shape (a workflow_job under
	// X-GitHub-Event: workflow_run) has no pipeline id: refused, never
	// "pipeline #0".
	if e.Project == "" || e.ID == "" || (e.Status == "" && e.Kind != KindJob) {
		return nil, fmt.Errorf("%s event without project, pipeline id or status", source)
	}
	if e.Kind == KindJob && (len(e.Jobs) != 1 || e.Jobs[0].Name == "" || e.Jobs[0].Status == "") {
		return nil, fmt.Errorf("%s job event without job name or status", source)
	}
	return []Event{e}, nil
}

// DeliveryKey identifies one delivery for dedupe: the source's own delivery
// id when it sends one, otherwise a hash of the body (a byte-identical
// redelivery is the same delivery).
func DeliveryKey(source string, h http.Header, body []byte) string {
	for _, name := range []string{"Idempotency-Key", "X-Gitlab-Event-UUID", "X-GitHub-Delivery"} {
		if v := strings.TrimSpace(h.Get(name)); v != "" && len(v) <= 200 {
			return "hook:" + source + ":" + v
		}
	}
	sum := sha256.Sum256(body)
	return "hook:" + source + ":sha256:" + hex.EncodeToString(sum[:])
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

// parseTime reads the time formats the sources use: GitLab's
// "2016-08-12 15:23:28 UTC" and "2021-04-28 21:50:00 +0200", and RFC 3339.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05 -0700", "2006-01-02T15:04:05.000Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 1e12 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}

// idString is a source's numeric id as shipbot keys it; a missing (zero)
// id is "" so Parse refuses the event.
func idString(n int64) string {
	if n <= 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// jobTime is the time of a job's status from the job's own timestamps:
// finished for a final state, started while running, created before.
func jobTime(status, created, started, finished string) time.Time {
	order := []string{created, started}
	switch {
	case Final(status):
		order = []string{finished, started, created}
	case status == StatusRunning:
		order = []string{started, created}
	}
	for _, v := range order {
		if t := parseTime(v); !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

// gitlabStatus maps GitLab's pipeline/job/deployment statuses.
func gitlabStatus(s string) string {
	switch s {
	case "created", "waiting_for_resource", "preparing", "pending", "scheduled", "manual", "blocked":
		return StatusPending
	case "running":
		return StatusRunning
	case "success":
		return StatusSuccess
	case "failed":
		return StatusFailed
	case "canceled", "cancelled", "canceling":
		return StatusCancelled
	case "skipped":
		return StatusSkipped
	}
	return ""
}

type glProject struct {
	Path   string `json:"path_with_namespace"`
	WebURL string `json:"web_url"`
}

func parseGitLab(kind string, body []byte) (Event, error) {
	switch kind {
	case "Pipeline Hook":
		var p struct {
			Attrs struct {
				ID         int64    `json:"id"`
				Ref        string   `json:"ref"`
				SHA        string   `json:"sha"`
				Status     string   `json:"status"`
				CreatedAt  string   `json:"created_at"`
				FinishedAt string   `json:"finished_at"`
				Duration   *float64 `json:"duration"`
				URL        string   `json:"url"`
				Source     string   `json:"source"`
			} `json:"object_attributes"`
			MergeRequest *struct {
				SourceProjectID int64 `json:"source_project_id"`
				TargetProjectID int64 `json:"target_project_id"`
			} `json:"merge_request"`
			User    struct{ Name, Username string } `json:"user"`
			Project glProject                       `json:"project"`
			Commit  struct {
				Message   string `json:"message"`
				Title     string `json:"title"`
				Timestamp string `json:"timestamp"`
				Author    struct{ Name string }
			} `json:"commit"`
			Builds []struct {
				Name, Status string
				CreatedAt    string `json:"created_at"`
				StartedAt    string `json:"started_at"`
				FinishedAt   string `json:"finished_at"`
				AllowFailure bool   `json:"allow_failure"`
			} `json:"builds"`
		}
		if err := decode(body, &p); err != nil {
			return Event{}, err
		}
		e := Event{Kind: KindPipeline, Project: p.Project.Path, ID: idString(p.Attrs.ID), Ref: p.Attrs.Ref,
			SHA: p.Attrs.SHA, Status: gitlabStatus(p.Attrs.Status), URL: p.Attrs.URL, Author: p.Commit.Author.Name,
			CommitTitle: p.Commit.Title, Workflow: p.Attrs.Source, CommitTime: parseTime(p.Commit.Timestamp)}
		if e.CommitTitle == "" {
			e.CommitTitle = firstLine(p.Commit.Message)
		}
		if e.Author == "" {
			e.Author = p.User.Name
		}
		// A merge request pipeline runs the MR's code (maybe a fork's),
		// whatever its ref says.
		e.Untrusted = p.Attrs.Source == "merge_request_event" || p.MergeRequest != nil
		e.Vetted = true
		if e.URL == "" {
			e.URL = gitlabPipelineURL(p.Project.WebURL, e.ID)
		}
		if p.Attrs.Duration != nil {
			e.Duration = time.Duration(*p.Attrs.Duration * float64(time.Second))
		}
		e.Time = parseTime(p.Attrs.CreatedAt)
		if t := parseTime(p.Attrs.FinishedAt); !t.IsZero() && Final(e.Status) {
			e.Time = t
		}
		// builds: every job of the pipeline as of this event (webhook_events.md, "Pipeline events").
		for _, b := range p.Builds {
			st := gitlabStatus(b.Status)
			if b.Name == "" || st == "" {
				continue
			}
			e.Jobs = append(e.Jobs, Job{Name: b.Name, Status: st, AllowFailure: b.AllowFailure,
				Time: jobTime(st, b.CreatedAt, b.StartedAt, b.FinishedAt)})
		}
		return e, nil
	case "Job Hook":
		var j struct {
			Kind         string    `json:"object_kind"`
			Name         string    `json:"build_name"`
			Status       string    `json:"build_status"`
			CreatedAt    string    `json:"build_created_at"`
			StartedAt    string    `json:"build_started_at"`
			FinishedAt   string    `json:"build_finished_at"`
			Duration     *float64  `json:"build_duration"`
			AllowFailure bool      `json:"build_allow_failure"`
			PipelineID   int64     `json:"pipeline_id"`
			Ref          string    `json:"ref"`
			SHA          string    `json:"sha"`
			ProjectName  string    `json:"project_name"`
			Project      glProject `json:"project"`
			Repository   struct {
				Homepage string `json:"homepage"`
			} `json:"repository"`
			// commit describes the pipeline, not the commit: its id is the
			// pipeline's and its status the pipeline's status
			// (webhook_events.md, "Job events").
			Commit struct {
				Message    string   `json:"message"`
				AuthorName string   `json:"author_name"`
				Status     string   `json:"status"`
				Duration   *float64 `json:"duration"`
				FinishedAt string   `json:"finished_at"`
			} `json:"commit"`
		}
		if err := decode(body, &j); err != nil {
			return Event{}, err
		}
		project := j.Project.Path
		if project == "" {
			// Older GitLab sends "Group / Name" only; the homepage has the path.
			project = strings.TrimPrefix(pathOf(j.Repository.Homepage), "/")
		}
		e := Event{Kind: KindJob, Project: project, ID: idString(j.PipelineID), Ref: j.Ref, SHA: j.SHA,
			Status: gitlabStatus(j.Commit.Status), CommitTitle: firstLine(j.Commit.Message), Author: j.Commit.AuthorName}
		web := j.Project.WebURL
		if web == "" {
			web = j.Repository.Homepage
		}
		e.URL = gitlabPipelineURL(web, e.ID)
		// The pipeline's time is known only once it finished; in progress it
		// ranks by state alone, so a stale "pending" never undoes "running".
		if Final(e.Status) {
			e.Time = parseTime(j.Commit.FinishedAt)
			if j.Commit.Duration != nil {
				e.Duration = time.Duration(*j.Commit.Duration * float64(time.Second))
			}
			if e.Time.IsZero() {
				// A finished pipeline without its finish time could never
				// be replaced by a retry's later result: not taken as the
				// pipeline's status; its Pipeline Hook will say.
				e.Status, e.Duration = "", 0
			}
		}
		st := gitlabStatus(j.Status)
		e.Jobs = []Job{{Name: j.Name, Status: st, AllowFailure: j.AllowFailure, Time: jobTime(st, j.CreatedAt, j.StartedAt, j.FinishedAt)}}
		return e, nil
	case "Deployment Hook":
		var d struct {
			Status          string                `json:"status"`
			StatusChangedAt string                `json:"status_changed_at"`
			DeploymentID    int64                 `json:"deployment_id"`
			DeployableURL   string                `json:"deployable_url"`
			Environment     string                `json:"environment"`
			Project         glProject             `json:"project"`
			Ref             string                `json:"ref"`
			ShortSHA        string                `json:"short_sha"`
			CommitURL       string                `json:"commit_url"`
			CommitTitle     string                `json:"commit_title"`
			User            struct{ Name string } `json:"user"`
		}
		if err := decode(body, &d); err != nil {
			return Event{}, err
		}
		sha := d.ShortSHA
		if i := strings.LastIndex(d.CommitURL, "/"); i >= 0 && len(d.CommitURL)-i-1 >= 40 {
			sha = d.CommitURL[i+1:]
		}
		return Event{Kind: KindDeployment, Project: d.Project.Path, ID: strconv.FormatInt(d.DeploymentID, 10), Ref: d.Ref,
			SHA: sha, Status: gitlabStatus(d.Status), URL: d.DeployableURL, CommitTitle: d.CommitTitle, Author: d.User.Name,
			Environment: d.Environment, Time: parseTime(d.StatusChangedAt)}, nil
	}
	return Event{}, fmt.Errorf("%w: GitLab %q", ErrIgnored, kind)
}

// gitlabPipelineURL is a pipeline's page: the project's web_url plus
// /-/pipelines/ID, the form the Pipeline Hook's own url has.
func gitlabPipelineURL(web, id string) string {
	if web == "" || id == "" {
		return ""
	}
	return strings.TrimSuffix(web, "/") + "/-/pipelines/" + id
}

func pathOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.Index(u, "/"); i >= 0 {
		return u[i:]
	}
	return ""
}

// githubConclusion maps a completed run's or job's conclusion: the status
// alone ("completed") says nothing about success.
func githubConclusion(c string) string {
	switch c {
	case "success":
		return StatusSuccess
	case "failure", "timed_out", "startup_failure":
		return StatusFailed
	case "cancelled", "stale":
		return StatusCancelled
	case "skipped", "neutral":
		return StatusSkipped
	case "action_required":
		return StatusPending
	}
	return StatusFailed // an unknown conclusion is not a success
}

type ghRepo struct {
	FullName string `json:"full_name"`
	HTMLURL  string `json:"html_url"`
}

// githubRunURL is a run's page for a job event: the repository's html_url
// plus /actions/runs/RUN_ID (the form workflow_run.html_url has), else the
// job's html_url cut before "/job", else its API run_url turned into the
// page (https://api.github.com/repos/O/R/actions/runs/N, or
// https://HOST/api/v3/repos/... on GitHub Enterprise Server).
func githubRunURL(repoHTML, id, jobHTML, runAPI string) string {
	if repoHTML != "" && id != "" {
		return strings.TrimSuffix(repoHTML, "/") + "/actions/runs/" + id
	}
	if i := strings.Index(jobHTML, "/actions/runs/"); i >= 0 {
		rest := jobHTML[i+len("/actions/runs/"):]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		return jobHTML[:i] + "/actions/runs/" + rest
	}
	if strings.HasPrefix(runAPI, "https://api.github.com/repos/") {
		return "https://github.com/" + strings.TrimPrefix(runAPI, "https://api.github.com/repos/")
	}
	if i := strings.Index(runAPI, "/api/v3/repos/"); i >= 0 {
		return runAPI[:i] + "/" + runAPI[i+len("/api/v3/repos/"):]
	}
	return ""
}

func parseGitHub(kind string, body []byte) (Event, error) {
	switch kind {
	case "workflow_run":
		var p struct {
			Action string `json:"action"`
			Run    struct {
				ID           int64  `json:"id"`
				Name         string `json:"name"`
				HeadBranch   string `json:"head_branch"`
				HeadSHA      string `json:"head_sha"`
				Conclusion   string `json:"conclusion"`
				HTMLURL      string `json:"html_url"`
				DisplayTitle string `json:"display_title"`
				RunStartedAt string `json:"run_started_at"`
				UpdatedAt    string `json:"updated_at"`
				HeadCommit   struct {
					Message   string
					Timestamp string `json:"timestamp"`
					Author    struct{ Name string }
				} `json:"head_commit"`
				Actor          struct{ Login string } `json:"actor"`
				HeadRepository ghRepo                 `json:"head_repository"`
			} `json:"workflow_run"`
			Workflow struct{ Name string } `json:"workflow"`
			Repo     ghRepo                `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return Event{}, err
		}
		r := p.Run
		e := Event{Kind: KindPipeline, Project: p.Repo.FullName, ID: idString(r.ID), Ref: r.HeadBranch,
			SHA: r.HeadSHA, URL: r.HTMLURL, CommitTitle: firstLine(r.HeadCommit.Message), Author: r.HeadCommit.Author.Name,
			Time: parseTime(r.UpdatedAt), Workflow: r.Name, CommitTime: parseTime(r.HeadCommit.Timestamp)}
		if e.Workflow == "" {
			e.Workflow = p.Workflow.Name
		}
		if e.URL == "" {
			e.URL = githubRunURL(p.Repo.HTMLURL, e.ID, "", "")
		}
		if e.CommitTitle == "" {
			e.CommitTitle = r.DisplayTitle
		}
		// A fork's run: its head_branch may well be called main.
		e.Untrusted = r.HeadRepository.FullName != "" && r.HeadRepository.FullName != p.Repo.FullName
		e.Vetted = true
		if e.Author == "" {
			e.Author = r.Actor.Login
		}
		switch p.Action {
		case "requested":
			e.Status = StatusPending
		case "in_progress":
			e.Status = StatusRunning
		case "completed":
			e.Status = githubConclusion(r.Conclusion)
			if s, u := parseTime(r.RunStartedAt), parseTime(r.UpdatedAt); !s.IsZero() && u.After(s) {
				e.Duration = u.Sub(s)
			}
		default:
			return Event{}, fmt.Errorf("%w: workflow_run action %q", ErrIgnored, p.Action)
		}
		return e, nil
	case "workflow_job":
		var p struct {
			Action string `json:"action"`
			Job    struct {
				RunID        int64  `json:"run_id"`
				RunURL       string `json:"run_url"`
				HTMLURL      string `json:"html_url"`
				Name         string `json:"name"`
				WorkflowName string `json:"workflow_name"`
				Conclusion   string `json:"conclusion"`
				HeadSHA      string `json:"head_sha"`
				HeadBranch   string `json:"head_branch"`
				CreatedAt    string `json:"created_at"`
				StartedAt    string `json:"started_at"`
				CompletedAt  string `json:"completed_at"`
			} `json:"workflow_job"`
			Repo ghRepo `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return Event{}, err
		}
		j := p.Job
		// A job event says nothing of its run's status: Status stays empty
		// and only the job's own state is merged.
		e := Event{Kind: KindJob, Project: p.Repo.FullName, ID: idString(j.RunID), Ref: j.HeadBranch,
			SHA: j.HeadSHA, Workflow: j.WorkflowName}
		e.URL = githubRunURL(p.Repo.HTMLURL, e.ID, j.HTMLURL, j.RunURL)
		var st string
		switch p.Action {
		case "queued", "waiting":
			st = StatusPending
		case "in_progress":
			st = StatusRunning
		case "completed":
			st = githubConclusion(j.Conclusion)
		default:
			return Event{}, fmt.Errorf("%w: workflow_job action %q", ErrIgnored, p.Action)
		}
		e.Jobs = []Job{{Name: j.Name, Status: st, Time: jobTime(st, j.CreatedAt, j.StartedAt, j.CompletedAt)}}
		return e, nil
	case "deployment_status":
		var p struct {
			Status struct {
				State       string `json:"state"`
				TargetURL   string `json:"target_url"`
				LogURL      string `json:"log_url"`
				Description string `json:"description"`
				Environment string `json:"environment"`
				UpdatedAt   string `json:"updated_at"`
			} `json:"deployment_status"`
			Deployment struct {
				ID          int64                  `json:"id"`
				SHA         string                 `json:"sha"`
				Ref         string                 `json:"ref"`
				Environment string                 `json:"environment"`
				Creator     struct{ Login string } `json:"creator"`
			} `json:"deployment"`
			Repo ghRepo `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return Event{}, err
		}
		e := Event{Kind: KindDeployment, Project: p.Repo.FullName, ID: strconv.FormatInt(p.Deployment.ID, 10),
			Ref: p.Deployment.Ref, SHA: p.Deployment.SHA, Author: p.Deployment.Creator.Login, URL: p.Status.LogURL,
			Environment: p.Status.Environment, Time: parseTime(p.Status.UpdatedAt)}
		if e.URL == "" {
			e.URL = p.Status.TargetURL
		}
		if e.Environment == "" {
			e.Environment = p.Deployment.Environment
		}
		switch p.Status.State {
		case "queued", "pending", "waiting":
			e.Status = StatusPending
		case "in_progress":
			e.Status = StatusRunning
		case "success":
			e.Status = StatusSuccess
		case "failure", "error":
			e.Status, e.Error = StatusFailed, p.Status.Description
		case "inactive":
			return Event{}, fmt.Errorf("%w: deployment_status inactive", ErrIgnored)
		default:
			e.Status = StatusFailed
		}
		return e, nil
	}
	return Event{}, fmt.Errorf("%w: GitHub %q", ErrIgnored, kind)
}

// GenericEvent is the JSON the generic endpoint takes, signed with
// X-Shipbot-Signature: sha256=HMAC-SHA256(secret, body), for CI systems
// shipbot has no parser for (a curl at the end of a Jenkins job).
type GenericEvent struct {
	Project     string   `json:"project"`
	ID          string   `json:"id"`
	Ref         string   `json:"ref"`
	SHA         string   `json:"sha"`
	Status      string   `json:"status"` // one of Statuses
	Title       string   `json:"title"`
	Author      string   `json:"author"`
	URL         string   `json:"url"`
	DurationSec float64  `json:"duration_seconds"`
	FailedJobs  []string `json:"failed_jobs"`
	Environment string   `json:"environment"`
	Time        string   `json:"time"`        // RFC 3339
	CommitTime  string   `json:"commit_time"` // RFC 3339: when the commit at SHA was made
}

func parseGeneric(body []byte) (Event, error) {
	var g GenericEvent
	if err := decode(body, &g); err != nil {
		return Event{}, err
	}
	if rank[g.Status] == 0 {
		return Event{}, fmt.Errorf("status %q: want one of %s", g.Status, strings.Join(Statuses, ", "))
	}
	kind := KindPipeline
	if g.Environment != "" {
		kind = KindDeployment
	}
	return Event{Kind: kind, Project: g.Project, ID: g.ID, Ref: g.Ref, SHA: g.SHA, Status: g.Status, CommitTitle: g.Title,
		Author: g.Author, URL: g.URL, Duration: time.Duration(g.DurationSec * float64(time.Second)), FailedJobs: g.FailedJobs,
		Environment: g.Environment, Time: parseTime(g.Time), CommitTime: parseTime(g.CommitTime), Vetted: true}, nil
}
