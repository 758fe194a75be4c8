package commands_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify"
	"github.com/shipbot/shipbot/internal/notify/notifytest"
)

// sender records what the dispatcher and the cards post.
type sender struct {
	mu    sync.Mutex
	sent  []notify.Message
	edits map[string]notify.Message
	n     int
}

func (s *sender) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.sent = append(s.sent, m)
	return notify.Ref{Channel: ch, ID: fmt.Sprint(s.n)}, nil
}

func (s *sender) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.edits == nil {
		s.edits = map[string]notify.Message{}
	}
	s.edits[ref.ID] = m
	return nil
}

func (s *sender) last() notify.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) == 0 {
		return notify.Message{}
	}
	return s.sent[len(s.sent)-1]
}

// buttons finds a button by label on any sent message.
func (s *sender) button(label string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.sent) - 1; i >= 0; i-- {
		for _, b := range s.sent[i].Buttons {
			if b.Label == label {
				return b.Data
			}
		}
	}
	return ""
}

type env struct {
	store  *deploytest.Store
	driver *deploytest.Driver
	engine *deploy.Engine
	sender *sender
	cards  *notifytest.JobCards
	d      *commands.Dispatcher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{store: deploytest.NewStore(), driver: deploytest.NewDriver(), sender: &sender{}}
	e.cards = notifytest.NewJobCards(t, e.sender, 0)
	e.store.OnChange = e.cards.Report
	e.engine = deploy.NewEngine(deploy.Options{Store: e.store,
		Drivers: func(app, env string) (deploy.Driver, bool) { return e.driver, true }})
	policy := commands.NewPolicy(map[string]commands.UserSpec{
		"alice": {Identities: []string{"shell:alice", "telegram:100"}, Roles: []string{"developer"}},
		"bob":   {Identities: []string{"shell:bob", "slack:U2"}, Roles: []string{"lead"}},
		"carol": {Identities: []string{"shell:carol"}, Roles: []string{"viewer"}},
	}, map[string][]string{
		"developer": {"deploy:staging", "deploy:production", "rollback:staging", "status:*", "lock:staging"},
		"lead":      {"deploy:*", "approve:production", "lock:*", "lock:force", "audit:read", "status:*", "logs:*"},
		"viewer":    {"status:*"},
	})
	cat := commands.Catalog{"demo": {
		"staging":    {Driver: "fake", DefaultRef: "main"},
		"production": {Driver: "fake", Approval: deploy.ApprovalPolicy{Required: true, Roles: []string{"lead"}, TTL: time.Hour}},
	}}
	e.d = commands.New(commands.Options{Engine: e.engine, Policy: policy, Catalog: cat, Sender: e.sender, Audit: e.store, AwaitCard: e.cards.Await,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.engine.Drain(ctx)
		_ = e.cards.Flush(ctx)
	})
	return e
}

func (e *env) say(user, text string) commands.Reply {
	return e.d.Handle(context.Background(), commands.Request{Platform: "shell", UserID: user, Text: text,
		Chat: notify.Channel{Platform: "shell", ID: "terminal"}})
}

func (e *env) press(platform, user, data string) commands.Reply {
	return e.d.Handle(context.Background(), commands.Request{Platform: platform, UserID: user, Action: data,
		Chat: notify.Channel{Platform: "shell", ID: "terminal"}})
}

func (e *env) lastDenial(t *testing.T) audit.Event {
	t.Helper()
	evs := e.store.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == audit.KindDenial {
			return evs[i]
		}
	}
	t.Fatal("no denial recorded")
	return audit.Event{}
}

