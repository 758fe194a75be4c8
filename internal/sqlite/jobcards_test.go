package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/notify"
)

// callSender is a chat that logs every call in order, keeps each
// message's newest content, and can answer 429 or lose a message.
type callSender struct {
	mu      sync.Mutex
	seq     int
	calls   []string // "send 1", "edit 1"
	msgs    map[string]notify.Message
	slowFor int // answer the next slowFor calls with a 429
}

func newCallSender() *callSender { return &callSender{msgs: map[string]notify.Message{}} }

func (s *callSender) Send(_ context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slowFor > 0 {
		s.slowFor--
		s.calls = append(s.calls, "429")
		return notify.Ref{}, notify.SlowDown(errors.New("429 too many requests"), 20*time.Millisecond)
	}
	s.seq++
	id := fmt.Sprint(s.seq)
	s.msgs[id] = m
	s.calls = append(s.calls, "send "+id)
	return notify.Ref{Channel: ch, ID: id}, nil
}

func (s *callSender) Edit(_ context.Context, ref notify.Ref, m notify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slowFor > 0 {
		s.slowFor--
		s.calls = append(s.calls, "429")
		return notify.SlowDown(errors.New("429 too many requests"), 20*time.Millisecond)
	}
	if _, ok := s.msgs[ref.ID]; !ok {
		s.calls = append(s.calls, "gone "+ref.ID)
		return fmt.Errorf("%w: message to edit not found", notify.ErrMessageGone)
	}
	s.msgs[ref.ID] = m
	s.calls = append(s.calls, "edit "+ref.ID)
	return nil
}

func (s *callSender) message(id string) (notify.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[id]
	return m, ok
}

func (s *callSender) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *callSender) count(prefix string) int {
	n := 0
	for _, c := range s.log() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (s *callSender) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.msgs, id)
}

