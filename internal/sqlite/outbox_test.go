package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

// flakySender is a chat platform that refuses a share of calls (before
// doing anything, as a 5xx or a 429 does) and otherwise keeps messages.
type flakySender struct {
	mu       sync.Mutex
	rnd      *rand.Rand
	failRate float64
	seq      int
	msgs     map[string]notify.Message // ref id -> current content
	chans    map[string]notify.Channel
	sends    int
	failures int
}

func newFlaky(rate float64) *flakySender {
	return &flakySender{rnd: rand.New(rand.NewPCG(1, 2)), failRate: rate, msgs: map[string]notify.Message{},
		chans: map[string]notify.Channel{}}
}

func (f *flakySender) fail() error {
	if f.rnd.Float64() >= f.failRate {
		return nil
	}
	f.failures++
	if f.failures%3 == 0 {
		return notify.SlowDown(errors.New("429 too many requests"), time.Millisecond)
	}
	return errors.New("502 bad gateway")
}

func (f *flakySender) Send(_ context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return notify.Ref{}, err
	}
	f.seq++
	f.sends++
	id := fmt.Sprint(f.seq)
	f.msgs[id], f.chans[id] = m, ch
	return notify.Ref{Channel: ch, ID: id}, nil
}

func (f *flakySender) Edit(_ context.Context, ref notify.Ref, m notify.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return err
	}
	if _, ok := f.msgs[ref.ID]; !ok {
		// Telegram "message to edit not found", Slack "message_not_found":
		// the adapters wrap both as ErrMessageGone.
		return fmt.Errorf("%w: message not found", notify.ErrMessageGone)
	}
	f.msgs[ref.ID] = m
	return nil
}

// delete is a person removing message id from the chat.
func (f *flakySender) delete(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.msgs, id)
	delete(f.chans, id)
}

func (f *flakySender) snapshot() (map[string]notify.Message, map[string]notify.Channel) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, c := map[string]notify.Message{}, map[string]notify.Channel{}
	for k, v := range f.msgs {
		m[k], c[k] = v, f.chans[k]
	}
	return m, c
}

