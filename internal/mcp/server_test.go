package mcp

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/shipbot/shipbot/internal/apitoken"
	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var token = strings.Repeat("t", 43)

// fakeHandler records the requests the tools make and answers with reply.
type fakeHandler struct {
	mu    sync.Mutex
	reqs  []commands.Request
	reply commands.Reply
}

func (f *fakeHandler) Handle(_ context.Context, r commands.Request) commands.Reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	return f.reply
}

type fakeStore struct{ err error }

func (f fakeStore) Job(_ context.Context, id int64) (*deploy.Job, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &deploy.Job{ID: id, Action: deploy.ActionDeploy, App: "demo", Env: "production", State: deploy.AwaitingApproval,
		ApprovalID: "abc", RequestedBy: deploy.Who{User: "ai"}}, nil
}

func newTestServer(t *testing.T, h commands.Handler, st Store) (*Server, string) {
	t.Helper()
	s := New(Options{
		Tokens: func() *apitoken.Set {
			return apitoken.NewSet(map[string]audit.Secret{"assistant": audit.NewSecret(token)})
		},
		Handler: h, Store: st,
		Catalog: func() commands.Catalog {
			return commands.Catalog{"demo": {"staging": {}, "production": {}}, "web": {"qa": {}}}
		},
		Origins: func() []string { return []string{"https://ok.example"} },
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func status(t *testing.T, url, tok string, origins ...string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for _, o := range origins {
		req.Header.Add("Origin", o)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("a 401 without WWW-Authenticate")
	}
	return resp.StatusCode
}

func TestAuthAndOrigin(t *testing.T) {
	h := &fakeHandler{}
	_, url := newTestServer(t, h, fakeStore{})
	for _, c := range []struct {
		name    string
		tok     string
		origins []string
		want    int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"wrong token", strings.Repeat("x", 43), nil, http.StatusUnauthorized},
		{"foreign origin", token, []string{"https://evil.example"}, http.StatusForbidden},
		{"a good origin then a bad one", token, []string{"https://ok.example", "https://evil.example"}, http.StatusForbidden},
		{"origin with a path", token, []string{"https://ok.example/x"}, http.StatusForbidden},
		{"allowed origin, other case", token, []string{"HTTPS://OK.example"}, http.StatusOK},
		{"no origin", token, nil, http.StatusOK},
	} {
		if got := status(t, url, c.tok, c.origins...); got != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, got, c.want)
		}
	}
	// Through a reverse proxy on the same machine: loopback address, the
	// public Host name.
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Host = "shipbot.example.com"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("behind a reverse proxy: HTTP %d, want 200", resp.StatusCode)
	}
	if len(h.reqs) != 0 {
		t.Errorf("the dispatcher saw %d requests", len(h.reqs))
	}
}

func connect(t *testing.T, url string) *sdk.ClientSession {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	s, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: url, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+token)
			return http.DefaultTransport.RoundTrip(r)
		})}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestToolCallIsTheChatCommand(t *testing.T) {
	h := &fakeHandler{reply: commands.Reply{Notice: "Locked", Message: &notify.Message{Title: "Locked demo/staging"}}}
	_, url := newTestServer(t, h, fakeStore{})
	s := connect(t, url)
	res, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "lock",
		Arguments: map[string]any{"app": "demo", "env": "staging", "for": "2h", "reason": "  db\tmigration  "}})
	if err != nil || res.IsError {
		t.Fatalf("lock: %v %+v", err, res)
	}
	want := commands.Request{Platform: "api", UserID: "assistant", UserName: "assistant", Via: "mcp",
		Chat: notify.Channel{Platform: "mcp", ID: "assistant"}, Text: "/lock demo staging --for 2h db migration"}
	if len(h.reqs) != 1 || h.reqs[0] != want {
		t.Fatalf("requests %+v, want %+v", h.reqs, want)
	}

	// Bad arguments never reach the dispatcher: outside the enums (the
	// SDK's schema check), or words the parser would take for options.
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"deploy", map[string]any{"app": "nope", "env": "staging"}, "app"},
		{"deploy", map[string]any{"app": "demo", "env": "staging", "extra": 1}, "extra"},
		{"deploy", map[string]any{"app": "demo", "env": "staging", "ref": "--upload-pack=x"}, "not a safe git ref"},
		{"deploy", map[string]any{"app": "demo", "env": "staging", "ref": "main;rm"}, "not a safe git ref"},
		{"lock", map[string]any{"app": "demo", "env": "staging", "reason": "--for 9999d x"}, "must not start with"},
		{"lock", map[string]any{"app": "demo", "env": "staging", "reason": "x", "for": "2h x"}, "duration"},
		{"logs", map[string]any{"app": "demo", "env": "staging", "lines": 100000}, "lines"},
		{"job", map[string]any{"id": 0}, "id"},
		{"rollback", map[string]any{"app": "demo", "env": "staging", "release": "../x"}, "release"},
	} {
		res, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil {
			t.Fatalf("%s %v: %v", c.tool, c.args, err)
		}
		if text := textOf(res); !res.IsError || !strings.Contains(text, c.want) {
			t.Errorf("%s %v: error %v %q, want one naming %q", c.tool, c.args, res.IsError, text, c.want)
		}
	}
	if len(h.reqs) != 1 {
		t.Errorf("bad arguments reached the dispatcher: %+v", h.reqs[1:])
	}
}