func field(m notify.Message, name string) string {
	for _, f := range m.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func labels(m notify.Message) []string {
	var out []string
	for _, b := range m.Buttons {
		out = append(out, b.Label)
	}
	return out
}

// cardRig is cmd/bot's wiring of the job card path on a real database:
// engine -> store -> JobPosts -> outbox -> relay -> chat.
type cardRig struct {
	db     *DB
	chat   *callSender
	driver *deploytest.Driver
	engine *deploy.Engine
	relay  *notify.Relay
	start  func() // starts the relay (a test may hold it back)
}

var (
	group = notify.Channel{Platform: "telegram", ID: "-100"}
	asker = deploy.Who{User: "alice", Identity: "telegram:1", Chat: group.String()}
)

func newCardRig(t *testing.T, db *DB, minEdit time.Duration) *cardRig {
	t.Helper()
	r := &cardRig{db: db, chat: newCallSender(), driver: deploytest.NewDriver()}
	r.relay = notify.NewRelay(notify.RelayOptions{Outbox: db, Sender: r.chat, MinEdit: minEdit, Poll: 5 * time.Millisecond,
		Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	posts := notify.NewJobPosts(notify.JobPostsOptions{Doors: []string{"api"}})
	if err := db.ReportJobs(context.Background(), posts.Posts, r.relay.Wake); err != nil {
		t.Fatal(err)
	}
	r.engine = deploy.NewEngine(deploy.Options{Store: db, OutputEvery: 20 * time.Millisecond,
		Drivers: func(string, string) (deploy.Driver, bool) { return r.driver, true }})
	var once sync.Once
	r.start = func() {
		once.Do(func() {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { r.relay.Run(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done })
		})
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.engine.Drain(ctx)
	})
	return r
}

func (r *cardRig) submit(t *testing.T, who deploy.Who) *deploy.Job {
	t.Helper()
	j, err := r.engine.Submit(context.Background(), deploy.JobRequest{Who: who, App: "demo", Env: "staging",
		Action: deploy.ActionDeploy, Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// The job card is an outbox topic: posted once, edited as the job goes
// (steps and output too, paced), ending on the final state; the output of
// a chatty build reaches the card while the job still runs, in a handful
// of writes instead of one per line.
func TestJobCardGoesThroughTheOutbox(t *testing.T) {
	db, _ := openDB(t)
	r := newCardRig(t, db, 30*time.Millisecond)
	r.start()
	r.driver.Block, r.driver.ExtraOutput = true, 500
	j := r.submit(t, asker)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.relay.WaitPosted(ctx, notify.CardTopic(j.ID), group); err != nil {
		t.Fatalf("card not posted: %v", err)
	}
	eventually(t, "the build's last output line on the card while the job runs", func() bool {
		m, _ := r.chat.message("1")
		return slices.Contains(m.Code, "compiling unit 500 of 500") && slices.Contains(labels(m), "Cancel")
	})
	var version int64
	if err := db.r.QueryRow(`SELECT version FROM outbox WHERE topic = ?`, notify.CardTopic(j.ID)).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version > 15 {
		t.Fatalf("card written %d times for 501 output lines: output must be stored paced, not per line", version)
	}
	close(r.driver.Unblock)
	eventually(t, "the final state on the card", func() bool {
		m, _ := r.chat.message("1")
		return field(m, "state") == "succeeded"
	})
	m, _ := r.chat.message("1")
	if len(m.Buttons) != 0 || m.Attachment == nil || !strings.Contains(string(m.Attachment.Content), "compiling unit 301 of 500\n") {
		t.Fatalf("final card %+v: want no buttons and the kept log attached", m)
	}
	if r.chat.count("send") != 1 {
		t.Fatalf("calls %v: one job, one message", r.chat.log())
	}
	// A scheduled job (no chat) gets no card.
	before := len(r.chat.log())
	r.driver.Block, r.driver.ExtraOutput = false, 0
	r.submit(t, deploy.Who{User: "cron"})
	if err := r.engine.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "nothing pending", func() bool { pending, _, _ := db.OutboxDepth(ctx); return pending == 0 })
	if len(r.chat.log()) != before {
		t.Fatalf("calls %v: a scheduled job posts nothing", r.chat.log()[before:])
	}
}

// Nothing is lost while the chat is away: the card of a job that ran and
// ended while the relay was down (a crash, an outage) goes out once, in
// its final state, through 429s that ask for a wait.
func TestJobCardWaitsOutAnOutageAnd429s(t *testing.T) {
	db, _ := openDB(t)
	r := newCardRig(t, db, 0)
	j := r.submit(t, asker)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.engine.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, _, _ := db.OutboxDepth(ctx); pending != 1 {
		t.Fatalf("pending rows = %d, want the job's card waiting", pending)
	}
	r.chat.slowFor = 3
	r.start()
	eventually(t, "the card", func() bool { return r.chat.count("send") == 1 })
	m, _ := r.chat.message("1")
	if field(m, "state") != "succeeded" || !strings.Contains(m.Title, fmt.Sprintf("job #%d", j.ID)) {
		t.Fatalf("card %+v: want the final state, once", m)
	}
	if got := r.chat.log(); !slices.Equal(got, []string{"429", "429", "429", "send 1"}) {
		t.Fatalf("calls %v", got)
	}
}

// A job a stop interrupted: its old card is closed by an edit and the state
// goes out as a new message (an edit notifies nobody), which becomes the
// job's card; releasing the lock edits that one. If someone deleted the old
// card, there is nothing to close and only the new one is posted.
func TestInterruptedJobClosesItsCardAndPostsANewOne(t *testing.T) {
	for _, deleted := range []bool{false, true} {
		t.Run(fmt.Sprint("old card deleted=", deleted), func(t *testing.T) {
			db, _ := openDB(t)
			r := newCardRig(t, db, 0)
			r.start()
			r.driver.Block = true
			t.Cleanup(func() { close(r.driver.Unblock) }) // the first process's job goroutine ends (its writes now conflict)
			r.submit(t, asker)
			eventually(t, "the running card, every change delivered", func() bool {
				m, _ := r.chat.message("1")
				pending, _, _ := db.OutboxDepth(context.Background())
				return field(m, "state") == "running" && slices.Contains(m.Code, "building "+field(m, "release")+" from main") && pending == 0
			})
			if deleted {
				r.chat.forget("1")
			}
			// The next process: the job is still running in the database.
			next := deploy.NewEngine(deploy.Options{Store: db,
				Drivers: func(string, string) (deploy.Driver, bool) { return r.driver, true }})
			if _, err := next.Recover(context.Background()); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the new card", func() bool {
				m, _ := r.chat.message("2")
				return field(m, "state") == "interrupted — lock still held"
			})
			m, _ := r.chat.message("2")
			if !slices.Contains(labels(m), "Release lock") {
				t.Fatalf("new card %+v: want Release lock", m)
			}
			old, ok := r.chat.message("1")
			switch {
			case deleted && ok:
				t.Fatalf("a deleted card came back: %+v", old)
			case !deleted && (len(old.Buttons) != 0 || !strings.Contains(old.Text, "continued in a new message below")):
				t.Fatalf("old card %+v: want it closed, without buttons", old)
			}
			if _, err := next.Unlock(context.Background(), "demo", "staging", deploy.Who{User: "bob"}, true); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the lock release on the new card", func() bool {
				m, _ := r.chat.message("2")
				return field(m, "state") == "interrupted — lock released by bob" && len(m.Buttons) == 0
			})
			if n := r.chat.count("send"); n != 2 {
				t.Fatalf("calls %v: want the first card and one new one", r.chat.log())
			}
			// The relay marks a row delivered just after the chat took it.
			eventually(t, "every row delivered, none dead", func() bool {
				pending, dead, _ := db.OutboxDepth(context.Background())
				return pending == 0 && dead == 0
			})
		})
	}
}

