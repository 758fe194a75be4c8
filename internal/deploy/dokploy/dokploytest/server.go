// Package dokploytest is an in-process fake Dokploy API: the procedures
// shipbot calls, with Dokploy's methods, JSON bodies and answers (the empty
// body of a queued deploy, {message, code, issues} errors, 401 for a bad
// key), and deployments that go queued -> running -> done or error as they
// are polled.
package dokploytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Outcome scripts the next deploy: it is invisible for HiddenPolls list
// reads, then running for RunningPolls reads, then ends in Status.
type Outcome struct {
	HiddenPolls  int
	RunningPolls int
	Status       string // "done" (default) or "error"
	ErrorMessage string
	// NoRollbackImage leaves the deployment without a rollbackId.
	NoRollbackImage bool
	// Never keeps the deployment running forever.
	Never bool
}

// Call is one request the server received.
type Call struct {
	Method, Procedure string
	Query             url.Values
	Body              map[string]any
	Status            int
}

type deployment struct {
	ID, Title, Description, Status, ErrorMessage, RollbackID string
	Created                                                  time.Time
	service                                                  string
	hidden, running                                          int
	final                                                    string
	never                                                    bool
}

type service struct {
	kind, id, name, sourceType, branch, status string
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	key string

	mu          sync.Mutex
	services    map[string]*service
	deployments []*deployment // oldest first
	outcomes    []Outcome
	failNext    map[string]failure
	backups     map[string][2]string // id -> type, database
	calls       []Call
	seq         int
	now         time.Time
	// BackupDelay is how long manual backups take to answer.
	BackupDelay time.Duration
}

type failure struct {
	status        int
	code, message string
}

// New starts a plain-HTTP fake on loopback accepting key.
func New(tb testing.TB, key string) *Server {
	s := newServer(key)
	s.Server = httptest.NewServer(s)
	tb.Cleanup(s.Close)
	return s
}

// NewTLS starts the fake over HTTPS; Certificate() is its self-signed cert.
func NewTLS(tb testing.TB, key string) *Server {
	s := newServer(key)
	s.Server = httptest.NewTLSServer(s)
	tb.Cleanup(s.Close)
	return s
}

func newServer(key string) *Server {
	return &Server{key: key, services: map[string]*service{}, failNext: map[string]failure{},
		backups: map[string][2]string{}}
}

// APIURL is the base URL to configure: ".../api".
func (s *Server) APIURL() string { return s.URL + "/api" }

// AddCompose adds a compose service.
func (s *Server) AddCompose(id, name, sourceType, branch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[id] = &service{kind: "compose", id: id, name: name, sourceType: sourceType, branch: branch, status: "idle"}
}

// AddApplication adds an application.
func (s *Server) AddApplication(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[id] = &service{kind: "application", id: id, name: name, sourceType: "github", branch: "main", status: "idle"}
}

// AddBackup adds a backup configuration of dbType ("postgres", ...).
func (s *Server) AddBackup(id, dbType, database string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backups[id] = [2]string{dbType, database}
}

// NextDeploy scripts the next deploy or redeploy.
func (s *Server) NextDeploy(o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes = append(s.outcomes, o)
}

// FailNext makes the next call of proc answer status with Dokploy's error JSON.
func (s *Server) FailNext(proc string, status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[proc] = failure{status, code, message}
}

// Calls returns the requests so far; CallsTo only those to proc.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the calls of one procedure.
func (s *Server) CallsTo(proc string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Procedure == proc {
			out = append(out, c)
		}
	}
	return out
}

// Status is a service's status.
func (s *Server) Status(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv := s.services[id]; sv != nil {
		return sv.status
	}
	return ""
}

// Branch is a compose's configured branch.
func (s *Server) Branch(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv := s.services[id]; sv != nil {
		return sv.branch
	}
	return ""
}

type route struct {
	method string
	fn     func(s *Server, q url.Values, body map[string]any) (int, any)
}

