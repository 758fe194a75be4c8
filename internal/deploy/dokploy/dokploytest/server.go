// Package dokploytest is an in-process fake Dokploy API, rebuilt from
// Dokploy's own source (Dokploy/dokploy canary 772b768, v0.30.2, and its
// REST layer Dokploy/trpc-openapi ea210c4). "D:" below is a path in the
// Dokploy repository, "O:" one in trpc-openapi. Each behaviour it imitates
// cites where Dokploy does it.
//
// Time is simulated: every read of a deployment list moves the world one
// step (queued jobs start, running builds finish), so tests script outcomes
// in polls, not in wall-clock time.
package dokploytest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Outcome scripts the next deploy or redeploy.
type Outcome struct {
	// HiddenPolls keeps the job waiting in the queue for that many list
	// reads before it may start (Dokploy picking it up late).
	HiddenPolls int
	// RunningPolls is how many more list reads show the build running.
	RunningPolls int
	Status       string // "done" (default) or "error"
	// ErrorMessage is written to the build log of a failed build. Dokploy
	// leaves the row's errorMessage NULL for a failed build: it is set only
	// when creating the row itself fails (D:packages/server/src/services/deployment.ts:190,347).
	ErrorMessage string
	// NoRollbackImage leaves the deployment without a rollbackId.
	NoRollbackImage bool
	// Never keeps the build running forever.
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
	ID, Title, Description, Status, RollbackID string
	Created                                    time.Time
	service                                    string
	running                                    int
	final                                      string
	never                                      bool
	redeploy                                   bool
	rewrite                                    bool // title and description change on the next step
	log                                        []string
}

type job struct {
	id        string
	data      map[string]any
	timestamp int64
	state     string // waiting, active
	delay     int
	outcome   Outcome
	partition string
	group     string
	row       *deployment
}

type service struct {
	kind, id, name, appName, sourceType, composeType, status, serverID string
	branches                                                           map[string]string // field -> value
	rollbackActive                                                     bool
}

type backup struct {
	backupType, databaseType, database, serviceName, composeID string
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	key string

	mu          sync.Mutex
	version     [3]int
	services    map[string]*service
	deployments []*deployment // oldest first
	queue       []*job
	outcomes    []Outcome
	failNext    map[string]failure
	backups     map[string]backup
	denied      map[string]bool
	unknown     map[string]bool        // update fields this Dokploy's schema lacks
	containers  map[string][]container // compose appName -> containers
	appLogs     map[string][]string    // application id -> container log lines
	calls       []Call
	seq, jobSeq int
	now         time.Time
	// BackupDelay is how long manual backups take to answer.
	BackupDelay time.Duration
}

type container struct {
	ID, Name string
	Lines    []string
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
	return &Server{key: key, version: [3]int{0, 30, 2}, services: map[string]*service{}, failNext: map[string]failure{},
		backups: map[string]backup{}, denied: map[string]bool{}, unknown: map[string]bool{}, containers: map[string][]container{}, appLogs: map[string][]string{}}
}

// APIURL is the base URL to configure: ".../api".
func (s *Server) APIURL() string { return s.URL + "/api" }

