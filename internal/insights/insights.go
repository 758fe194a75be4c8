// Package insights computes delivery figures (the four DORA measures, the
// approval wait, failing steps, busiest deployers) from what shipbot
// records: its jobs, approvals and the pipeline records of the commits it
// deploys. It reads through the small Store declared here and draws
// nothing itself: a chart is drawn by an adapter (internal/insights/plot)
// handed in as a Charter.
package insights

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// Store is what insights reads. Every method reads; none changes anything.
type Store interface {
	// DeliveryJobs returns the deploy and rollback jobs that ended at or
	// after since, oldest end first.
	DeliveryJobs(ctx context.Context, since time.Time) ([]deploy.Job, error)
	// DecidedApprovals returns the approvals decided at or after since.
	DecidedApprovals(ctx context.Context, since time.Time) ([]deploy.Approval, error)
	// CommitTime is when commit sha (full, or a prefix of at least 7 hex
	// digits) of project was made, as a pipeline record carries it; the
	// zero time when no pipeline record of project carried it.
	CommitTime(ctx context.Context, project, sha string) (time.Time, error)
	// DeployedCommit is the commit a driver recorded for a release (the
	// Dokploy driver pins the commit Dokploy built); "" when none did.
	DeployedCommit(ctx context.Context, app, env, release string) (string, error)
}

// RollbackWindow is how soon after a deploy a rollback away from its
// release makes the deploy a change failure.
const RollbackWindow = 24 * time.Hour

// Windows a report may cover, in days.
var Windows = []int{7, 30, 90}

// ParseWindow reads "7d", "30d" or "90d"; "" is 7 days.
func ParseWindow(s string) (int, error) {
	if s == "" {
		return 7, nil
	}
	for _, w := range Windows {
		if s == fmt.Sprintf("%dd", w) {
			return w, nil
		}
	}
	return 0, fmt.Errorf("window %q: use 7d, 30d or 90d", clip(s))
}

// Query selects what a report covers.
type Query struct {
	App, Env string // "" = every app (env)
	Days     int    // the window: 7, 30 or 90 days; 0 = 7
	// End closes the window (exclusive); zero = now. The window is the
	// Days calendar days (UTC) up to End: the day End falls in is the last
	// one, unless End is exactly midnight, when the day before is.
	End time.Time
	// Allowed, if set, keeps only the app/envs it accepts (the asker's
	// permissions).
	Allowed func(app, env string) bool
}

// Report is the figures for a window beside the window before it. It is
// what GET /api/v1/stats returns as JSON.
type Report struct {
	From     time.Time `json:"from"` // the window: [From, To)
	To       time.Time `json:"to"`
	PrevFrom time.Time `json:"previous_from"` // the window before: [PrevFrom, From)
	Days     int       `json:"days"`
	// Envs are the app/envs with any deploy or rollback in either window,
	// ordered by app, then env.
	Envs []EnvFigures `json:"envs"`
	// Daily is every day of the window, oldest first, over all Envs: the
	// chart's data.
	Daily []Day `json:"daily"`
}

// EnvFigures are one app/env's figures, now and in the window before.
type EnvFigures struct {
	App      string  `json:"app"`
	Env      string  `json:"env"`
	Current  Figures `json:"current"`
	Previous Figures `json:"previous"`
}

// Figures are one window's measures. Durations are whole seconds in JSON.
type Figures struct {
	// Deploys are the deploy jobs that ended succeeded, failed or
	// rolled_back in the window.
	Deploys int `json:"deploys"`
	// Successful went live and stayed live past their health check
	// (succeeded); DeploysPerDay is Successful / days.
	Successful    int     `json:"successful"`
	DeploysPerDay float64 `json:"deploys_per_day"`
	// LeadTime is from the commit of each successful deploy to the deploy
	// going live; Unknown counts successful deploys whose commit time no
	// pipeline record carried.
	LeadTime Spread `json:"lead_time"`
	// ChangeFailures are deploys that failed their health check, were
	// rolled back by shipbot, or were rolled back from within
	// RollbackWindow; ChangeFailureRate is ChangeFailures / Deploys (0
	// without deploys).
	ChangeFailures    int     `json:"change_failures"`
	ChangeFailureRate float64 `json:"change_failure_rate"`
	// TimeToRestore is from each change failure to the next successful
	// deploy or rollback of its app/env; Unknown counts failures not yet
	// followed by one.
	TimeToRestore Spread `json:"time_to_restore"`
	// ApprovalWait is from each approval request to its approval.
	ApprovalWait Spread `json:"approval_wait"`
	// FailingSteps counts the first failed step of each failed or
	// rolled-back deploy, most first.
	FailingSteps []Count `json:"failing_steps"`
	// Deployers counts deploys by who asked, most first.
	Deployers []Count `json:"deployers"`
}