var routes = map[string]route{
	"compose.deploy":              {http.MethodPost, deployFn("compose", "composeId")},
	"compose.redeploy":            {http.MethodPost, deployFn("compose", "composeId")},
	"application.deploy":          {http.MethodPost, deployFn("application", "applicationId")},
	"application.redeploy":        {http.MethodPost, deployFn("application", "applicationId")},
	"compose.stop":                {http.MethodPost, statusFn("compose", "composeId", "idle")},
	"compose.start":               {http.MethodPost, statusFn("compose", "composeId", "done")},
	"application.stop":            {http.MethodPost, statusFn("application", "applicationId", "idle")},
	"application.start":           {http.MethodPost, statusFn("application", "applicationId", "done")},
	"compose.one":                 {http.MethodGet, oneFn("compose", "composeId")},
	"application.one":             {http.MethodGet, oneFn("application", "applicationId")},
	"deployment.all":              {http.MethodGet, listFn("application", "applicationId")},
	"deployment.allByCompose":     {http.MethodGet, listFn("compose", "composeId")},
	"compose.update":              {http.MethodPost, (*Server).composeUpdate},
	"rollback.rollback":           {http.MethodPost, (*Server).rollback},
	"backup.one":                  {http.MethodGet, (*Server).backupOne},
	"backup.manualBackupPostgres": {http.MethodPost, backupFn("postgres")},
	"backup.manualBackupMySql":    {http.MethodPost, backupFn("mysql")},
	"backup.manualBackupMariadb":  {http.MethodPost, backupFn("mariadb")},
	"backup.manualBackupMongo":    {http.MethodPost, backupFn("mongo")},
	"backup.manualBackupCompose":  {http.MethodPost, backupFn("compose")},
}

func errBody(code, msg string, issues ...string) map[string]any {
	b := map[string]any{"message": msg, "code": code}
	if len(issues) > 0 {
		var is []map[string]string
		for _, i := range issues {
			is = append(is, map[string]string{"message": i})
		}
		b["issues"] = is
	}
	return b
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	proc, ok := strings.CutPrefix(r.URL.Path, "/api/")
	call := Call{Method: r.Method, Procedure: proc, Query: r.URL.Query()}
	status, body := s.serve(r, proc, ok, &call)
	call.Status = status
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

func (s *Server) serve(r *http.Request, proc string, ok bool, call *Call) (int, any) {
	if r.Header.Get("x-api-key") != s.key {
		return http.StatusUnauthorized, errBody("UNAUTHORIZED", "Unauthorized")
	}
	rt, known := routes[proc]
	if !ok || !known {
		return http.StatusNotFound, errBody("NOT_FOUND", fmt.Sprintf("No \"query\"-procedure on path \"%s\"", proc))
	}
	if r.Method != rt.method {
		return http.StatusMethodNotAllowed, errBody("METHOD_NOT_SUPPORTED", fmt.Sprintf("Unsupported %s-request to %s procedure at path \"%s\"", r.Method, map[string]string{"GET": "query", "POST": "mutation"}[rt.method], proc))
	}
	body := map[string]any{}
	if r.Method == http.MethodPost {
		if r.Header.Get("Content-Type") != "application/json" {
			return http.StatusBadRequest, errBody("BAD_REQUEST", "expected a JSON body")
		}
		data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := json.Unmarshal(data, &body); err != nil {
			return http.StatusBadRequest, errBody("PARSE_ERROR", "invalid JSON")
		}
	}
	call.Body = body
	s.mu.Lock()
	f, fail := s.failNext[proc]
	delete(s.failNext, proc)
	s.mu.Unlock()
	if fail {
		return f.status, errBody(f.code, f.message)
	}
	return rt.fn(s, r.URL.Query(), body)
}

func str(body map[string]any, k string) string {
	v, _ := body[k].(string)
	return v
}

func (s *Server) lookup(kind, id string) *service {
	if sv := s.services[id]; sv != nil && sv.kind == kind {
		return sv
	}
	return nil
}

func deployFn(kind, idKey string) func(*Server, url.Values, map[string]any) (int, any) {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		id := str(body, idKey)
		if id == "" {
			return http.StatusBadRequest, errBody("BAD_REQUEST", "Input validation failed", idKey+": Required")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		sv := s.lookup(kind, id)
		if sv == nil {
			return http.StatusNotFound, errBody("NOT_FOUND", strings.ToUpper(kind[:1])+kind[1:]+" not found")
		}
		o := Outcome{}
		if len(s.outcomes) > 0 {
			o, s.outcomes = s.outcomes[0], s.outcomes[1:]
		}
		if o.Status == "" {
			o.Status = "done"
		}
		s.seq++
		// Real time, strictly increasing, so ids and order are stable.
		if now := time.Now().UTC().Truncate(time.Second); now.After(s.now) {
			s.now = now
		} else {
			s.now = s.now.Add(time.Second)
		}
		d := &deployment{ID: fmt.Sprintf("dpl_%04dXy", s.seq), Title: str(body, "title"), Description: str(body, "description"),
			Created: s.now, service: id, hidden: o.HiddenPolls, running: o.RunningPolls, final: o.Status,
			ErrorMessage: "", never: o.Never, Status: "running"}
		if d.Title == "" {
			d.Title = "Manual deployment"
		}
		if o.Status == "error" {
			d.ErrorMessage = o.ErrorMessage
		}
		if kind == "application" && !o.NoRollbackImage {
			d.RollbackID = fmt.Sprintf("rbk_%04d", s.seq)
		}
		s.deployments = append(s.deployments, d)
		sv.status = "running"
		// Dokploy queues the deploy and answers with no body.
		return http.StatusOK, nil
	}
}

func statusFn(kind, idKey, to string) func(*Server, url.Values, map[string]any) (int, any) {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sv := s.lookup(kind, str(body, idKey))
		if sv == nil {
			return http.StatusNotFound, errBody("NOT_FOUND", kind+" not found")
		}
		sv.status = to
		return http.StatusOK, nil
	}
}