func TestRefusalIsAToolError(t *testing.T) {
	h := &fakeHandler{reply: commands.Reply{Refused: true, Denial: "locked", Notice: "demo/staging is locked by alice: db"}}
	_, url := newTestServer(t, h, fakeStore{})
	res, err := connect(t, url).CallTool(context.Background(), &sdk.CallToolParams{Name: "deploy",
		Arguments: map[string]any{"app": "demo", "env": "staging"}})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := res.StructuredContent.(map[string]any)
	if !res.IsError || textOf(res) != "refused (locked): demo/staging is locked by alice: db" || sc["denial"] != "locked" {
		t.Fatalf("%v %q %v", res.IsError, textOf(res), sc)
	}
}

func TestJobStoreErrorIsAToolError(t *testing.T) {
	h := &fakeHandler{reply: commands.Reply{JobID: 7}}
	_, url := newTestServer(t, h, fakeStore{err: errors.New("disk I/O error")})
	res, err := connect(t, url).CallTool(context.Background(), &sdk.CallToolParams{Name: "deploy",
		Arguments: map[string]any{"app": "demo", "env": "production"}})
	if err != nil {
		t.Fatal(err)
	}
	if text := textOf(res); !res.IsError || !strings.Contains(text, "job #7") || strings.Contains(text, "disk") {
		t.Fatalf("%v %q", res.IsError, text)
	}
}

func textOf(r *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*sdk.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// The texts an assistant reads, as golden files.
func TestRenderGolden(t *testing.T) {
	long := make([]string, 3000)
	for i := range long {
		long[i] = strings.Repeat("x", 20)
	}
	cases := map[string]string{
		"status.txt": render(answer(commands.Reply{Message: &notify.Message{Title: "demo/staging", Text: "healthy",
			Fields: []notify.Field{{Name: "current", Value: "20260101-1"}}}})),
		"job_awaiting.txt": jobText(jobView(&deploy.Job{ID: 4, Action: deploy.ActionDeploy, App: "demo", Env: "production",
			State: deploy.AwaitingApproval, Release: "20260101-2"})),
		"job_done.txt": jobText(jobView(&deploy.Job{ID: 5, Action: deploy.ActionDeploy, App: "demo", Env: "staging",
			State: deploy.Succeeded, Reason: "20260101-3 is live", Steps: []deploy.Step{{Name: "build", State: deploy.StepDone}}})),
	}
	big := answer(commands.Reply{Message: &notify.Message{Title: "Logs", Code: long}})
	if !big.Truncated || len(render(big)) > maxText+8192 || big.Lines[len(big.Lines)-1] != long[len(long)-1] {
		t.Errorf("a long answer is not bounded to its newest lines: %d bytes, truncated %v", len(render(big)), big.Truncated)
	}
	for name, got := range cases {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

// runningStore has job 9 running for ever.
type runningStore struct{}

func (runningStore) Job(_ context.Context, id int64) (*deploy.Job, error) {
	return &deploy.Job{ID: id, Action: deploy.ActionDeploy, App: "demo", Env: "staging", State: deploy.Running,
		Steps: []deploy.Step{{Name: "build", State: deploy.StepRunning}}}, nil
}

func TestWaitIsBounded(t *testing.T) {
	h := &fakeHandler{reply: commands.Reply{JobID: 9}}
	s := New(Options{
		Tokens: func() *apitoken.Set {
			return apitoken.NewSet(map[string]audit.Secret{"assistant": audit.NewSecret(token)})
		},
		Handler: h, Store: runningStore{}, MaxWait: 300 * time.Millisecond,
		Catalog: func() commands.Catalog { return commands.Catalog{"demo": {"staging": {}}} },
	})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	start := time.Now()
	res, err := connect(t, srv.URL).CallTool(context.Background(), &sdk.CallToolParams{Name: "deploy",
		Arguments: map[string]any{"app": "demo", "env": "staging", "wait": true}})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := res.StructuredContent.(map[string]any)
	if res.IsError || sc["state"] != "running" || sc["waited"] != "time limit" || !strings.Contains(textOf(res), "the job goes on") {
		t.Fatalf("%v %v %q", res.IsError, sc, textOf(res))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the wait took %s", d)
	}
}

// sender records what the door forwards.
type sender struct {
	mu   sync.Mutex
	sent []notify.Channel
}

func (f *sender) Send(_ context.Context, ch notify.Channel, _ notify.Message) (notify.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, ch)
	return notify.Ref{Channel: ch, ID: "42"}, nil
}

func (f *sender) Edit(context.Context, notify.Ref, notify.Message) error { return nil }

func TestCardsGoToTheApprovalChat(t *testing.T) {
	fw := &sender{}
	chat := notify.Channel{Platform: "telegram", ID: "-100"}
	set := true
	s := New(Options{Forward: fw, ApprovalChat: func() (notify.Channel, bool) { return chat, set }})
	from := notify.Channel{Platform: Platform, ID: "assistant"}
	ref, err := s.Send(context.Background(), from, notify.Message{Title: "Deploy"})
	if err != nil || ref.Channel != chat || ref.ID != "42" || len(fw.sent) != 1 {
		t.Fatalf("ref %+v err %v sent %v", ref, err, fw.sent)
	}
	// Without an approval chat the card is dropped (the routes get it).
	set = false
	ref, err = s.Send(context.Background(), from, notify.Message{Title: "Deploy"})
	if err != nil || ref.Channel != from || len(fw.sent) != 1 {
		t.Fatalf("ref %+v err %v sent %v", ref, err, fw.sent)
	}
}