// Spread is the middle and the tail of a set of durations.
type Spread struct {
	N       int      `json:"n"` // how many durations were measured
	Median  Duration `json:"median_seconds"`
	P90     Duration `json:"p90_seconds"`
	Unknown int      `json:"unknown"`
}

// Duration marshals as whole seconds.
type Duration time.Duration

// MarshalJSON writes whole seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprint(int64(time.Duration(d) / time.Second))), nil
}

// Count is a name and how often it occurred.
type Count struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

// Day is one day's deploys by outcome and the median lead time of its
// successful deploys (those later rolled back from too; 0 when none was
// known).
type Day struct {
	Date       time.Time `json:"date"`
	Live       int       `json:"live"`        // succeeded and not rolled back from
	RolledBack int       `json:"rolled_back"` // rolled back by shipbot or from within RollbackWindow
	Failed     int       `json:"failed"`      // failed before or at going live, not rolled back
	LeadTime   Duration  `json:"lead_time_median_seconds"`
}

// Charter draws a report's chart as a PNG.
type Charter func(r *Report, title string) ([]byte, error)

// Options configure a Service.
type Options struct {
	Store Store
	// Projects maps an app to its CI project as pipeline records name it;
	// an app not listed is its own project.
	Projects map[string]string
	// Chart draws the chart sent with a report; nil sends none.
	Chart Charter
	Now   func() time.Time
}

// Service answers queries from a Store.
type Service struct {
	store    Store
	projects map[string]string
	chart    Charter
	now      func() time.Time
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{store: o.Store, projects: o.Projects, chart: o.Chart, now: o.Now}
}

const day = 24 * time.Hour

// window returns [from, to) and the start of the window before.
func window(end time.Time, days int) (from, to, prevFrom time.Time) {
	end = end.UTC()
	last := end.Add(-time.Nanosecond).Truncate(day) // the day holding the last instant
	from = last.Add(-time.Duration(days-1) * day)
	return from, end, from.Add(-time.Duration(days) * day)
}

// Stats computes the report for q.
func (s *Service) Stats(ctx context.Context, q Query) (*Report, error) {
	if q.Days == 0 {
		q.Days = 7
	}
	if !slices.Contains(Windows, q.Days) {
		return nil, fmt.Errorf("window of %d days: use 7, 30 or 90", q.Days)
	}
	if q.End.IsZero() {
		q.End = s.now()
	}
	from, to, prevFrom := window(q.End, q.Days)
	r := &Report{From: from, To: to, PrevFrom: prevFrom, Days: q.Days}
	all, err := s.store.DeliveryJobs(ctx, prevFrom)
	if err != nil {
		return nil, fmt.Errorf("reading jobs: %w", err)
	}
	approvals, err := s.store.DecidedApprovals(ctx, prevFrom)
	if err != nil {
		return nil, fmt.Errorf("reading approvals: %w", err)
	}
	// Jobs after the window stay: a rollback or a good deploy after it
	// still tells whether a deploy in it failed and when it was restored.
	byEnv := map[string][]deploy.Job{}
	var keys []string
	for _, j := range all {
		if (q.App != "" && j.App != q.App) || (q.Env != "" && j.Env != q.Env) ||
			(q.Allowed != nil && !q.Allowed(j.App, j.Env)) {
			continue
		}
		k := j.App + "/" + j.Env
		if _, ok := byEnv[k]; !ok && j.Ended.Before(to) {
			keys = append(keys, k)
		}
		byEnv[k] = append(byEnv[k], j)
	}
	sort.Strings(keys)
	r.Daily = make([]Day, q.Days)
	for i := range r.Daily {
		r.Daily[i].Date = from.Add(time.Duration(i) * day)
	}
	dailyLead := make([][]time.Duration, q.Days)
	for _, k := range keys {
		js := byEnv[k]
		f := EnvFigures{App: js[0].App, Env: js[0].Env}
		cur, err := s.figures(ctx, js, approvals, f.App, f.Env, from, to, q.Days, func(j deploy.Job, o outcome, lead time.Duration, known bool) {
			i := int(j.Ended.Sub(from) / day)
			if known {
				dailyLead[i] = append(dailyLead[i], lead)
			}
			switch o {
			case live:
				r.Daily[i].Live++
			case rolledBack:
				r.Daily[i].RolledBack++
			case failed:
				r.Daily[i].Failed++
			}
		})
		if err != nil {
			return nil, err
		}
		prev, err := s.figures(ctx, js, approvals, f.App, f.Env, prevFrom, from, q.Days, nil)
		if err != nil {
			return nil, err
		}
		f.Current, f.Previous = cur, prev
		r.Envs = append(r.Envs, f)
	}
	for i, ds := range dailyLead {
		if len(ds) > 0 {
			r.Daily[i].LeadTime = Duration(median(ds))
		}
	}
	return r, nil
}

