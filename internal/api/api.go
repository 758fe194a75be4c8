// Package api is the HTTP API for CI jobs and other programs: a door beside
// the chat adapters. A request authenticates with a bearer token (see
// apitoken), becomes a commands.Request from the identity "api:NAME" and
// goes through the same dispatcher as a chat command, so policy, locks,
// approvals and the audit rows are the chat's own; this package only
// translates the answers into HTTP status codes and JSON, keeps
// Idempotency-Keys, and streams a job's changes as Server-Sent Events.
//
//	POST /api/v1/jobs              {"action","app","env","ref"?,"release"?} -> 202 {"id","state","approval_id"?,"url"}
//	GET  /api/v1/jobs/{id}         the job: state, steps, release, outcome, last output lines
//	GET  /api/v1/jobs/{id}/events  text/event-stream of the job until it ends
//	GET  /api/v1/apps              apps, envs, current release, lock
//	GET  /api/v1/stats?app=&env=&window=  delivery figures (DORA) beside the window before
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/apitoken"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// Platform is the platform of the API's requests and the "chat" of its
// jobs and audit rows ("api:NAME"): the door they came through.
const Platform = "api"

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// Store is what the API reads directly (the dispatcher has checked the
// caller may see it).
type Store interface {
	Job(ctx context.Context, id int64) (*deploy.Job, error)
	Jobs(ctx context.Context, f deploy.JobFilter) ([]*deploy.Job, error)
	Lock(ctx context.Context, app, env string) (*deploy.Lock, error)
	Locks(ctx context.Context) ([]deploy.Lock, error)
}

// Keys remembers Idempotency-Keys durably (the sqlite store).
type Keys interface {
	ClaimKey(ctx context.Context, token, key string, now time.Time) (jobID int64, first bool, err error)
	SetKeyJob(ctx context.Context, token, key string, jobID int64) error
	DropKey(ctx context.Context, token, key string) error
}

// Options configure a Server.
type Options struct {
	// Tokens returns the current token set (a reload may replace it).
	Tokens   func() *apitoken.Set
	Handler  commands.Handler
	Catalog  func() commands.Catalog
	Store    Store
	Keys     Keys
	Log      *slog.Logger
	KeepLive time.Duration // SSE comment interval; default 15 s
}

// Server serves the API.
type Server struct {
	o    Options
	done chan struct{}
	stop sync.Once

	watch *deploy.JobWatch
}

var (
	_ deploy.Observer = (*Server)(nil)
	_ notify.Sender   = (*Server)(nil)
)

// New returns a Server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.KeepLive <= 0 {
		o.KeepLive = 15 * time.Second
	}
	return &Server{o: o, done: make(chan struct{}), watch: deploy.NewJobWatch()}
}

// SetHandler wires the dispatcher in (it is built after the engine, whose
// observer the Server is). Call it before serving.
func (s *Server) SetHandler(h commands.Handler) { s.o.Handler = h }

// Close ends every event stream (before the HTTP server shuts down, which
// waits for requests in flight).
func (s *Server) Close() { s.stop.Do(func() { close(s.done) }) }

// Route is one endpoint.
type Route struct {
	Method, Path string
	Handler      http.Handler
}

// Routes are the API's endpoints, for the one router.
func (s *Server) Routes() []Route {
	return []Route{
		{http.MethodPost, Prefix + "/jobs", s.auth(s.createJob)},
		{http.MethodGet, Prefix + "/jobs/{id}", s.auth(s.getJob)},
		{http.MethodGet, Prefix + "/jobs/{id}/events", s.auth(s.events)},
		{http.MethodGet, Prefix + "/apps", s.auth(s.apps)},
		{http.MethodGet, Prefix + "/stats", s.auth(s.stats)},
	}
}

// JobChanged implements deploy.Observer: it wakes the job's event streams.
func (s *Server) JobChanged(j deploy.Job) {
	s.watch.JobChanged(j)
}

// Send implements notify.Sender for the "api" platform: a job's card has
// no chat to go to (the client reads the job), so it is accepted and
// dropped; the team sees API jobs through the notification routes.
func (s *Server) Send(_ context.Context, ch notify.Channel, _ notify.Message) (notify.Ref, error) {
	return notify.Ref{Channel: ch, ID: "-"}, nil
}

// Edit implements notify.Sender.
func (s *Server) Edit(context.Context, notify.Ref, notify.Message) error { return nil }

type caller struct{ name string }

type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller)