func waitJob(t *testing.T, s deploy.Store, id int64, want deploy.State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		j, err := s.Job(context.Background(), id)
		if err == nil && j.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job #%d never reached %s", id, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestUnknownIdentityRefusedAndAudited(t *testing.T) {
	e := newEnv(t)
	r := e.say("mallory", "/deploy demo staging")
	if !r.Refused || !strings.Contains(e.sender.last().Text, "shell:mallory") {
		t.Fatalf("reply %+v / %q", r, e.sender.last().Text)
	}
	if d := e.lastDenial(t); d.Identity != "shell:mallory" || d.Actor != "" {
		t.Fatalf("denial %+v", d)
	}
	if e.driver.Calls() != 0 {
		t.Fatal("driver ran")
	}
}

func TestBadInputRefusedWithReason(t *testing.T) {
	e := newEnv(t)
	cases := map[string]string{
		"/frobnicate":                       "unknown command",
		"/deploy demo":                      "usage: /deploy",
		"/deploy demo staging v1 extra":     "usage: /deploy",
		"/deploy Demo staging":              "not a valid name",
		"/deploy demo staging ;rm":          "not allowed",
		"/deploy demo staging --force":      "unknown option",
		"/deploy nosuch staging":            "unknown app",
		"/deploy demo qa":                   "unknown env",
		"/deploy demo staging ../../etc":    "not allowed",
		"/deploy demo staging -x":           "unknown option",
		"/approve abc":                      "not an approval id",
		"/approve aaaaaaaaaaaaaaaaaaaaaaaa": "no approval",
		"/logs demo staging 99999":          "LINES must be",
	}
	for in, want := range cases {
		before := len(e.store.Events())
		r := e.say("alice", in)
		if !r.Refused || !strings.Contains(e.sender.last().Text, want) {
			t.Errorf("%q: refused=%v text %q, want %q", in, r.Refused, e.sender.last().Text, want)
		}
		if len(e.store.Events()) != before+1 || e.lastDenial(t).Decision != "denied" {
			t.Errorf("%q: no denial row", in)
		}
	}
	if e.driver.Calls() != 0 {
		t.Fatal("driver ran on bad input")
	}
	if js, _ := e.store.Jobs(context.Background(), deploy.JobFilter{}); len(js) != 0 {
		t.Fatal("bad input created a job")
	}
}

func TestPermissionRefusalNamesPermission(t *testing.T) {
	e := newEnv(t)
	r := e.say("carol", "/deploy demo staging")
	if !r.Refused || !strings.Contains(e.sender.last().Text, "deploy:staging") {
		t.Fatalf("%+v %q", r, e.sender.last().Text)
	}
	e.say("carol", "/audit")
	if !strings.Contains(e.sender.last().Text, "audit:read") {
		t.Fatalf("audit refusal: %q", e.sender.last().Text)
	}
}

func TestFourEyesAcrossPlatforms(t *testing.T) {
	e := newEnv(t)
	e.say("alice", "/deploy demo production v1.2")
	approve := e.sender.button("Approve")
	if !strings.HasPrefix(approve, "approve:") {
		t.Fatalf("no approve button on the card: %+v", e.sender.last())
	}
	// alice, from Telegram this time, is still alice: refused.
	if r := e.press("telegram", "100", approve); !r.Refused || !strings.Contains(r.Notice, "someone else") {
		t.Fatalf("self-approval: %+v", r)
	}
	if d := e.lastDenial(t); d.Actor != "alice" {
		t.Fatalf("denial actor %q", d.Actor)
	}
	// carol may not approve.
	if r := e.press("shell", "carol", approve); !r.Refused || !strings.Contains(r.Notice, "approve:production") {
		t.Fatalf("carol: %+v", r)
	}
	// bob, from Slack, approves.
	if r := e.press("slack", "U2", approve); r.Refused {
		t.Fatalf("bob: %+v", r)
	}
	waitJob(t, e.store, 1, deploy.Succeeded)
	// A second press changes nothing.
	if r := e.press("slack", "U2", approve); !r.Refused || !strings.Contains(r.Notice, "already approved") {
		t.Fatalf("second press: %+v", r)
	}
	if n := e.driver.Deploys.Load(); n != 1 {
		t.Fatalf("%d deploys", n)
	}
}

