// Package notifytest has hand-written fakes of notify's seams: an
// in-memory Outbox with the sqlite outbox's rules (one row per topic and
// chat, a version per change, the same message again is no news, a
// replaced message closed by an edit-only row) and injectable failures,
// and JobCards, which wires it to a real notify.Relay the way cmd/bot does.
package notifytest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// ErrInjected is what an injected failure returns.
var ErrInjected = errors.New("injected outbox failure")

type row struct {
	notify.Delivery
	delivered int64
	next      time.Time
	dead      bool
}

// Outbox is an in-memory notify.Outbox.
type Outbox struct {
	mu   sync.Mutex
	rows []*row
	// FailEnqueue makes Enqueue fail, as a full disk would.
	FailEnqueue bool
}

var _ notify.Outbox = (*Outbox)(nil)

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox { return &Outbox{} }

func (o *Outbox) find(topic string, ch notify.Channel) *row {
	for _, r := range o.rows {
		if r.Topic == topic && r.Channel == ch {
			return r
		}
	}
	return nil
}

// Enqueue writes posts like sqlite.DB.Enqueue.
func (o *Outbox) Enqueue(_ context.Context, posts ...notify.Post) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.FailEnqueue {
		return ErrInjected
	}
	now := time.Now()
	for _, p := range posts {
		cur := o.find(p.Topic, p.Channel)
		if p.Closing != nil && cur != nil && cur.Ref != nil {
			o.put(notify.ClosedTopic(p.Topic), p.Channel, *p.Closing, now, cur.Ref, true)
			cur.Ref = nil
			o.bump(cur, p.Message, now)
			continue
		}
		o.put(p.Topic, p.Channel, p.Message, now, nil, false)
	}
	return nil
}

func (o *Outbox) put(topic string, ch notify.Channel, m notify.Message, now time.Time, ref *notify.Ref, editOnly bool) {
	cur := o.find(topic, ch)
	if cur == nil {
		o.rows = append(o.rows, &row{Delivery: notify.Delivery{ID: int64(len(o.rows) + 1), Topic: topic, Channel: ch,
			Message: m, Version: 1, Ref: ref, Queued: now, EditOnly: editOnly}, next: now})
		return
	}
	if ref != nil {
		cur.Ref, cur.EditOnly = ref, editOnly
	} else if reflect.DeepEqual(cur.Message, m) {
		return // no news
	}
	o.bump(cur, m, now)
}

func (o *Outbox) bump(r *row, m notify.Message, now time.Time) {
	r.Message, r.Version, r.Attempts, r.next, r.dead, r.Queued = m, r.Version+1, 0, now, false, now
}

// Due implements notify.Outbox.
func (o *Outbox) Due(_ context.Context, now time.Time, limit int, busy map[int64]bool) ([]notify.Delivery, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []notify.Delivery
	for _, r := range o.rows {
		if r.delivered < r.Version && !r.dead && !r.next.After(now) && !busy[r.ID] && len(out) < limit {
			d := r.Delivery
			if r.Ref != nil {
				ref := *r.Ref
				d.Ref = &ref
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func (o *Outbox) byID(id int64) *row { return o.rows[id-1] }

// SaveRef implements notify.Outbox.
func (o *Outbox) SaveRef(_ context.Context, id int64, ref notify.Ref) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byID(id).Ref = &ref
	return nil
}

// Delivered implements notify.Outbox.
func (o *Outbox) Delivered(_ context.Context, id, version int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.byID(id)
	r.delivered, r.Attempts = max(r.delivered, version), 0
	return nil
}

// Retry implements notify.Outbox.
func (o *Outbox) Retry(_ context.Context, id int64, attempts int, next time.Time, _ string, dead bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.byID(id)
	r.Attempts, r.next, r.dead = attempts, next, dead
	return nil
}

// Defer implements notify.Outbox.
func (o *Outbox) Defer(_ context.Context, id int64, next time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.byID(id).next = next
	return nil
}

// SentRef implements notify.Outbox.
func (o *Outbox) SentRef(_ context.Context, topic string, ch notify.Channel) (*notify.Ref, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r := o.find(topic, ch); r != nil && r.Ref != nil {
		ref := *r.Ref
		return &ref, nil
	}
	return nil, nil
}

// Rows returns every row as it stands, oldest first.
func (o *Outbox) Rows() []notify.Delivery {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]notify.Delivery, len(o.rows))
	for i, r := range o.rows {
		out[i] = r.Delivery
	}
	return out
}

// SetFailEnqueue turns injected Enqueue failures on or off.
func (o *Outbox) SetFailEnqueue(v bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.FailEnqueue = v
}

// Pending counts rows waiting for delivery and dead ones.
func (o *Outbox) Pending() (pending, dead int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.rows {
		switch {
		case r.dead:
			dead++
		case r.delivered < r.Version:
			pending++
		}
	}
	return pending, dead
}

// JobCards delivers job cards the way cmd/bot does: the store reports a
// job change (Report, wired as deploytest.Store.OnChange), notify.JobPosts
// turns it into rows of Outbox, and a real notify.Relay sends them.
type JobCards struct {
	Outbox *Outbox
	Relay  *notify.Relay
	Posts  *notify.JobPosts

	mu   sync.Mutex
	seen map[int64]deploy.State
}

// NewJobCards starts a relay over a new Outbox sending through s; it
// stops when the test ends. MinEdit, the shortest time between two edits
// of one card, is 0 unless given.
func NewJobCards(t testing.TB, s notify.Sender, minEdit time.Duration) *JobCards {
	c := &JobCards{Outbox: NewOutbox(), Posts: notify.NewJobPosts(notify.JobPostsOptions{}), seen: map[int64]deploy.State{}}
	c.Relay = notify.NewRelay(notify.RelayOptions{Outbox: c.Outbox, Sender: s, Poll: 5 * time.Millisecond,
		Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MinEdit: minEdit})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// Report writes the rows of j's change from prev; the store calls it.
func (c *JobCards) Report(prev deploy.State, j deploy.Job) {
	_ = c.Outbox.Enqueue(context.Background(), c.Posts.Posts(context.Background(), prev, j)...)
	c.Relay.Wake()
}

// JobChanged reports j as a store would, remembering each job's last
// state as the prev of its next change; a job seen for the first time
// waits for its card, as a command does (commands.Options.AwaitCard).
func (c *JobCards) JobChanged(j deploy.Job) {
	c.mu.Lock()
	prev, known := c.seen[j.ID]
	c.seen[j.ID] = j.State
	c.mu.Unlock()
	c.Report(prev, j)
	if !known {
		c.Await(context.Background(), &j)
	}
}

// Await waits (up to 5 s) until j's card is in its chat, as cmd/bot's
// commands.Options.AwaitCard does.
func (c *JobCards) Await(ctx context.Context, j *deploy.Job) {
	ch, ok := c.Posts.CardChannel(*j)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = c.Relay.WaitPosted(ctx, notify.CardTopic(j.ID), ch)
}

// Flush waits until nothing is pending, or ctx ends.
func (c *JobCards) Flush(ctx context.Context) error {
	for {
		if p, _ := c.Outbox.Pending(); p == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