type outcome int

const (
	live outcome = iota
	rolledBack
	failed
)

func counted(j deploy.Job) bool {
	return j.Action == deploy.ActionDeploy &&
		(j.State == deploy.Succeeded || j.State == deploy.Failed || j.State == deploy.RolledBack)
}

// figures measures one app/env's jobs js (all it has since the earlier
// window, oldest end first) over [from, to). each, if set, hears every
// counted deploy with its outcome and lead time.
func (s *Service) figures(ctx context.Context, js []deploy.Job, approvals []deploy.Approval, app, env string,
	from, to time.Time, days int, each func(deploy.Job, outcome, time.Duration, bool)) (Figures, error) {
	var f Figures
	var leads, restores []time.Duration
	steps, deployers := map[string]int{}, map[string]int{}
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	for i, j := range js {
		if !counted(j) || !in(j.Ended) {
			continue
		}
		f.Deploys++
		deployers[j.RequestedBy.User]++
		o := live
		switch {
		case j.State == deploy.Failed:
			o = failed
		case j.State == deploy.RolledBack:
			o = rolledBack
		}
		failure := j.State == deploy.RolledBack || healthFailed(j)
		if j.State == deploy.Succeeded && rolledBackFrom(j, js[i+1:]) {
			failure, o = true, rolledBack
		}
		if j.State != deploy.Succeeded {
			if st := firstFailedStep(j); st != "" {
				steps[st]++
			}
		}
		var lead time.Duration
		known := false
		if j.State == deploy.Succeeded {
			f.Successful++
			t, err := s.commitTime(ctx, j)
			if err != nil {
				return f, err
			}
			if !t.IsZero() {
				lead, known = j.Ended.Sub(t), true
				leads = append(leads, lead)
			} else {
				f.LeadTime.Unknown++
			}
		}
		if failure {
			f.ChangeFailures++
			if r := restoredBy(j, js[i+1:]); r != nil {
				restores = append(restores, r.Ended.Sub(j.Ended))
			} else {
				f.TimeToRestore.Unknown++
			}
		}
		if each != nil {
			each(j, o, lead, known)
		}
	}
	var waits []time.Duration
	for _, a := range approvals {
		if a.App == app && a.Env == env && a.State == deploy.ApprovalApproved && in(a.Decided) {
			waits = append(waits, a.Decided.Sub(a.Created))
		}
	}
	f.DeploysPerDay = float64(f.Successful) / float64(days)
	if f.Deploys > 0 {
		f.ChangeFailureRate = float64(f.ChangeFailures) / float64(f.Deploys)
	}
	f.LeadTime = spread(leads, f.LeadTime.Unknown)
	f.TimeToRestore = spread(restores, f.TimeToRestore.Unknown)
	f.ApprovalWait = spread(waits, 0)
	f.FailingSteps, f.Deployers = top(steps), top(deployers)
	return f, nil
}