func (s *Server) auth(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var set *apitoken.Set
		if s.o.Tokens != nil {
			set = s.o.Tokens()
		}
		_, name, ok := set.Authenticate(r)
		if !ok {
			// Which of "missing" and "wrong" is not said, nor logged with the value.
			s.o.Log.Warn("api: unauthenticated request", "remote", r.RemoteAddr, "path", r.URL.Path,
				"had_token", apitoken.FromRequest(r) != "")
			w.Header().Set("WWW-Authenticate", `Bearer realm="shipbot"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid token is required: Authorization: Bearer TOKEN")
			return
		}
		h(w, r, caller{name: name})
	})
}

// dispatch runs text as the token's identity through the dispatcher.
func (s *Server) dispatch(ctx context.Context, c caller, text string) commands.Reply {
	return s.o.Handler.Handle(ctx, commands.Request{Platform: Platform, UserID: c.name, UserName: c.name, Via: Platform,
		Chat: notify.Channel{Platform: Platform, ID: c.name}, Text: text})
}

// JobRequest is the body of POST /api/v1/jobs.
type JobRequest struct {
	Action  string `json:"action"`
	App     string `json:"app"`
	Env     string `json:"env"`
	Ref     string `json:"ref,omitempty"`
	Release string `json:"release,omitempty"`
}

// Created is the answer to POST /api/v1/jobs.
type Created struct {
	ID         int64  `json:"id"`
	State      string `json:"state"`
	ApprovalID string `json:"approval_id,omitempty"`
	URL        string `json:"url"`
	Replayed   bool   `json:"replayed,omitempty"`
}

// Error is every error answer.
type Error struct {
	Error   string    `json:"error"`
	Message string    `json:"message"`
	Lock    *LockInfo `json:"lock,omitempty"`
}

// LockInfo describes a held lock.
type LockInfo struct {
	Holder  string     `json:"holder"`
	Reason  string     `json:"reason"`
	JobID   int64      `json:"job_id,omitempty"`
	Since   time.Time  `json:"since"`
	Expires *time.Time `json:"expires,omitempty"`
}

func lockInfo(l *deploy.Lock) *LockInfo {
	if l == nil {
		return nil
	}
	li := &LockInfo{Holder: l.Owner, Reason: l.Reason, JobID: l.JobID, Since: l.Since.UTC()}
	if !l.Expires.IsZero() {
		e := l.Expires.UTC()
		li.Expires = &e
	}
	return li
}

var keyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

func (s *Server) createJob(w http.ResponseWriter, r *http.Request, c caller) {
	var req JobRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_input", "the body must be a JSON object {action, app, env, ref?, release?}: "+err.Error())
		return
	}
	text, err := commandLine(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_input", err.Error())
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key != "" {
		if !keyPattern.MatchString(key) {
			writeError(w, http.StatusBadRequest, "bad_input", "Idempotency-Key must be 1 to 128 visible ASCII characters")
			return
		}
		id, first, err := s.o.Keys.ClaimKey(r.Context(), c.name, key, time.Now())
		if err != nil {
			s.internal(w, "claim idempotency key", err)
			return
		}
		if !first {
			if id == 0 {
				writeError(w, http.StatusConflict, "in_progress", "a request with this Idempotency-Key is still being answered; retry")
				return
			}
			s.created(w, r.Context(), id, true)
			return
		}
	}
	reply := s.dispatch(r.Context(), c, text)
	if reply.JobID != 0 {
		if key != "" {
			if err := s.o.Keys.SetKeyJob(context.WithoutCancel(r.Context()), c.name, key, reply.JobID); err != nil {
				s.o.Log.Error("api: idempotency key not recorded", "job", reply.JobID, "err", err)
			}
		}
		s.created(w, r.Context(), reply.JobID, false)
		return
	}
	if key != "" {
		if err := s.o.Keys.DropKey(context.WithoutCancel(r.Context()), c.name, key); err != nil {
			s.o.Log.Warn("api: idempotency key not dropped", "err", err)
		}
	}
	s.refused(w, r.Context(), reply, req.App, req.Env)
}

// commandLine is the chat command a request stands for. Every value is
// checked against the same patterns the chat parser applies, before it is
// joined into a line, so no field can smuggle a second word or a flag.
func commandLine(req JobRequest) (string, error) {
	if req.Action != "deploy" && req.Action != "rollback" {
		return "", fmt.Errorf(`action %q: want "deploy" or "rollback"`, req.Action)
	}
	if !deploy.ValidName(req.App) {
		return "", fmt.Errorf("app %q: want a name matching %s", req.App, deploy.NamePattern)
	}
	if !deploy.ValidName(req.Env) {
		return "", fmt.Errorf("env %q: want a name matching %s", req.Env, deploy.NamePattern)
	}
	words := []string{"/" + req.Action, req.App, req.Env}
	switch req.Action {
	case "deploy":
		if req.Release != "" {
			return "", errors.New("release: only a rollback names a release; a deploy takes ref")
		}
		if req.Ref != "" {
			if err := deploy.ValidateRef(req.Ref); err != nil || strings.HasPrefix(req.Ref, "-") {
				return "", fmt.Errorf("ref %q is not a safe git ref", req.Ref)
			}
			words = append(words, req.Ref)
		}
	case "rollback":
		if req.Ref != "" {
			return "", errors.New("ref: a rollback takes release, not ref")
		}
		if req.Release != "" {
			if !deploy.ValidName(req.Release) {
				return "", fmt.Errorf("release %q: want a release id matching %s", req.Release, deploy.NamePattern)
			}
			words = append(words, req.Release)
		}
	}
	return strings.Join(words, " "), nil
}

func (s *Server) created(w http.ResponseWriter, ctx context.Context, id int64, replayed bool) {
	out := Created{ID: id, URL: fmt.Sprintf("%s/jobs/%d", Prefix, id), Replayed: replayed}
	if j, err := s.o.Store.Job(ctx, id); err == nil {
		out.State, out.ApprovalID = string(j.State), j.ApprovalID
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, out)
}

// refused answers a refusal with the status its kind stands for.
func (s *Server) refused(w http.ResponseWriter, ctx context.Context, reply commands.Reply, app, env string) {
	msg := reply.Notice
	switch reply.Denial {
	case "locked":
		var li *LockInfo
		if l, err := s.o.Store.Lock(ctx, app, env); err == nil {
			li = lockInfo(l)
		}
		writeJSONError(w, http.StatusConflict, Error{Error: "locked", Message: msg, Lock: li})
	case "conflict":
		writeError(w, http.StatusConflict, "conflict", msg)
	case "permission", "unknown identity", "not a person", "self-approval", "driver refused":
		writeError(w, http.StatusForbidden, "refused", msg)
	case "not found":
		writeError(w, http.StatusNotFound, "not_found", msg)
	case "draining":
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, "draining", msg)
	case "":
		// Not a refusal of the request but a failure while acting on it:
		// an outside condition (host down) or an internal error with a ref.
		writeError(w, http.StatusBadGateway, "failed", msg)
	default: // bad input, unknown app/env, refused (nothing to roll back…)
		writeError(w, http.StatusBadRequest, "bad_input", msg)
	}
}

// Job is the API's view of a job.
type Job struct {
	ID          int64         `json:"id"`
	Action      string        `json:"action"`
	App         string        `json:"app"`
	Env         string        `json:"env"`
	Ref         string        `json:"ref,omitempty"`
	Release     string        `json:"release,omitempty"`     // a deploy's new release
	RollbackTo  string        `json:"rollback_to,omitempty"` // a rollback's target release
	Backup      string        `json:"backup,omitempty"`      // the backup a backup, drill or restore acts on
	FromRelease string        `json:"from_release,omitempty"`
	State       string        `json:"state"`
	Done        bool          `json:"done"`
	Outcome     string        `json:"outcome,omitempty"`
	RequestedBy string        `json:"requested_by"`
	ApprovalID  string        `json:"approval_id,omitempty"`
	ApprovedBy  string        `json:"approved_by,omitempty"`
	Steps       []deploy.Step `json:"steps"`
	Output      []string      `json:"output"`
	Created     time.Time     `json:"created"`
	Started     *time.Time    `json:"started,omitempty"`
	Ended       *time.Time    `json:"ended,omitempty"`
}

// outputLines is how many of the job's last output lines the API shows.
const outputLines = 20

func jobView(j *deploy.Job) Job {
	v := Job{ID: j.ID, Action: string(j.Action), App: j.App, Env: j.Env, Ref: j.Ref, Release: j.Release, RollbackTo: j.RollbackTo, Backup: j.Backup, FromRelease: j.FromRelease,
		State: string(j.State), Done: j.State.Terminal(), Outcome: j.Reason, RequestedBy: j.RequestedBy.User,
		ApprovalID: j.ApprovalID, ApprovedBy: j.ApprovedBy, Steps: j.Steps, Output: j.Output, Created: j.Created.UTC()}
	if v.Steps == nil {
		v.Steps = []deploy.Step{}
	}
	if len(v.Output) > outputLines {
		v.Output = v.Output[len(v.Output)-outputLines:]
	}
	if v.Output == nil {
		v.Output = []string{}
	}
	if !j.Started.IsZero() {
		t := j.Started.UTC()
		v.Started = &t
	}
	if !j.Ended.IsZero() {
		t := j.Ended.UTC()
		v.Ended = &t
	}
	return v
}

// jobID reads {id} from /api/v1/jobs/{id}[/events].
func jobID(r *http.Request) (int64, bool) {
	rest := strings.TrimPrefix(r.URL.Path, Prefix+"/jobs/")
	rest = strings.TrimSuffix(rest, "/events")
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil && id > 0
}

// readJob checks through the dispatcher (policy, audit) that the caller may
// see job id, then loads it.
func (s *Server) readJob(w http.ResponseWriter, r *http.Request, c caller) (*deploy.Job, bool) {
	id, ok := jobID(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_input", "job id must be a positive number")
		return nil, false
	}
	if reply := s.dispatch(r.Context(), c, fmt.Sprintf("/job %d", id)); reply.Refused {
		s.refused(w, r.Context(), reply, "", "")
		return nil, false
	}
	j, err := s.o.Store.Job(r.Context(), id)
	if err != nil {
		s.internal(w, "read job", err)
		return nil, false
	}
	return j, true
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, c caller) {
	if j, ok := s.readJob(w, r, c); ok {
		writeJSON(w, http.StatusOK, jobView(j))
	}
}

// events streams the job as Server-Sent Events (the WHATWG HTML "Server-sent
// events" format: "event:" and "data:" lines, a blank line per event): an
// "job" event with the whole job each time it changes, then "end" once it is
// over. Comments keep idle proxies from closing the stream.
func (s *Server) events(w http.ResponseWriter, r *http.Request, c caller) {
	id, ok := jobID(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_input", "job id must be a positive number")
		return
	}
	// Subscribe before the first read, so no change falls between.
	wake, unsubscribe := s.watch.Watch(id)
	defer unsubscribe()
	j, ok := s.readJob(w, r, c)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		// The server's write timeout is for ordinary requests; a stream
		// lives as long as its job.
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	keep := time.NewTicker(s.o.KeepLive)
	defer keep.Stop()
	var last []byte
	for {
		v := jobView(j)
		b, _ := json.Marshal(v)
		if string(b) != string(last) {
			if !send("job", v) {
				return
			}
			last = b
		}
		if v.Done {
			send("end", map[string]string{"state": v.State})
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-keep.C:
			_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-wake:
		}
		nj, err := s.o.Store.Job(r.Context(), id)
		if err != nil {
			s.o.Log.Warn("api: event stream read", "job", id, "err", err)
			return
		}
		j = nj
	}
}

// App is one app/env in GET /api/v1/apps.
type App struct {
	App      string    `json:"app"`
	Env      string    `json:"env"`
	Driver   string    `json:"driver"`
	Approval bool      `json:"approval_required"`
	Current  string    `json:"current,omitempty"`
	Lock     *LockInfo `json:"lock,omitempty"`
}

func (s *Server) apps(w http.ResponseWriter, r *http.Request, c caller) {
	if reply := s.dispatch(r.Context(), c, "/apps"); reply.Refused {
		s.refused(w, r.Context(), reply, "", "")
		return
	}
	locks, err := s.o.Store.Locks(r.Context())
	if err != nil {
		s.internal(w, "read locks", err)
		return
	}
	out := []App{}
	cat := s.o.Catalog()
	for _, app := range sorted(cat) {
		for _, env := range sorted(cat[app]) {
			info := cat[app][env]
			a := App{App: app, Env: env, Driver: info.Driver, Approval: info.Approval.Required, Current: s.current(r.Context(), app, env)}
			for i := range locks {
				if locks[i].App == app && locks[i].Env == env {
					a.Lock = lockInfo(&locks[i])
				}
			}
			out = append(out, a)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

// current is the release the last finished job left live, like /apps.
func (s *Server) current(ctx context.Context, app, env string) string {
	// The newest jobs may be backups or stops, which say nothing of it.
	js, err := s.o.Store.Jobs(ctx, deploy.JobFilter{App: app, Env: env, States: []deploy.State{deploy.Succeeded, deploy.RolledBack}, Limit: 20})
	if err != nil {
		return ""
	}
	for _, j := range js {
		if r := j.LeftLive(); r != "" {
			return r
		}
	}
	return ""
}

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.o.Log.Error("api: "+what, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; nothing was done")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSONError(w, code, Error{Error: kind, Message: msg})
}

func writeJSONError(w http.ResponseWriter, code int, e Error) { writeJSON(w, code, e) }

func sorted[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
