package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/apitoken"
	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
)

// allow is a dispatcher that lets every request through and records it.
type allow struct {
	mu   sync.Mutex
	reqs []commands.Request
}

func (a *allow) Handle(_ context.Context, r commands.Request) commands.Reply {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reqs = append(a.reqs, r)
	return commands.Reply{}
}

// oneJob is a Store holding one job the test changes.
type oneJob struct {
	mu sync.Mutex
	j  deploy.Job
}

func (s *oneJob) Job(_ context.Context, id int64) (*deploy.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.j.ID {
		return nil, deploy.ErrNotFound
	}
	c := s.j
	return &c, nil
}
func (s *oneJob) Jobs(context.Context, deploy.JobFilter) ([]*deploy.Job, error) { return nil, nil }
func (s *oneJob) Lock(context.Context, string, string) (*deploy.Lock, error) {
	return nil, deploy.ErrNotFound
}
func (s *oneJob) Locks(context.Context) ([]deploy.Lock, error) { return nil, nil }

func (s *oneJob) set(state deploy.State) deploy.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.j.State = state
	return s.j
}

// An event stream outlives the server's write timeout (a job awaiting
// approval can take half an hour), sends each change, and ends with the job.
func TestEventStreamOutlivesWriteTimeout(t *testing.T) {
	tok, _ := apitoken.New()
	store := &oneJob{j: deploy.Job{ID: 7, App: "web", Env: "prod", Action: deploy.ActionDeploy, State: deploy.AwaitingApproval}}
	h := &allow{}
	s := New(Options{Tokens: func() *apitoken.Set { return apitoken.NewSet(map[string]audit.Secret{"ci": audit.NewSecret(tok)}) },
		Handler: h, Store: store, KeepLive: 100 * time.Millisecond})
	mux := http.NewServeMux()
	for _, r := range s.Routes() {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/jobs/7/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream closed waiting for %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q", prefix)
			}
		}
	}
	if l := next("data: "); !strings.Contains(l, `"awaiting_approval"`) {
		t.Fatalf("first event %s", l)
	}
	// Past the write timeout, only keep-alives flowing.
	start := time.Now()
	for time.Since(start) < time.Second {
		next(": keep-alive")
	}
	s.JobChanged(store.set(deploy.Running))
	if l := next("data: "); !strings.Contains(l, `"running"`) {
		t.Fatalf("after approval %s", l)
	}
	s.JobChanged(store.set(deploy.Succeeded))
	if l := next("data: "); !strings.Contains(l, `"succeeded"`) {
		t.Fatalf("final %s", l)
	}
	if l := next("event: "); l != "event: end" {
		t.Fatalf("want the end event, got %s", l)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reqs) != 1 || h.reqs[0].Text != "/job 7" || h.reqs[0].UserID != "ci" || h.reqs[0].Via != "api" {
		t.Fatalf("the stream was not checked through the dispatcher as api:ci: %+v", h.reqs)
	}
}