// SetVersion makes the fake behave as that Dokploy release ("v0.24.0"):
// procedures added later answer 404, titles are dropped before v0.25.0 and
// not rewritten before v0.25.7.
func (s *Server) SetVersion(v string) {
	var a, b, c int
	if _, err := fmt.Sscanf(strings.TrimPrefix(v, "v"), "%d.%d.%d", &a, &b, &c); err != nil {
		panic("dokploytest: version " + v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = [3]int{a, b, c}
}

func (s *Server) atLeast(v [3]int) bool {
	for i := range v {
		if s.version[i] != v[i] {
			return s.version[i] > v[i]
		}
	}
	return true
}

// branchField is the column each git source clones from
// (D:packages/server/src/db/schema/compose.ts:59-81; clone commands in
// D:packages/server/src/utils/providers/github.ts:235, gitlab.ts:158,
// bitbucket.ts:129, gitea.ts:181, git.ts:82).
var branchField = map[string]string{"github": "branch", "gitlab": "gitlabBranch", "bitbucket": "bitbucketBranch",
	"gitea": "giteaBranch", "git": "customGitBranch"}

var allBranchFields = []string{"branch", "gitlabBranch", "bitbucketBranch", "giteaBranch", "customGitBranch"}

// AddCompose adds a docker-compose service on the Dokploy server itself.
func (s *Server) AddCompose(id, name, sourceType, branch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := &service{kind: "compose", id: id, name: name, appName: name + "-x1y2z3", sourceType: sourceType,
		composeType: "docker-compose", status: "idle", branches: map[string]string{}}
	if f := branchField[sourceType]; f != "" {
		sv.branches[f] = branch
	}
	s.services[id] = sv
}

// AddApplication adds a github-sourced application on branch main with
// Rollbacks on (so each deploy keeps a rollback image).
func (s *Server) AddApplication(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[id] = &service{kind: "application", id: id, name: name, appName: name + "-a1b2c3", sourceType: "github",
		status: "idle", branches: map[string]string{"branch": "main"}, rollbackActive: true}
}

// SetServer puts a service on a remote Dokploy server: builds are
// serialised per server (D:apps/dokploy/server/queues/in-memory-queue.ts:9-19,44-45).
func (s *Server) SetServer(id, serverID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[id].serverID = serverID
}

// AddBackup adds a database-type backup configuration of dbType ("postgres", "libsql", ...).
func (s *Server) AddBackup(id, dbType, database string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backups[id] = backup{backupType: "database", databaseType: dbType, database: database}
}

// AddComposeBackup adds a backup of a database service inside a compose
// stack: backupType "compose", databaseType the engine
// (D:packages/server/src/db/schema/backups.ts:24-33,54-55).
func (s *Server) AddComposeBackup(id, composeID, serviceName, dbType, database string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backups[id] = backup{backupType: "compose", databaseType: dbType, database: database, serviceName: serviceName, composeID: composeID}
}

// Deny makes every call about service id answer the 401 a valid key gets
// for a service its user may not touch (D:packages/server/src/services/permission.ts:255-258).
func (s *Server) Deny(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[id] = true
}

// DropField makes *.update strip field as a Dokploy whose schema lacks it
// would: 200, nothing changed (D:packages/server/src/db/schema/compose.ts:258-265).
func (s *Server) DropField(field string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unknown[field] = true
}

// AddContainer gives a compose service a container with log lines.
func (s *Server) AddContainer(composeID, containerID, name string, lines ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.services[composeID].appName
	s.containers[app] = append(s.containers[app], container{ID: containerID, Name: name, Lines: lines})
}

// SetAppLogs sets an application's container log lines.
func (s *Server) SetAppLogs(applicationID string, lines ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appLogs[applicationID] = lines
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

// Queue queues a deploy of service id as Dokploy's UI or a git push would,
// with its own title: another build for the queue to run first.
func (s *Server) Queue(id, title string, o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.services[id]
	s.enqueue(sv, title, "", "deploy", o)
}

// Advance moves the simulated world n steps, as n list reads would: time
// passing while no one polls (shipbot down).
func (s *Server) Advance(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.tick()
	}
}

// CommitOf is the commit the fake's git remote has at ref.
func CommitOf(ref string) string {
	sum := sha1.Sum([]byte("commit of " + ref))
	return hex.EncodeToString(sum[:])
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

// Branch is the ref a service clones: the branch field of its source type.
func (s *Server) Branch(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv := s.services[id]; sv != nil {
		return sv.branches[branchField[sv.sourceType]]
	}
	return ""
}

// Waiting is how many jobs wait in the queue.
func (s *Server) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, j := range s.queue {
		if j.state == "waiting" {
			n++
		}
	}
	return n
}

type handler func(s *Server, q url.Values, body map[string]any) (int, any)

type route struct {
	method string
	since  [3]int // first release that has the procedure
	fn     handler
}

// Every procedure is served at /api/<router>.<proc>: a query as GET with its
// input in the query string, a mutation as POST with a JSON body
// (O:src/utils/procedure.ts; D:apps/dokploy/pages/api/[...trpc].ts).
var routes = map[string]route{
	// D:apps/dokploy/server/api/routers/compose.ts:413-462, 463-510
	"compose.deploy":   {http.MethodPost, [3]int{}, deployFn("compose", "composeId", "deploy")},
	"compose.redeploy": {http.MethodPost, [3]int{}, deployFn("compose", "composeId", "redeploy")},
	// D:apps/dokploy/server/api/routers/application.ts:700-743, 332-375
	"application.deploy":   {http.MethodPost, [3]int{}, deployFn("application", "applicationId", "deploy")},
	"application.redeploy": {http.MethodPost, [3]int{}, deployFn("application", "applicationId", "redeploy")},
	// D:.../routers/compose.ts:511-542 (true); application.ts:288-331
	"compose.stop":      {http.MethodPost, [3]int{}, statusFn("compose", "composeId", "idle")},
	"compose.start":     {http.MethodPost, [3]int{}, statusFn("compose", "composeId", "done")},
	"application.stop":  {http.MethodPost, [3]int{}, statusFn("application", "applicationId", "idle")},
	"application.start": {http.MethodPost, [3]int{}, statusFn("application", "applicationId", "done")},
	// D:.../routers/compose.ts:138-190; application.ts:141-191
	"compose.one":     {http.MethodGet, [3]int{}, oneFn("compose", "composeId")},
	"application.one": {http.MethodGet, [3]int{}, oneFn("application", "applicationId")},
	// D:.../routers/deployment.ts:38-54
	"deployment.all":          {http.MethodGet, [3]int{}, listFn("application", "applicationId")},
	"deployment.allByCompose": {http.MethodGet, [3]int{}, listFn("compose", "composeId")},
	// D:.../routers/deployment.ts:81-125, first in v0.28.3 (commit 1014d4674)
	"deployment.queueList": {http.MethodGet, [3]int{0, 28, 3}, (*Server).queueList},
	// D:.../routers/deployment.ts:238-283, first in v0.29.6 (commit a07106d64)
	"deployment.readLogs": {http.MethodGet, [3]int{0, 29, 6}, (*Server).readBuildLog},
	// D:.../routers/compose.ts:192-206; application.ts:646-681
	"compose.update":     {http.MethodPost, [3]int{}, updateFn("compose", "composeId")},
	"application.update": {http.MethodPost, [3]int{}, updateFn("application", "applicationId")},
	// D:.../routers/compose.ts:278-286; application.ts:744-751
	"compose.cleanQueues":     {http.MethodPost, [3]int{}, cleanFn("compose", "composeId")},
	"application.cleanQueues": {http.MethodPost, [3]int{}, cleanFn("application", "applicationId")},
	// D:.../routers/rollbacks.ts:42-68
	"rollback.rollback": {http.MethodPost, [3]int{}, (*Server).rollback},
	// D:.../routers/backup.ts:173-192, 293-458
	"backup.one":                  {http.MethodGet, [3]int{}, (*Server).backupOne},
	"backup.manualBackupPostgres": {http.MethodPost, [3]int{}, backupFn("database", "postgres", "Postgres not found")},
	"backup.manualBackupMySql":    {http.MethodPost, [3]int{}, backupFn("database", "mysql", "Error running manual MySQL backup ")},
	"backup.manualBackupMariadb":  {http.MethodPost, [3]int{}, backupFn("database", "mariadb", "Error running manual Mariadb backup ")},
	"backup.manualBackupMongo":    {http.MethodPost, [3]int{}, backupFn("database", "mongo", "Error running manual Mongo backup ")},
	"backup.manualBackupCompose":  {http.MethodPost, [3]int{0, 22, 0}, backupFn("compose", "", "Error running manual Compose backup ")},
	"backup.manualBackupLibsql":   {http.MethodPost, [3]int{0, 29, 0}, backupFn("database", "libsql", "Error running manual LibSQL backup ")},
	// D:.../routers/application.ts:1113-1146 and compose.ts:1211-1249, first in v0.29.0 (commit 7c10610a5)
	"application.readLogs": {http.MethodGet, [3]int{0, 29, 0}, (*Server).appReadLogs},
	"compose.readLogs":     {http.MethodGet, [3]int{0, 29, 0}, (*Server).composeReadLogs},
	// D:.../routers/docker.ts:230-250
	"docker.getContainersByAppNameMatch": {http.MethodGet, [3]int{}, (*Server).containersByApp},
}

// errBody is trpc-openapi's error answer {message, code, data, issues?}
// (O:src/adapters/node-http/core.ts:211-234).
func errBody(status int, code, msg string) map[string]any {
	return map[string]any{"message": msg, "code": code, "data": map[string]any{"code": code, "httpStatus": status}}
}

// zodErr is a failed input validation: 400 "Input validation failed" with
// zod's issues, each with its path (O:src/adapters/node-http/core.ts:220-233).
func zodErr(path, msg string) (int, any) {
	b := errBody(400, "BAD_REQUEST", "Input validation failed")
	b["issues"] = []map[string]any{{"code": "custom", "message": msg, "path": []string{path}}}
	return http.StatusBadRequest, b
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
	// A void procedure answers an empty body (O:src/adapters/node-http/core.ts:185-188).
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

var serviceKeys = []string{"composeId", "applicationId"}

func (s *Server) serve(r *http.Request, proc string, ok bool, call *Call) (int, any) {
	// A wrong, expired or rate-limited key: 401 {"message":"Unauthorized"},
	// with no code (D:apps/dokploy/pages/api/[...trpc].ts:8-13).
	if r.Header.Get("x-api-key") != s.key {
		return http.StatusUnauthorized, map[string]any{"message": "Unauthorized"}
	}
	rt, known := routes[proc]
	s.mu.Lock()
	tooOld := known && !s.atLeast(rt.since)
	s.mu.Unlock()
	// An unknown path and a known path with the wrong method are the same
	// 404 "Not found"; trpc-openapi never answers 405 (O:src/adapters/node-http/core.ts:85-102).
	if !ok || !known || tooOld || r.Method != rt.method {
		return http.StatusNotFound, errBody(404, "NOT_FOUND", "Not found")
	}
	body := map[string]any{}
	if r.Method == http.MethodPost {
		// O:src/adapters/node-http/core.ts:105-115
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return http.StatusUnsupportedMediaType, errBody(415, "UNSUPPORTED_MEDIA_TYPE", "Missing content-type header")
		}
		data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := json.Unmarshal(data, &body); err != nil {
			return http.StatusBadRequest, errBody(400, "PARSE_ERROR", "invalid JSON")
		}
	}
	call.Body = body
	s.mu.Lock()
	f, fail := s.failNext[proc]
	delete(s.failNext, proc)
	deny := false
	for _, k := range serviceKeys {
		deny = deny || s.denied[str(body, k)] || s.denied[r.URL.Query().Get(k)]
	}
	s.mu.Unlock()
	if fail {
		return f.status, errBody(f.status, f.code, f.message)
	}
	if deny {
		// D:packages/server/src/services/permission.ts:255-258
		return http.StatusUnauthorized, errBody(401, "UNAUTHORIZED", "You don't have access to this service")
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

func notFound(kind string) (int, any) {
	// findComposeById / findApplicationById (e.g. D:packages/server/src/services/compose.ts:148-149)
	return http.StatusNotFound, errBody(404, "NOT_FOUND", strings.ToUpper(kind[:1])+kind[1:]+" not found")
}

func (s *Server) clock() time.Time {
	// Real time, strictly increasing, so ids and order are stable.
	if now := time.Now().UTC().Truncate(time.Millisecond); now.After(s.now) {
		s.now = now
	} else {
		s.now = s.now.Add(time.Millisecond)
	}
	return s.now
}

func deployFn(kind, idKey, typ string) handler {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		id := str(body, idKey)
		if id == "" {
			return zodErr(idKey, "Required")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		sv := s.lookup(kind, id)
		if sv == nil {
			return notFound(kind)
		}
		o := Outcome{}
		if len(s.outcomes) > 0 {
			o, s.outcomes = s.outcomes[0], s.outcomes[1:]
		}
		title := str(body, "title")
		if !s.atLeast([3]int{0, 25, 0}) {
			// title and description joined the input in v0.25.0 (commit
			// 90d988030); before, zod strips them.
			title = ""
		}
		s.enqueue(sv, title, str(body, "description"), typ, o)
		// The deploy is queued: compose answers {success, message, composeId}
		// (D:.../routers/compose.ts:457-461), application nothing (application.ts:729-743).
		if kind == "compose" {
			return http.StatusOK, map[string]any{"success": true, "message": "Deployment queued", "composeId": id}
		}
		return http.StatusOK, nil
	}
}

// enqueue adds a job to the in-memory queue: one FIFO per service, one
// build at a time per server without an enterprise licence
// (D:apps/dokploy/server/queues/in-memory-queue.ts:126-141, concurrency.ts:14-37).
func (s *Server) enqueue(sv *service, title, description, typ string, o Outcome) {
	if title == "" {
		// D:.../routers/compose.ts:423,472
		title = map[string]string{"deploy": "Manual deployment", "redeploy": "Rebuild deployment"}[typ]
	}
	if o.Status == "" {
		o.Status = "done"
	}
	s.jobSeq++
	// D:apps/dokploy/server/queues/queue-types.ts:1-29
	data := map[string]any{"titleLog": title, "descriptionLog": description, "type": typ, "applicationType": sv.kind,
		"server": sv.serverID != ""}
	data[sv.kind+"Id"] = sv.id
	if sv.serverID != "" {
		data["serverId"] = sv.serverID
	}
	s.queue = append(s.queue, &job{id: fmt.Sprintf("job-%d", s.jobSeq), data: data, timestamp: s.clock().UnixMilli(),
		state: "waiting", delay: o.HiddenPolls, outcome: o, partition: sv.serverID, group: sv.kind + ":" + sv.id})
	s.schedule()
}

// schedule starts the first waiting job of each idle server whose service
// is not already building (D:apps/dokploy/server/queues/in-memory-queue.ts:221-243).
func (s *Server) schedule() {
	busy := map[string]bool{}
	for _, j := range s.queue {
		if j.state == "active" {
			busy[j.partition] = true
		}
	}
	for _, j := range s.queue {
		if j.state != "waiting" || busy[j.partition] || j.delay > 0 {
			continue
		}
		busy[j.partition] = true
		j.state = "active"
		s.start(j)
	}
}

// start is processDeploymentJob: the service goes running and the
// deployment row is created only now (D:apps/dokploy/server/queues/deployments-queue.ts:18-52).
func (s *Server) start(j *job) {
	sv := s.services[j.group[strings.IndexByte(j.group, ':')+1:]]
	sv.status = "running"
	// Before creating a row Dokploy deletes all but the newest 10 of the
	// service, and their rollback images (D:packages/server/src/services/deployment.ts:692-756).
	var mine []*deployment
	for _, d := range s.deployments {
		if d.service == sv.id {
			mine = append(mine, d)
		}
	}
	if len(mine) > 10 {
		drop := map[*deployment]bool{}
		for _, d := range mine[:len(mine)-10] {
			drop[d] = true
		}
		kept := s.deployments[:0]
		for _, d := range s.deployments {
			if !drop[d] {
				kept = append(kept, d)
			}
		}
		s.deployments = kept
	}
	s.seq++
	o := j.outcome
	ref := sv.branches[branchField[sv.sourceType]]
	d := &deployment{ID: fmt.Sprintf("dpl_%04dXy", s.seq), Title: j.data["titleLog"].(string),
		Description: j.data["descriptionLog"].(string), Status: "running", Created: s.clock(), service: sv.id,
		running: o.RunningPolls, final: o.Status, never: o.Never, redeploy: j.data["type"] == "redeploy",
		log: []string{"Initializing deployment"}}
	if !d.redeploy && branchField[sv.sourceType] != "" {
		d.log = append(d.log, fmt.Sprintf("Cloning %s into code (git clone --branch %s --depth 1)", ref, ref))
	}
	if o.Status == "error" {
		msg := o.ErrorMessage
		if msg == "" {
			msg = "Error: build step exited with code 1"
		}
		d.log = append(d.log, "Building...", msg, "", "Error occurred ❌, check the logs for details.")
	} else {
		d.log = append(d.log, "Building...", "Docker Compose deployed: ✅")
	}
	// A rollback image is kept only with Rollbacks on and a registry
	// (D:packages/server/src/utils/cluster/upload.ts:52-72, services/rollbacks.ts:91-97).
	if sv.kind == "application" && sv.rollbackActive && !o.NoRollbackImage && !d.redeploy {
		d.RollbackID = fmt.Sprintf("rbk_%04d", s.seq)
	}
	s.deployments = append(s.deployments, d)
	j.row = d
}

// tick is one step of time: queued jobs count down, running builds run or
// end, and freed servers start their next job.
func (s *Server) tick() {
	for _, d := range s.deployments {
		if d.rewrite {
			d.rewrite = false
			ref := s.services[d.service].branches[branchField[s.services[d.service].sourceType]]
			d.Title = "Merge pull request #42 from supermock/" + ref
			d.Description = "Commit: " + CommitOf(ref)
		}
	}
	for _, j := range s.queue {
		if j.state == "waiting" && j.delay > 0 {
			j.delay--
		}
	}
	var left []*job
	for _, j := range s.queue {
		if j.state == "active" && !j.row.never {
			if j.row.running > 0 {
				j.row.running--
			} else {
				s.finish(j)
				continue // done jobs leave the queue (in-memory-queue.ts:245-260)
			}
		}
		left = append(left, j)
	}
	s.queue = left
	s.schedule()
}

// finish ends a build: the status first, and one step later, in the
// finally block of deployCompose/deployApplication, the row's title becomes
// the commit message and its description "Commit: <sha>" for every git
// source (D:packages/server/src/services/compose.ts:284-289 then 328-340,
// application.ts:235-246 then 277-291; since v0.25.7, commit 61d9ae397).
// Rebuilds (redeploy) do not rewrite (compose.ts:344-426).
func (s *Server) finish(j *job) {
	d := j.row
	sv := s.services[d.service]
	d.Status = d.final
	sv.status = d.final
	gitSource := branchField[sv.sourceType] != ""
	d.rewrite = !d.redeploy && gitSource && s.atLeast([3]int{0, 25, 7})
}

func statusFn(kind, idKey, to string) handler {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sv := s.lookup(kind, str(body, idKey))
		if sv == nil {
			return notFound(kind)
		}
		sv.status = to
		if kind == "compose" {
			return http.StatusOK, true
		}
		return http.StatusOK, s.serviceJSON(sv)
	}
}

func (s *Server) serviceJSON(sv *service) map[string]any {
	out := map[string]any{"name": sv.name, "appName": sv.appName, "sourceType": sv.sourceType,
		sv.kind + "Status": sv.status, "refreshToken": "rt_secret", "serverId": nil, sv.kind + "Id": sv.id,
		"env": "DATABASE_URL=postgres://u:secret@db/x"}
	if sv.serverID != "" {
		out["serverId"] = sv.serverID
	}
	if sv.kind == "compose" {
		out["composeType"] = sv.composeType
	} else {
		out["rollbackActive"] = sv.rollbackActive
	}
	for _, f := range allBranchFields {
		out[f] = nil
		if v, ok := sv.branches[f]; ok {
			out[f] = v
		}
	}
	return out
}

func oneFn(kind, idKey string) handler {
	return func(s *Server, q url.Values, _ map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sv := s.lookup(kind, q.Get(idKey))
		if sv == nil {
			return notFound(kind)
		}
		return http.StatusOK, s.serviceJSON(sv)
	}
}

// listFn answers the service's deployments newest first
// (D:packages/server/src/services/deployment.ts, findAllDeploymentsBy*:
// orderBy createdAt desc) and then moves the world one step.
func listFn(kind, idKey string) handler {
	return func(s *Server, q url.Values, _ map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		id := q.Get(idKey)
		if s.lookup(kind, id) == nil {
			return notFound(kind)
		}
		out := []map[string]any{}
		for i := len(s.deployments) - 1; i >= 0; i-- {
			d := s.deployments[i]
			if d.service != id {
				continue
			}
			// D:packages/server/src/db/schema/deployment.ts:20-76; errorMessage
			// stays null for a failed build.
			item := map[string]any{"deploymentId": d.ID, "title": d.Title, "description": d.Description,
				"status": d.Status, "logPath": "/etc/dokploy/logs/" + d.ID + ".log", kind + "Id": id,
				"createdAt": d.Created.Format("2006-01-02T15:04:05.000Z"), "errorMessage": nil, "rollbackId": nil}
			if d.RollbackID != "" {
				item["rollbackId"] = d.RollbackID
			}
			out = append(out, item)
		}
		s.tick()
		return http.StatusOK, out
	}
}

// queueList lists the jobs waiting or active with their data and state,
// newest first (D:apps/dokploy/server/api/routers/deployment.ts:81-125).
func (s *Server) queueList(_ url.Values, _ map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for i := len(s.queue) - 1; i >= 0; i-- {
		j := s.queue[i]
		row := map[string]any{"id": j.id, "name": "deployments", "data": j.data, "timestamp": j.timestamp, "state": j.state,
			"servicePath": map[string]any{"href": nil, "label": "Compose"}}
		out = append(out, row)
	}
	return http.StatusOK, out
}

// tailParam reads tail as zod coerces it from the query string (1..10000,
// default 100: D:.../routers/deployment.ts:242, application.ts:1116).
func tailParam(q url.Values) (int, bool) {
	v := q.Get("tail")
	if v == "" {
		return 100, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 1 && n <= 10000
}

func lastN(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// readBuildLog is `tail -n <tail>` of the deployment's log file, as one
// string (D:.../routers/deployment.ts:238-283).
func (s *Server) readBuildLog(q url.Values, _ map[string]any) (int, any) {
	n, ok := tailParam(q)
	if !ok {
		return zodErr("tail", "Number must be between 1 and 10000")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deployments {
		if d.ID == q.Get("deploymentId") {
			if s.denied[d.service] {
				return http.StatusUnauthorized, errBody(401, "UNAUTHORIZED", "You don't have access to this service")
			}
			return http.StatusOK, strings.Join(lastN(d.log, n), "\n") + "\n"
		}
	}
	// D:packages/server/src/services/deployment.ts:100-105
	return http.StatusNotFound, errBody(404, "NOT_FOUND", "Deployment not found")
}

var sinceRE = regexp.MustCompile(`^(all|\d+[smhd])$`)

// containerLog is getContainerLogs: `docker container logs --timestamps
// --tail N [--since S]` (D:packages/server/src/services/docker.ts:421-480).
func containerLog(lines []string, q url.Values) (int, any) {
	n, ok := tailParam(q)
	if !ok {
		return zodErr("tail", "Number must be between 1 and 10000")
	}
	if since := q.Get("since"); since != "" && !sinceRE.MatchString(since) {
		return zodErr("since", "Invalid since format")
	}
	return http.StatusOK, strings.Join(lastN(lines, n), "\n") + "\n"
}

func (s *Server) appReadLogs(q url.Values, _ map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lookup("application", q.Get("applicationId")) == nil {
		return notFound("application")
	}
	return containerLog(s.appLogs[q.Get("applicationId")], q)
}

// containersByApp lists a compose project's containers by its
// com.docker.compose.project label (D:packages/server/src/services/docker.ts:106-171).
func (s *Server) containersByApp(q url.Values, _ map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, c := range s.containers[q.Get("appName")] {
		out = append(out, map[string]any{"containerId": c.ID, "name": c.Name, "state": "running", "status": "Up 2 hours"})
	}
	return http.StatusOK, out
}

func (s *Server) composeReadLogs(q url.Values, _ map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.lookup("compose", q.Get("composeId"))
	if sv == nil {
		return notFound("compose")
	}
	for _, c := range s.containers[sv.appName] {
		if c.ID == q.Get("containerId") {
			return containerLog(c.Lines, q)
		}
	}
	return http.StatusInternalServerError, errBody(500, "INTERNAL_SERVER_ERROR", "Internal server error")
}

// updateFn is compose.update / application.update: the input is the
// table's insert schema made partial, so zod silently strips keys it does
// not know and the answer is 200 either way
// (D:packages/server/src/db/schema/compose.ts:258-265, application.ts:549-554).
func updateFn(kind, idKey string) handler {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		sv := s.lookup(kind, str(body, idKey))
		if sv == nil {
			return notFound(kind)
		}
		for _, f := range allBranchFields {
			if v, ok := body[f].(string); ok && !s.unknown[f] {
				sv.branches[f] = v
			}
		}
		if kind == "compose" {
			return http.StatusOK, s.serviceJSON(sv)
		}
		return http.StatusOK, true
	}
}

// cleanFn drops the service's waiting jobs; a running one is not touched
// (D:apps/dokploy/server/queues/queueSetup.ts:98-116, in-memory-queue.ts:182-193).
func cleanFn(kind, idKey string) handler {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		s.mu.Lock()
		defer s.mu.Unlock()
		id := str(body, idKey)
		var left []*job
		for _, j := range s.queue {
			if j.state == "waiting" && j.data[idKey] == id {
				continue
			}
			left = append(left, j)
		}
		s.queue = left
		if kind == "compose" {
			return http.StatusOK, map[string]any{"success": true, "message": "Queues cleaned successfully"}
		}
		return http.StatusOK, nil
	}
}

// rollback redeploys the kept image: no deployment row, no status change,
// and every error is 400 "Error input: Rolling back"
// (D:.../routers/rollbacks.ts:42-68, D:packages/server/src/services/rollbacks.ts:163-183).
func (s *Server) rollback(_ url.Values, body map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := str(body, "rollbackId")
	for _, d := range s.deployments {
		if d.RollbackID != "" && d.RollbackID == id {
			return http.StatusOK, nil
		}
	}
	return http.StatusBadRequest, errBody(400, "BAD_REQUEST", "Error input: Rolling back")
}

func (s *Server) backupOne(q url.Values, _ map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.backups[q.Get("backupId")]
	if !ok {
		return http.StatusNotFound, errBody(404, "NOT_FOUND", "Backup not found")
	}
	// D:packages/server/src/db/schema/backups.ts:35-70
	out := map[string]any{"backupId": q.Get("backupId"), "backupType": b.backupType, "databaseType": b.databaseType,
		"database": b.database, "prefix": "supermock/", "schedule": "0 3 * * *", "enabled": true,
		"serviceName": nil, "composeId": nil, "keepLatestCount": 7}
	if b.backupType == "compose" {
		out["serviceName"], out["composeId"] = b.serviceName, b.composeID
	}
	return http.StatusOK, out
}

// backupFn runs a manual backup before answering true; it finds the
// service through the backup, so the wrong procedure for a backup fails
// with 400 (D:.../routers/backup.ts:293-458: findPostgresByBackupId throws
// "Postgres not found", the others a generic message).
func backupFn(backupType, dbType, failMsg string) handler {
	return func(s *Server, _ url.Values, body map[string]any) (int, any) {
		s.mu.Lock()
		b, ok := s.backups[str(body, "backupId")]
		delay := s.BackupDelay
		s.mu.Unlock()
		if !ok {
			return http.StatusNotFound, errBody(404, "NOT_FOUND", "Backup not found")
		}
		if b.backupType != backupType || (dbType != "" && b.databaseType != dbType) {
			return http.StatusBadRequest, errBody(400, "BAD_REQUEST", failMsg)
		}
		time.Sleep(delay) // the backup's own run time; Dokploy answers when it is done
		return http.StatusOK, true
	}
}