func runRelay(t *testing.T, o notify.RelayOptions) *notify.Relay {
	t.Helper()
	r := notify.NewRelay(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Half the calls fail; every topic still ends as exactly one message per
// chat, showing its last version.
func TestOutboxDeliversEveryMessageOnceInItsFinalState(t *testing.T) {
	db, _ := openDB(t)
	sender := newFlaky(0.5)
	r := runRelay(t, notify.RelayOptions{Outbox: db, Sender: sender, Backoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond, MaxAttempts: 1000, Poll: 2 * time.Millisecond})
	chats := []notify.Channel{{Platform: "telegram", ID: "-100"}, {Platform: "slack", ID: "C1", Thread: "1.2"}}
	const topics, versions = 40, 5
	for v := 1; v <= versions; v++ {
		for i := range topics {
			var posts []notify.Post
			for _, ch := range chats {
				posts = append(posts, notify.Post{Topic: fmt.Sprintf("pipeline:%d", i), Channel: ch,
					Message: notify.Message{Title: fmt.Sprintf("pipeline %d", i), Text: fmt.Sprintf("version %d", v)}})
			}
			if err := db.Enqueue(context.Background(), posts...); err != nil {
				t.Fatal(err)
			}
			r.Wake()
		}
	}
	eventually(t, "an empty outbox", func() bool {
		pending, _, err := db.OutboxDepth(context.Background())
		return err == nil && pending == 0
	})
	msgs, chans := sender.snapshot()
	if len(msgs) != topics*len(chats) {
		t.Fatalf("%d messages for %d topics in %d chats: something was posted twice or lost", len(msgs), topics, len(chats))
	}
	seen := map[string]bool{}
	for id, m := range msgs {
		if m.Text != fmt.Sprintf("version %d", versions) {
			t.Errorf("message %s ended at %q", id, m.Text)
		}
		k := m.Title + "@" + chans[id].String()
		if seen[k] {
			t.Errorf("%s posted twice", k)
		}
		seen[k] = true
	}
	if sender.failures < 50 {
		t.Fatalf("only %d failures injected", sender.failures)
	}
}

func TestOutboxDeadLettersAndAlerts(t *testing.T) {
	db, _ := openDB(t)
	sender := &routeSender{fail: map[string]bool{"telegram:-1": true}, got: map[string][]notify.Message{}}
	runRelay(t, notify.RelayOptions{Outbox: db, Sender: sender, Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
		MaxAttempts: 3, Poll: time.Millisecond, Alert: notify.Channel{Platform: "telegram", ID: "-999"}})
	if err := db.Enqueue(context.Background(), notify.Post{Topic: "t", Channel: notify.Channel{Platform: "telegram", ID: "-1"},
		Message: notify.Message{Title: "pipeline failed"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a dead letter", func() bool {
		_, dead, _ := db.OutboxDepth(context.Background())
		return dead == 1
	})
	eventually(t, "the alert", func() bool { return len(sender.messages("telegram:-999")) == 1 })
	if a := sender.messages("telegram:-999")[0]; a.Style != notify.StyleDanger || a.Text == "" {
		t.Fatalf("alert %+v", a)
	}
	if n := sender.calls("telegram:-1"); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	// News for the same topic brings the row back.
	sender.heal("telegram:-1")
	if err := db.Enqueue(context.Background(), notify.Post{Topic: "t", Channel: notify.Channel{Platform: "telegram", ID: "-1"},
		Message: notify.Message{Title: "pipeline fixed"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revived row", func() bool { return len(sender.messages("telegram:-1")) == 1 })
}

// routeSender fails every call to the chats in fail.
type routeSender struct {
	mu    sync.Mutex
	fail  map[string]bool
	got   map[string][]notify.Message
	tries map[string]int
}

func (s *routeSender) Send(_ context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tries == nil {
		s.tries = map[string]int{}
	}
	s.tries[ch.String()]++
	if s.fail[ch.String()] {
		return notify.Ref{}, errors.New("chat not found")
	}
	s.got[ch.String()] = append(s.got[ch.String()], m)
	return notify.Ref{Channel: ch, ID: fmt.Sprint(len(s.got[ch.String()]))}, nil
}

func (s *routeSender) Edit(context.Context, notify.Ref, notify.Message) error { return nil }

func (s *routeSender) messages(ch string) []notify.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notify.Message(nil), s.got[ch]...)
}

func (s *routeSender) calls(ch string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[ch]
}

func (s *routeSender) heal(ch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.fail, ch)
}

func TestIngestPipelineDedupesAndKeepsTheNewestState(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	ch := notify.Channel{Platform: "slack", ID: "C1"}
	ingest := func(key, status string) (bool, bool) {
		planned := false
		dup, err := db.Ingest(ctx, key, "p1",
			func(prev *notify.Tracked) (*notify.Tracked, []notify.Post, error) {
				// A final state is never replaced by a running one.
				if prev != nil && prev.Status == "success" && status == "running" {
					return nil, nil, nil
				}
				planned = true
				return &notify.Tracked{Topic: "p1", Project: "acme/web", SHA: "abc", Status: status, Event: []byte(`{}`)},
					[]notify.Post{{Topic: "p1", Channel: ch, Message: notify.Message{Title: status}}}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return dup, planned
	}
	if dup, planned := ingest("d1", "running"); dup || !planned {
		t.Fatal("first delivery")
	}
	if dup, _ := ingest("d1", "running"); !dup {
		t.Fatal("a redelivery was not recognised")
	}
	ingest("d2", "success")
	if _, planned := ingest("d3", "running"); planned {
		t.Fatal("a late running event replaced success")
	}
	due, err := db.Due(ctx, time.Now().Add(time.Second), 10, nil)
	if err != nil || len(due) != 1 || due[0].Message.Title != "success" || due[0].Version != 2 {
		t.Fatalf("due %+v %v", due, err)
	}
	if topics, _ := db.PipelineTopics(ctx, "acme/web", "abc"); len(topics) != 1 || topics[0] != "p1" {
		t.Fatalf("topics %v", topics)
	}
	if err := db.SaveRef(ctx, due[0].ID, notify.Ref{Channel: ch, ID: "17.5"}); err != nil {
		t.Fatal(err)
	}
	if ref, err := db.SentRef(ctx, "p1", ch); err != nil || ref == nil || ref.ID != "17.5" || ref.Channel != ch {
		t.Fatalf("ref %+v %v", ref, err)
	}
}

// A deleted message cannot be edited: the relay posts the topic anew, and
// later versions edit the new message instead of being dead-lettered.
func TestOutboxPostsAnewWhenTheMessageIsGone(t *testing.T) {
	db, _ := openDB(t)
	sender := newFlaky(0)
	r := runRelay(t, notify.RelayOptions{Outbox: db, Sender: sender, Backoff: time.Millisecond,
		MaxBackoff: time.Millisecond, MaxAttempts: 3, Poll: 2 * time.Millisecond})
	ch := notify.Channel{Platform: "telegram", ID: "-100"}
	post := func(text string) {
		t.Helper()
		if err := db.Enqueue(context.Background(), notify.Post{Topic: "job:7", Channel: ch,
			Message: notify.Message{Title: "job 7", Text: text}}); err != nil {
			t.Fatal(err)
		}
		r.Wake()
	}
	delivered := func() bool {
		pending, _, err := db.OutboxDepth(context.Background())
		return err == nil && pending == 0
	}
	post("running")
	eventually(t, "the first post", delivered)
	msgs, _ := sender.snapshot()
	if len(msgs) != 1 {
		t.Fatalf("%d messages after the first post", len(msgs))
	}
	for id := range msgs {
		sender.delete(id)
	}
	post("succeeded")
	eventually(t, "the news posted anew", delivered)
	post("succeeded, lock released")
	eventually(t, "the next version", delivered)
	msgs, _ = sender.snapshot()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want the one new message edited: %+v", len(msgs), msgs)
	}
	for _, m := range msgs {
		if m.Text != "succeeded, lock released" {
			t.Fatalf("the new message shows %q", m.Text)
		}
	}
	if _, dead, _ := db.OutboxDepth(context.Background()); dead != 0 {
		t.Fatalf("%d dead letters", dead)
	}
	if sender.sends != 2 {
		t.Fatalf("%d sends, want the first post and one repost", sender.sends)
	}
}

// slowSender answers the first edit with a 429 asking for a wait, as
// Telegram's parameters.retry_after does
// (https://core.telegram.org/bots/api#responseparameters) and Slack's
// Retry-After header (https://api.slack.com/apis/rate-limits), and keeps
// the time of every edit.
type slowSender struct {
	*flakySender
	after time.Duration
	edits []time.Time
}

func (s *slowSender) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	s.mu.Lock()
	s.edits = append(s.edits, time.Now())
	first := len(s.edits) == 1
	s.mu.Unlock()
	if first {
		return notify.SlowDown(errors.New("429 too many requests"), s.after)
	}
	return s.flakySender.Edit(ctx, ref, m)
}

func (s *slowSender) editTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.edits...)
}

// An edit that meets a 429 is tried again no sooner than the platform asked,
// even though the relay's own backoff is far shorter, and the final state
// arrives.
func TestOutboxEditWaitsOutRetryAfter(t *testing.T) {
	db, _ := openDB(t)
	sender := &slowSender{flakySender: newFlaky(0), after: 300 * time.Millisecond}
	r := runRelay(t, notify.RelayOptions{Outbox: db, Sender: sender, Backoff: time.Millisecond,
		MaxBackoff: time.Millisecond, MaxAttempts: 5, Poll: 2 * time.Millisecond})
	ch := notify.Channel{Platform: "telegram", ID: "-100"}
	for _, text := range []string{"running", "succeeded"} {
		if err := db.Enqueue(context.Background(), notify.Post{Topic: "job:9", Channel: ch,
			Message: notify.Message{Title: "job 9", Text: text}}); err != nil {
			t.Fatal(err)
		}
		r.Wake()
		eventually(t, text+" delivered", func() bool {
			pending, _, err := db.OutboxDepth(context.Background())
			return err == nil && pending == 0
		})
	}
	edits := sender.editTimes()
	if len(edits) != 2 {
		t.Fatalf("%d edits, want the refused one and its retry", len(edits))
	}
	if gap := edits[1].Sub(edits[0]); gap < sender.after {
		t.Fatalf("retried after %v, the platform asked for %v", gap, sender.after)
	}
	msgs, _ := sender.snapshot()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want one edited", len(msgs))
	}
	for _, m := range msgs {
		if m.Text != "succeeded" {
			t.Fatalf("final message shows %q", m.Text)
		}
	}
}