func TestForgedButtonsRefusedAndAudited(t *testing.T) {
	e := newEnv(t)
	for _, data := range []string{"approve:zzzzzzzzzzzzzzzzzzzzzzzz", "rm -rf /", "unlock:999", "cancel:abc", strings.Repeat("x", 100)} {
		r := e.press("shell", "bob", data)
		if !r.Refused {
			t.Errorf("%q accepted", data)
		}
		if d := e.lastDenial(t); d.Actor != "bob" {
			t.Errorf("%q: denial %+v", data, d)
		}
	}
}

func TestAuditFailureRefusesEverything(t *testing.T) {
	e := newEnv(t)
	e.store.SetFailAppend(true)
	e.say("alice", "/deploy demo staging")
	if e.driver.Calls() != 0 {
		t.Fatal("driver called although the intent could not be written")
	}
	if txt := e.sender.last().Text; !strings.Contains(txt, "internal error (ref ") || strings.Contains(txt, "injected") {
		t.Fatalf("reply %q should be an internal error with a ref and no details", txt)
	}
	e.say("alice", "/whoami")
	if !strings.Contains(e.sender.last().Text, "internal error") {
		t.Fatalf("read command answered without its audit row: %q", e.sender.last().Text)
	}
}

func TestLockBlocksDeployAndUnlock(t *testing.T) {
	e := newEnv(t)
	e.say("alice", "/lock demo staging migrating the database")
	e.say("bob", "/deploy demo staging")
	txt := e.sender.last().Text
	if !strings.Contains(txt, "locked by alice") || !strings.Contains(txt, "migrating the database") {
		t.Fatalf("locked reply %q", txt)
	}
	e.say("carol", "/unlock demo staging")
	if !strings.Contains(e.sender.last().Text, "lock:staging") {
		t.Fatalf("carol unlock: %q", e.sender.last().Text)
	}
	e.say("bob", "/unlock demo staging") // lock:force
	if !strings.HasPrefix(e.sender.last().Title, "Unlocked") {
		t.Fatalf("bob unlock: %+v", e.sender.last())
	}
}

func TestPlanRunsNothing(t *testing.T) {
	e := newEnv(t)
	e.say("alice", "/deploy demo production --plan")
	m := e.sender.last()
	if !strings.HasPrefix(m.Title, "Plan:") || len(m.Steps) == 0 || e.driver.Calls() != 0 {
		t.Fatalf("plan %+v, calls %d", m, e.driver.Calls())
	}
	if js, _ := e.store.Jobs(context.Background(), deploy.JobFilter{}); len(js) != 0 {
		t.Fatal("plan created a job")
	}
}