func oneFn(kind, idKey string) func(*Server, url.Values, map[string]any) (int, any) {
	return func(s *Server, q url.Values, _ map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sv := s.lookup(kind, q.Get(idKey))
		if sv == nil {
			return http.StatusNotFound, errBody("NOT_FOUND", kind+" not found")
		}
		out := map[string]any{"name": sv.name, "appName": sv.name + "-x1y2z3", "sourceType": sv.sourceType,
			kind + "Status": sv.status, "refreshToken": "rt_secret"}
		if sv.sourceType == "git" || kind == "application" {
			out["branch"] = sv.branch
		} else {
			out["customGitBranch"] = sv.branch
		}
		return http.StatusOK, out
	}
}

// listFn answers newest first and moves each unfinished deployment of the
// service one step on, as time passing would.
func listFn(kind, idKey string) func(*Server, url.Values, map[string]any) (int, any) {
	return func(s *Server, q url.Values, _ map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		id := q.Get(idKey)
		sv := s.lookup(kind, id)
		if sv == nil {
			return http.StatusNotFound, errBody("NOT_FOUND", kind+" not found")
		}
		out := []map[string]any{}
		for i := len(s.deployments) - 1; i >= 0; i-- {
			d := s.deployments[i]
			if d.service != id {
				continue
			}
			if d.hidden > 0 {
				d.hidden--
				continue
			}
			item := map[string]any{"deploymentId": d.ID, "title": d.Title, "description": d.Description,
				"status": d.Status, "logPath": "/etc/dokploy/logs/" + d.ID + ".log",
				"createdAt": d.Created.Format(time.RFC3339Nano), "errorMessage": nil, "rollbackId": nil}
			if d.RollbackID != "" {
				item["rollbackId"] = d.RollbackID
			}
			if d.Status != "running" && d.ErrorMessage != "" {
				item["errorMessage"] = d.ErrorMessage
			}
			out = append(out, item)
			if d.Status == "running" && !d.never {
				if d.running > 0 {
					d.running--
				} else {
					d.Status = d.final
					sv.status = map[string]string{"done": "done", "error": "error"}[d.final]
				}
			}
		}
		return http.StatusOK, out
	}
}

func (s *Server) composeUpdate(_ url.Values, body map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.lookup("compose", str(body, "composeId"))
	if sv == nil {
		return http.StatusNotFound, errBody("NOT_FOUND", "Compose not found")
	}
	if b := str(body, "branch") + str(body, "customGitBranch"); b != "" {
		sv.branch = b
	}
	return http.StatusOK, map[string]any{"composeId": sv.id}
}

func (s *Server) rollback(_ url.Values, body map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := str(body, "rollbackId")
	for _, d := range s.deployments {
		if d.RollbackID != "" && d.RollbackID == id {
			s.services[d.service].status = "done"
			return http.StatusOK, nil
		}
	}
	return http.StatusNotFound, errBody("NOT_FOUND", "Rollback not found")
}

func (s *Server) backupOne(q url.Values, _ map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.backups[q.Get("backupId")]
	if !ok {
		return http.StatusNotFound, errBody("NOT_FOUND", "Backup not found")
	}
	return http.StatusOK, map[string]any{"backupId": q.Get("backupId"), "databaseType": b[0], "database": b[1],
		"prefix": "supermock/", "schedule": "0 3 * * *", "enabled": true}
}

func backupFn(dbType string) func(*Server, url.Values, map[string]any) (int, any) {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		s.mu.Lock()
		b, ok := s.backups[str(body, "backupId")]
		delay := s.BackupDelay
		s.mu.Unlock()
		if !ok || b[0] != dbType {
			return http.StatusNotFound, errBody("NOT_FOUND", "Backup not found")
		}
		// Manual backups run before Dokploy answers.
		time.Sleep(delay)
		return http.StatusOK, true
	}
}