// refusingSender refuses every call to one chat once told to; other chats
// (the alert chat) still work.
type refusingSender struct {
	*flakySender
	ch      notify.Channel
	refuse  bool
	reposts int // refused sends to ch
}

func (s *refusingSender) refused(ch notify.Channel) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refuse && ch == s.ch
}

func (s *refusingSender) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	if s.refused(ch) {
		s.mu.Lock()
		s.reposts++
		s.mu.Unlock()
		return notify.Ref{}, errors.New("502 bad gateway")
	}
	return s.flakySender.Send(ctx, ch, m)
}

// Edit of a deleted message answers "gone" as the platform does; only an
// edit of a message that exists meets the refusal.
func (s *refusingSender) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	s.mu.Lock()
	_, exists := s.msgs[ref.ID]
	s.mu.Unlock()
	if exists && s.refused(ref.Channel) {
		return errors.New("502 bad gateway")
	}
	return s.flakySender.Edit(ctx, ref, m)
}

// A message whose edits can never land (deleted) and whose repost the chat
// refuses too ends as a dead letter with an alert, like any other row.
func TestOutboxDeadLettersAGoneMessageItCannotRepost(t *testing.T) {
	db, _ := openDB(t)
	ch := notify.Channel{Platform: "telegram", ID: "-100"}
	sender := &refusingSender{flakySender: newFlaky(0), ch: ch}
	alert := notify.Channel{Platform: "telegram", ID: "-999"}
	r := runRelay(t, notify.RelayOptions{Outbox: db, Sender: sender, Backoff: time.Millisecond,
		MaxBackoff: time.Millisecond, MaxAttempts: 3, Poll: 2 * time.Millisecond, Alert: alert})
	post := func(text string) {
		t.Helper()
		if err := db.Enqueue(context.Background(), notify.Post{Topic: "job:8", Channel: ch,
			Message: notify.Message{Title: "job 8", Text: text}}); err != nil {
			t.Fatal(err)
		}
		r.Wake()
	}
	post("running")
	eventually(t, "the first post", func() bool {
		pending, _, err := db.OutboxDepth(context.Background())
		return err == nil && pending == 0
	})
	msgs, _ := sender.snapshot()
	for id := range msgs {
		sender.delete(id)
	}
	post("failed")
	eventually(t, "the repost", func() bool {
		pending, _, err := db.OutboxDepth(context.Background())
		return err == nil && pending == 0
	})
	// Deleted again, and now the chat refuses everything.
	msgs, _ = sender.snapshot()
	for id := range msgs {
		sender.delete(id)
	}
	sender.mu.Lock()
	sender.refuse = true
	sender.mu.Unlock()
	post("failed, lock released")
	eventually(t, "a dead letter", func() bool {
		_, dead, _ := db.OutboxDepth(context.Background())
		return dead == 1
	})
	sender.mu.Lock()
	reposts := sender.reposts
	sender.mu.Unlock()
	if reposts != 3 {
		t.Fatalf("%d refused reposts, want every attempt to fall back to a new post", reposts)
	}
	eventually(t, "the alert", func() bool {
		msgs, chans := sender.snapshot()
		for id, m := range msgs {
			if chans[id] == alert && m.Style == notify.StyleDanger && strings.Contains(m.Text, "job 8") {
				return true
			}
		}
		return false
	})
}