func TestAuditListing(t *testing.T) {
	e := newEnv(t)
	e.say("alice", "/whoami")
	e.say("bob", "/audit 5 user=alice")
	m := e.sender.last()
	if len(m.Code) == 0 || !strings.Contains(strings.Join(m.Code, "\n"), "whoami") {
		t.Fatalf("audit listing %+v", m)
	}
	if err := e.store.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultRefIsRecorded(t *testing.T) {
	e := newEnv(t)
	e.say("alice", "/deploy demo staging")
	waitJob(t, e.store, 1, deploy.Succeeded)
	j, _ := e.store.Job(context.Background(), 1)
	rs, _ := e.store.Releases(context.Background(), "demo", "staging")
	if j.Ref != "main" || len(rs) != 1 || rs[0].Ref != "main" {
		t.Fatalf("job ref %q, releases %+v: the default ref must be recorded", j.Ref, rs)
	}
}

// A pipeline's "Deploy to ENV" button is /deploy: the same policy and the
// same approval; a malformed one is forged.
func TestDeployButtonGoesThroughPolicyAndApproval(t *testing.T) {
	e := newEnv(t)
	sha := "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
	if r := e.press("shell", "alice", "deploy:demo:production:"+sha); r.Refused {
		t.Fatalf("refused: %+v", r)
	}
	jobs, err := e.store.Jobs(context.Background(), deploy.JobFilter{})
	if err != nil || len(jobs) != 1 || jobs[0].State != deploy.AwaitingApproval || jobs[0].Ref != sha || jobs[0].RequestedBy.User != "alice" {
		t.Fatalf("jobs %+v %v", jobs, err)
	}
	for _, data := range []string{"deploy:demo:production", "deploy:demo:production:-rf", "deploy:Demo:staging:main", "deploy:demo:staging:a;b"} {
		if r := e.press("shell", "alice", data); !r.Refused {
			t.Errorf("%q accepted", data)
		}
		if d := e.lastDenial(t); !strings.Contains(d.Outcome, "forged") {
			t.Errorf("%q: denial %+v", data, d)
		}
	}
	if e.driver.Calls() != 0 {
		t.Fatal("a deploy ran without approval")
	}
}

// A condition a person can act on is answered with what and where, never
// "internal error"; nothing runs.
func TestConditionsAreNamed(t *testing.T) {
	e := newEnv(t)
	e.driver.ReadErr = deploy.Errorf(deploy.CodeUnreachable, errors.New("dial tcp: connection refused"),
		"cannot reach web1:22: connection refused")
	for _, cmd := range []string{"/deploy demo staging", "/logs demo staging", "/status demo staging", "/releases demo staging"} {
		e.say("bob", cmd)
		txt := e.sender.last().Text
		if txt != "cannot reach web1:22: connection refused; nothing was done" {
			t.Errorf("%s answered %q", cmd, txt)
		}
	}
	if e.driver.Calls() != 0 {
		t.Fatal("a deploy ran against an unreachable host")
	}
}

func TestLogsTitleCountsLines(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		lines []string
		title string
	}{{[]string{"one"}, "Logs of demo/staging (last line)"}, {[]string{"a", "b"}, "Logs of demo/staging (last 2 lines)"},
		{[]string{}, "Logs of demo/staging (empty)"}} {
		e.driver.LogLines = c.lines
		e.say("bob", "/logs demo staging 5")
		if got := e.sender.last().Title; got != c.title {
			t.Errorf("%d lines: title %q, want %q", len(c.lines), got, c.title)
		}
	}
}

// A lock reminder's buttons act on the lock they were sent for; once that
// lock is gone they press nothing, and say so.
func TestLockReminderButtons(t *testing.T) {
	e := newEnv(t)
	e.say("alice", "/lock demo staging --for 2h db work")
	l, err := e.store.Lock(context.Background(), "demo", "staging")
	if err != nil || l.Expires.Sub(l.Since) != 2*time.Hour || l.Chat == "" {
		t.Fatalf("lock = %+v, %v", l, err)
	}
	token := fmt.Sprint(l.Since.UnixNano())
	if r := e.press("shell", "carol", commands.ButtonExtendLock+":"+token); !r.Refused {
		t.Fatalf("carol (no lock permission) extended: %+v", r)
	}
	if r := e.press("shell", "alice", commands.ButtonExtendLock+":"+token); r.Refused || !strings.HasPrefix(r.Notice, "expires in 3h") {
		t.Fatalf("extend: %+v", r)
	}
	if r := e.press("shell", "alice", commands.ButtonUnlockLock+":"+token); r.Refused {
		t.Fatalf("unlock: %+v", r)
	}
	e.say("alice", "/lock demo staging again")
	r := e.press("shell", "alice", commands.ButtonUnlockLock+":"+token)
	if !r.Refused || !strings.Contains(r.Notice, "gone") {
		t.Fatalf("a stale reminder unlocked the new lock: %+v", r)
	}
	if _, err := e.store.Lock(context.Background(), "demo", "staging"); err != nil {
		t.Fatalf("the new lock is gone: %v", err)
	}
}