// A card posted before job cards went through the outbox (schema 11 kept
// it in jobs.card_ref) is edited after the upgrade, not posted again; the
// routed notices that used topic job:<id> move to notice:job:<id>.
func TestMigrationMovesCardRefsIntoTheOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "shipbot.db")
	raw := openAtVersion(t, path, 11)
	if _, err := raw.Exec(`INSERT INTO jobs (id, app, env, action, ref, release, from_release, state, reason, req_user,
		req_identity, req_chat, approval_id, approved_by, card_ref, intent_seq, steps, output, created, started, ended)
		VALUES (7, 'demo', 'staging', 'deploy', 'main', '20261201-090000-7', '', 'running', '', 'alice', 'telegram:1',
		'telegram:-100', '', '', 'telegram:-100 42', 0, '[]', '[]', '2026-12-01T09:00:00Z', '2026-12-01T09:00:01Z', '')`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO outbox (topic, channel, message, version, delivered, ref, next_attempt, queued)
		VALUES ('job:7', 'slack:C1', '{"Title":"Deploy demo → staging started (job #7)"}', 1, 1, '{"chat":"slack:C1","id":"1.5"}', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if ref, err := db.SentRef(ctx, "notice:job:7", notify.Channel{Platform: "slack", ID: "C1"}); err != nil || ref == nil || ref.ID != "1.5" {
		t.Fatalf("notice row: %+v %v", ref, err)
	}
	if ref, err := db.SentRef(ctx, notify.CardTopic(7), group); err != nil || ref == nil || ref.ID != "42" || ref.Channel != group {
		t.Fatalf("card row: %+v %v", ref, err)
	}
	if pending, _, _ := db.OutboxDepth(ctx); pending != 0 {
		t.Fatalf("%d rows due right after the upgrade; nothing changed yet", pending)
	}
	// The shipbot that starts on it finds the job running: the card it
	// posted before the upgrade is closed and the new one posted.
	r := newCardRig(t, db, 0)
	r.chat.msgs["42"] = notify.Message{Title: "Deploy demo → staging (job #7)"}
	r.chat.seq = 42
	r.start()
	if _, err := r.engine.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old card closed and a new one posted", func() bool {
		old, _ := r.chat.message("42")
		return strings.Contains(old.Text, "continued in a new message below") && r.chat.count("send") == 1
	})
	var raw42 string
	if err := db.r.QueryRow(`SELECT ref FROM outbox WHERE topic = 'job:7:closed'`).Scan(&raw42); err != nil {
		t.Fatal(err)
	}
	var s storedRef
	if err := json.Unmarshal([]byte(raw42), &s); err != nil || s.ID != "42" || s.Channel != group.String() {
		t.Fatalf("closed row ref %s", raw42)
	}
}