// timedSender keeps the time of every call that reached the chat.
type timedSender struct {
	*flakySender
	calls []time.Time
}

func (s *timedSender) note() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
}

func (s *timedSender) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	s.note()
	return s.flakySender.Send(ctx, ch, m)
}

func (s *timedSender) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	s.note()
	return s.flakySender.Edit(ctx, ref, m)
}

// A message rewritten many times a second (a fast job's card) is edited at
// most once per MinEdit and ends on its newest version.
func TestOutboxCoalescesEditsWithinMinEdit(t *testing.T) {
	db, _ := openDB(t)
	sender := &timedSender{flakySender: newFlaky(0)}
	const minEdit = 150 * time.Millisecond
	r := runRelay(t, notify.RelayOptions{Outbox: db, Sender: sender, MinEdit: minEdit, Poll: 2 * time.Millisecond})
	ch := notify.Channel{Platform: "telegram", ID: "-100"}
	const versions = 60
	start := time.Now()
	for v := 1; v <= versions; v++ {
		if err := db.Enqueue(context.Background(), notify.Post{Topic: "job:5", Channel: ch,
			Message: notify.Message{Title: "job 5", Text: fmt.Sprintf("step %d", v)}}); err != nil {
			t.Fatal(err)
		}
		r.Wake()
	}
	written := time.Since(start)
	eventually(t, "the newest version", func() bool {
		pending, _, err := db.OutboxDepth(context.Background())
		return err == nil && pending == 0
	})
	msgs, _ := sender.snapshot()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want one", len(msgs))
	}
	for _, m := range msgs {
		if m.Text != fmt.Sprintf("step %d", versions) {
			t.Fatalf("message ended at %q", m.Text)
		}
	}
	sender.mu.Lock()
	calls := append([]time.Time(nil), sender.calls...)
	sender.mu.Unlock()
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < minEdit {
			t.Fatalf("calls %d and %d %v apart, under MinEdit %v", i-1, i, gap, minEdit)
		}
	}
	// One call per MinEdit window the writes spanned, plus the first post
	// and the final edit.
	if limit := int(written/minEdit) + 2; len(calls) > limit {
		t.Fatalf("%d calls for %d versions written in %v, want at most %d", len(calls), versions, written, limit)
	}
}