// healthFailed: the deploy's health step failed (whether or not it was
// switched back).
func healthFailed(j deploy.Job) bool {
	for _, st := range j.Steps {
		if st.State == deploy.StepFailed && strings.Contains(st.Name, "health") {
			return true
		}
	}
	return false
}

func firstFailedStep(j deploy.Job) string {
	for _, st := range j.Steps {
		if st.State == deploy.StepFailed {
			return st.Name
		}
	}
	return ""
}

// rolledBackFrom: a successful rollback switched away from j's release
// within RollbackWindow of j going live. later are the app/env's jobs that
// ended after j.
func rolledBackFrom(j deploy.Job, later []deploy.Job) bool {
	for _, r := range later { // oldest end first
		if r.Ended.Sub(j.Ended) > RollbackWindow {
			break
		}
		if r.Action == deploy.ActionRollback && r.State == deploy.Succeeded && r.FromRelease == j.Release {
			return true
		}
	}
	return false
}

// restoredBy is the first successful deploy or rollback after failure j.
func restoredBy(j deploy.Job, later []deploy.Job) *deploy.Job {
	for i, r := range later {
		if (r.Action == deploy.ActionDeploy || r.Action == deploy.ActionRollback) && r.State == deploy.Succeeded &&
			r.Ended.After(j.Ended) {
			return &later[i]
		}
	}
	return nil
}

// checkingOut is the release runner's output line naming the commit it
// checked out ("checking out main at <sha>").
var checkingOut = regexp.MustCompile(`^checking out \S+ at ([0-9a-f]{40}(?:[0-9a-f]{24})?)$`)

var shaLike = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// commitTime finds the commit a deploy put live and when it was made:
// the commit the driver pinned, else the one the release runner checked
// out, else the ref itself when it is a commit id.
func (s *Service) commitTime(ctx context.Context, j deploy.Job) (time.Time, error) {
	sha, err := s.store.DeployedCommit(ctx, j.App, j.Env, j.Release)
	if err != nil {
		return time.Time{}, err
	}
	if sha == "" {
		for _, line := range j.Output {
			if m := checkingOut.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				sha = m[1]
				break
			}
		}
	}
	if ref := strings.ToLower(j.Ref); sha == "" && shaLike.MatchString(ref) {
		sha = ref // pipeline records carry lowercase ids
	}
	if sha == "" {
		return time.Time{}, nil
	}
	project := j.App
	if p, ok := s.projects[j.App]; ok && p != "" {
		project = p
	}
	return s.store.CommitTime(ctx, project, sha)
}

func spread(ds []time.Duration, unknown int) Spread {
	sp := Spread{N: len(ds), Unknown: unknown}
	if len(ds) == 0 {
		return sp
	}
	sp.Median, sp.P90 = Duration(median(ds)), Duration(nearestRank(ds, 90))
	return sp
}

// median is the middle value, the mean of the two middle ones for an even count.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// nearestRank is the p-th percentile by nearest rank: the smallest value
// with at least p% of the values at or below it.
func nearestRank(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	k := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	if k < 1 {
		k = 1
	}
	return s[k-1]
}

// top lists counts most first, then by name; at most 3.
func top(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for name, n := range m {
		out = append(out, Count{Name: name, N: n})
	}
	sort.Slice(out, func(i, k int) bool {
		if out[i].N != out[k].N {
			return out[i].N > out[k].N
		}
		return out[i].Name < out[k].Name
	})
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// ParseQuery reads the query of GET /api/v1/stats?app=&env=&window=: names
// must be valid app and env names, window one of 7d, 30d, 90d ("" = 7d);
// env needs app. The caller checks that the names are configured and that
// the caller may see them (Allowed).
func ParseQuery(app, env, window string) (Query, error) {
	days, err := ParseWindow(window)
	if err != nil {
		return Query{}, err
	}
	switch {
	case app != "" && !deploy.ValidName(app):
		return Query{}, fmt.Errorf("app %q is not a valid name", clip(app))
	case env != "" && !deploy.ValidName(env):
		return Query{}, fmt.Errorf("env %q is not a valid name", clip(env))
	case env != "" && app == "":
		return Query{}, fmt.Errorf("env %q needs an app", clip(env))
	}
	return Query{App: app, Env: env, Days: days}, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