// BenchmarkJobCardFirstPost measures how long a new job's card takes to
// reach the chat through the outbox (engine.Submit: the job and its card
// row commit, the relay wakes, sends, saves the ref) beside the floor of
// the path it replaced: the same Submit plus one direct Send.
//
//	go test ./internal/sqlite -run '^$' -bench JobCardFirstPost -benchtime 200x
func BenchmarkJobCardFirstPost(b *testing.B) {
	for _, path := range []string{"outbox", "direct"} {
		b.Run(path, func(b *testing.B) {
			db, _ := openDB(b)
			chat := newCallSender()
			relay := notify.NewRelay(notify.RelayOptions{Outbox: db, Sender: chat, Poll: time.Second})
			if path == "outbox" {
				posts := notify.NewJobPosts(notify.JobPostsOptions{})
				if err := db.ReportJobs(context.Background(), posts.Posts, relay.Wake); err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { relay.Run(ctx); close(done) }()
			b.Cleanup(func() { cancel(); <-done })
			driver := deploytest.NewDriver()
			driver.Block = true // jobs stay queued/running: only the card is measured
			engine := deploy.NewEngine(deploy.Options{Store: db,
				Drivers: func(string, string) (deploy.Driver, bool) { return driver, true }})
			b.Cleanup(func() { close(driver.Unblock); engine.Drain(context.Background()) })
			b.ResetTimer()
			for i := range b.N {
				j, err := engine.Submit(ctx, deploy.JobRequest{Who: asker, App: "demo", Env: fmt.Sprint("e", i),
					Action: deploy.ActionDeploy, Ref: "main"})
				if err != nil {
					b.Fatal(err)
				}
				if path == "direct" {
					if _, err := chat.Send(ctx, group, notify.JobCard(*j)); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if err := relay.WaitPosted(ctx, notify.CardTopic(j.ID), group); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A requester chat that refuses every message (the bot was removed from
// the group): the card is dead-lettered after MaxAttempts and the admin
// chat hears which job's card was lost, like any other message; the job
// itself is not held up.
func TestJobCardDeadLettersToTheAdminChat(t *testing.T) {
	db, _ := openDB(t)
	admin := notify.Channel{Platform: "telegram", ID: "-999"}
	chat := &routeSender{fail: map[string]bool{group.String(): true}, got: map[string][]notify.Message{}}
	relay := runRelay(t, notify.RelayOptions{Outbox: db, Sender: chat, Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
		MaxAttempts: 3, Poll: time.Millisecond, Alert: admin})
	posts := notify.NewJobPosts(notify.JobPostsOptions{})
	if err := db.ReportJobs(context.Background(), posts.Posts, relay.Wake); err != nil {
		t.Fatal(err)
	}
	driver := deploytest.NewDriver()
	engine := deploy.NewEngine(deploy.Options{Store: db, Drivers: func(string, string) (deploy.Driver, bool) { return driver, true }})
	j, err := engine.Submit(context.Background(), deploy.JobRequest{Who: asker, App: "demo", Env: "staging", Action: deploy.ActionDeploy, Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the alert", func() bool { return len(chat.messages(admin.String())) == 1 })
	a := chat.messages(admin.String())[0]
	if !strings.Contains(a.Text, fmt.Sprintf("(job #%d)", j.ID)) || !strings.Contains(a.Text, group.String()) {
		t.Fatalf("alert %+v: want the job's card and the chat named", a)
	}
	if got, _ := db.Job(context.Background(), j.ID); got.State != deploy.Succeeded {
		t.Fatalf("job %s", got.State)
	}
}