// hangingSender never answers for one chat (a platform that accepts the
// connection and says nothing) and answers at once for the others.
type hangingSender struct {
	hang notify.Channel
	mu   sync.Mutex
	sent []string
}

func (s *hangingSender) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	if ch == s.hang {
		<-ctx.Done()
		return notify.Ref{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m.Title)
	return notify.Ref{Channel: ch, ID: fmt.Sprint(len(s.sent))}, nil
}

func (s *hangingSender) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error { return nil }

func (s *hangingSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// A chat that hangs costs its rows an attempt each, bounded by
// AttemptTimeout, and never the relay's workers: every other chat's
// messages still go out.
func TestOutboxAttemptTimeoutKeepsWorkersFree(t *testing.T) {
	db, _ := openDB(t)
	stuck := notify.Channel{Platform: "slack", ID: "C-stuck"}
	s := &hangingSender{hang: stuck}
	runRelay(t, notify.RelayOptions{Outbox: db, Sender: s, Workers: 2, AttemptTimeout: 50 * time.Millisecond,
		Backoff: time.Hour, Poll: 5 * time.Millisecond})
	ctx := context.Background()
	var posts []notify.Post
	for i := range 4 {
		posts = append(posts, notify.Post{Topic: fmt.Sprint("stuck:", i), Channel: stuck, Message: notify.Message{Title: "stuck"}})
	}
	for i := range 10 {
		posts = append(posts, notify.Post{Topic: fmt.Sprint("ok:", i), Channel: notify.Channel{Platform: "telegram", ID: "-100"},
			Message: notify.Message{Title: fmt.Sprint("ok ", i)}})
	}
	if err := db.Enqueue(ctx, posts...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every other chat's messages", func() bool { return s.count() == 10 })
	eventually(t, "the stuck rows each charged one attempt", func() bool {
		var n int
		err := db.r.QueryRow(`SELECT count(*) FROM outbox WHERE channel = ? AND attempts = 1 AND last_error LIKE '%deadline%'`,
			stuck.String()).Scan(&n)
		return err == nil && n == 4
	})
}

// Delivered rows are forgotten after the horizon; what is still due, dead
// letters and recent rows stay.
func TestForgetDeliveredBefore(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	ch := notify.Channel{Platform: "telegram", ID: "-100"}
	for _, topic := range []string{"old-delivered", "old-due", "old-dead", "new-delivered"} {
		if err := db.Enqueue(ctx, notify.Post{Topic: topic, Channel: ch, Message: notify.Message{Title: topic}}); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-200 * 24 * time.Hour).UnixMilli()
	for _, q := range []string{
		`UPDATE outbox SET delivered = version WHERE topic IN ('old-delivered', 'new-delivered')`,
		`UPDATE outbox SET dead = 1 WHERE topic = 'old-dead'`,
		fmt.Sprintf(`UPDATE outbox SET queued = %d WHERE topic LIKE 'old-%%'`, old),
	} {
		if err := db.write(ctx, func(w *writer) error { _, err := w.exec(q); return err }); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.ForgetDeliveredBefore(ctx, time.Now().Add(-180*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("forgot %d rows, %v; want the one old delivered row", n, err)
	}
	var left []string
	rows, err := db.r.Query(`SELECT topic FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		left = append(left, s)
	}
	if strings.Join(left, ",") != "old-due,old-dead,new-delivered" {
		t.Fatalf("left %v", left)
	}
}

// The terminal waits only for its own messages: a Telegram row retrying
// for hours does not hold a piped script's end.
func TestOutboxPendingInCountsOnePlatform(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	for _, ch := range []string{"shell:terminal", "telegram:-100", "shellx:1", "shell:terminal/7"} {
		c, err := notify.ParseChannel(ch)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Enqueue(ctx, notify.Post{Topic: "t", Channel: c, Message: notify.Message{Title: ch}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.OutboxPendingIn(ctx, "shell"); err != nil || n != 2 {
		t.Fatalf("shell rows pending = %d, %v; want 2", n, err)
	}
	if err := db.write(ctx, func(w *writer) error {
		_, err := w.exec(`UPDATE outbox SET delivered = version WHERE channel LIKE 'shell:%'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.OutboxPendingIn(ctx, "shell"); n != 0 {
		t.Fatalf("shell rows pending = %d after delivery", n)
	}
	if n, _ := db.OutboxPendingIn(ctx, "telegram"); n != 1 {
		t.Fatalf("telegram rows pending = %d", n)
	}
}
