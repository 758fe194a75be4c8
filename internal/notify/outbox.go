package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Post is one message to keep up to date in one channel. Topic names what
// the message is about ("pipeline:gitlab:acme/web:41", "job:17"); posting a
// topic again to the same channel edits the message already sent instead of
// sending another.
type Post struct {
	Topic   string
	Channel Channel
	Message Message
	// Closing, when set and the topic already has a message in Channel,
	// is that message's last edit; Message then goes out as a new message,
	// which becomes the topic's message (an interrupted job's card after
	// a restart: an edit notifies nobody).
	Closing *Message `json:",omitempty"`
}

// ClosedTopic is the topic of the last edit of topic's message when a
// Post with Closing replaced it by a new one.
func ClosedTopic(topic string) string { return topic + ":closed" }

// Tracked is the stored newest state of something reported through the
// outbox (a CI pipeline, a deployment): late and redelivered events are
// compared with it, and deploy notices find their pipeline by SHA.
type Tracked struct {
	Topic, Project, SHA, Status string
	Event                       []byte // the normalised event, JSON
}

// Ingester records a webhook delivery in one transaction: the delivery key
// (dedupe), the tracked state of topic and the outbox rows plan returns.
// plan sees the stored state (nil when new) and returns the state to store
// in its place (the event merged into it) with the posts, or nil to record
// only the key (an event that changes nothing); an error from plan rolls
// everything back, the key included, so the source's retry is not a
// duplicate. dup reports a key seen before.
type Ingester interface {
	Ingest(ctx context.Context, key, topic string, plan func(prev *Tracked) (next *Tracked, posts []Post, err error)) (dup bool, err error)
}

// Delivery is an outbox row: the newest Version of one topic's message in
// one channel, and what the relay knows of its delivery.
type Delivery struct {
	ID       int64
	Topic    string
	Channel  Channel
	Message  Message
	Version  int64
	Ref      *Ref // the sent message; nil until the first send succeeded
	Attempts int
	Queued   time.Time // when Version was written: the start of its delivery latency
	// EditOnly rows only edit Ref (a closed card's last words): when that
	// message is gone there is nothing left to close, and nothing is posted.
	EditOnly bool
}

// Outbox is the durable queue the relay drains; sqlite.DB implements it.
// Rows are written in the same transaction as what they report (a webhook
// event, a job change), so nothing reported is lost on a crash.
type Outbox interface {
	// Due returns up to limit rows whose newest version is undelivered, that
	// are not dead and whose next attempt is at or before now, oldest first,
	// leaving out the ids in busy.
	Due(ctx context.Context, now time.Time, limit int, busy map[int64]bool) ([]Delivery, error)
	// SaveRef records the message a first send created, before anything
	// else happens, so a later edit finds it.
	SaveRef(ctx context.Context, id int64, ref Ref) error
	// Delivered marks version as delivered (a newer version stays due).
	Delivered(ctx context.Context, id, version int64) error
	// Retry schedules another attempt; dead means give up for good.
	Retry(ctx context.Context, id int64, attempts int, next time.Time, lastErr string, dead bool) error
	// Defer moves a row's next attempt to next without counting an
	// attempt (an edit held back by RelayOptions.MinEdit).
	Defer(ctx context.Context, id int64, next time.Time) error
	// SentRef returns the message sent for topic in ch, nil if none was yet.
	SentRef(ctx context.Context, topic string, ch Channel) (*Ref, error)
}

// RelayOptions configure a Relay.
type RelayOptions struct {
	Outbox Outbox
	Sender Sender
	// Workers deliver different rows at once; default 4. One row is never
	// in two workers, so its edits keep their order.
	Workers int
	// MaxAttempts before a row is dead-lettered; default 10.
	MaxAttempts int
	// Backoff is the first retry's wait, doubled per attempt up to MaxBackoff,
	// with ±20% jitter; defaults 1s and 5m.
	Backoff, MaxBackoff time.Duration
	// Alert is where dead letters are reported; zero means only the log.
	Alert Channel
	// MinEdit is the shortest time between two deliveries of one row; zero
	// means no limit. A version due sooner waits, and versions written
	// meanwhile replace it, so a message that changes thirty times a second
	// is edited once per MinEdit, ending on its newest version.
	MinEdit time.Duration
	// Poll is how often the outbox is read when nobody calls Wake; default 500ms.
	Poll time.Duration
	// AttemptTimeout bounds one send or edit; default 15s. A platform that
	// hangs costs a row one attempt, not a worker for good.
	AttemptTimeout time.Duration
	// Observe, if set, hears every attempt: the row, its latency, and the
	// error (nil when delivered). For metrics.
	Observe func(d Delivery, latency time.Duration, err error)
	// AfterSend, if set, runs between a successful send and its being marked
	// delivered; crash tests stop the process there.
	AfterSend func(d Delivery)
	Log       *slog.Logger
	Now       func() time.Time
}

// Relay delivers outbox rows through a Sender, at least once: a row is
// marked delivered only after the platform accepted it, so a crash between
// the two repeats one send (at most one duplicate message) and loses nothing.
// A row with a Ref is edited in place, never posted again.
type Relay struct {
	o    RelayOptions
	wake chan struct{}
	mu   sync.Mutex
	busy map[int64]bool
	last map[int64]time.Time // a row's last successful delivery, while MinEdit holds its next
	// posted wakes WaitPosted callers when a row's first message is sent.
	posted map[postKey][]chan struct{}
}

type postKey struct {
	topic string
	ch    Channel
}

// NewRelay returns a relay; Run starts it.
func NewRelay(o RelayOptions) *Relay {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 15 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Relay{o: o, wake: make(chan struct{}, 1), busy: map[int64]bool{}, last: map[int64]time.Time{},
		posted: map[postKey][]chan struct{}{}}
}

// Wake tells the relay new rows are due; it never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// WaitPosted returns once topic's message in ch has been sent (at once if
// it was before), or when ctx ends. A command that made a job waits for its
// card this way, so the card comes before whatever the chat says next.
func (r *Relay) WaitPosted(ctx context.Context, topic string, ch Channel) error {
	k := postKey{topic, ch}
	done := make(chan struct{})
	r.mu.Lock()
	r.posted[k] = append(r.posted[k], done)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.posted[k] = slices.DeleteFunc(r.posted[k], func(c chan struct{}) bool { return c == done })
		if len(r.posted[k]) == 0 {
			delete(r.posted, k)
		}
	}()
	// Registered first, read second: a send between the two is not missed.
	if ref, err := r.o.Outbox.SentRef(ctx, topic, ch); err != nil || ref != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wasPosted wakes the waiters of d's first message.
func (r *Relay) wasPosted(d Delivery) {
	k := postKey{d.Topic, d.Channel}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.posted[k] {
		close(c)
	}
	delete(r.posted, k)
}

// Run delivers until ctx ends, then waits for the sends in flight.
func (r *Relay) Run(ctx context.Context) {
	work := make(chan Delivery)
	var wg sync.WaitGroup
	for range r.o.Workers {
		wg.Go(func() {
			for d := range work {
				r.deliver(ctx, d)
				r.mu.Lock()
				delete(r.busy, d.ID)
				r.mu.Unlock()
				r.Wake()
			}
		})
	}
	defer func() { close(work); wg.Wait() }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
		r.mu.Lock()
		busy := make(map[int64]bool, len(r.busy))
		for id := range r.busy {
			busy[id] = true
		}
		r.mu.Unlock()
		due, err := r.o.Outbox.Due(ctx, r.o.Now(), 4*r.o.Workers, busy)
		if err != nil && ctx.Err() == nil {
			r.o.Log.Error("outbox: reading due rows failed", "err", err)
		}
		for _, d := range due {
			r.mu.Lock()
			r.busy[d.ID] = true
			r.mu.Unlock()
			select {
			case work <- d:
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(r.o.Poll)
	}
}

// deliver makes one attempt at d. Database writes after a send use a
// context that outlives shutdown: a send the platform accepted must be
// recorded, or it is repeated.
func (r *Relay) deliver(ctx context.Context, d Delivery) {
	if r.held(ctx, d) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, r.o.AttemptTimeout)
	defer cancel()
	var err error
	if d.Ref != nil {
		err = r.o.Sender.Edit(actx, *d.Ref, d.Message)
		if errors.Is(err, ErrMessageGone) && d.EditOnly {
			r.o.Log.Info("outbox: the message to close was deleted; nothing to do", "id", d.ID, "topic", d.Topic)
			err = nil
		} else if errors.Is(err, ErrMessageGone) {
			// Someone deleted the message: no edit will ever land, and
			// retrying one until the row is dead loses the news. Post it
			// anew; the new message becomes the topic's message.
			r.o.Log.Info("outbox: the message to edit was deleted; posting it anew", "id", d.ID, "topic", d.Topic)
			d.Ref = nil
		}
	}
	if d.Ref == nil && !d.EditOnly {
		var ref Ref
		ref, err = r.o.Sender.Send(actx, d.Channel, d.Message)
		if err == nil {
			if r.o.AfterSend != nil {
				r.o.AfterSend(d)
			}
			if serr := r.o.Outbox.SaveRef(context.WithoutCancel(ctx), d.ID, ref); serr != nil {
				r.o.Log.Error("outbox: sent but the message ref was not saved; it may be sent again", "id", d.ID, "err", serr)
				return
			}
			r.wasPosted(d)
		}
	}
	latency := r.o.Now().Sub(d.Queued)
	if r.o.Observe != nil {
		r.o.Observe(d, latency, err)
	}
	if err == nil {
		r.delivered(d.ID)
		if err := r.o.Outbox.Delivered(context.WithoutCancel(ctx), d.ID, d.Version); err != nil {
			r.o.Log.Error("outbox: delivered but not marked; it will be edited again", "id", d.ID, "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the row stays due for the next start
	}
	attempts := d.Attempts + 1
	dead := attempts >= r.o.MaxAttempts
	next := r.o.Now().Add(r.backoff(attempts, err))
	if rerr := r.o.Outbox.Retry(context.WithoutCancel(ctx), d.ID, attempts, next, err.Error(), dead); rerr != nil {
		r.o.Log.Error("outbox: recording a failed attempt failed", "id", d.ID, "err", rerr)
	}
	if !dead {
		r.o.Log.Warn("outbox: delivery failed; will retry", "id", d.ID, "topic", d.Topic, "chat", d.Channel.String(),
			"attempt", attempts, "next", next, "err", err)
		return
	}
	r.o.Log.Error("outbox: delivery failed for good (dead letter)", "id", d.ID, "topic", d.Topic,
		"chat", d.Channel.String(), "attempts", attempts, "err", err)
	if r.o.Alert.ID != "" && r.o.Alert != d.Channel {
		alert := Message{Title: "A notification could not be delivered", Style: StyleDanger,
			Text: fmt.Sprintf("%q to %s failed %d times; it is parked in the outbox (id %d).", d.Message.Title,
				d.Channel.String(), attempts, d.ID),
			Fields: []Field{{Name: "last error", Value: err.Error()}}}
		if _, aerr := r.o.Sender.Send(context.WithoutCancel(ctx), r.o.Alert, alert); aerr != nil {
			r.o.Log.Error("outbox: the dead-letter alert failed too", "alert", r.o.Alert.String(), "err", aerr)
		}
	}
}

// held defers d when it was delivered less than MinEdit ago and reports
// whether it did. A row that failed to defer is delivered now: an edit too
// early beats a message left behind.
func (r *Relay) held(ctx context.Context, d Delivery) bool {
	if r.o.MinEdit <= 0 {
		return false
	}
	r.mu.Lock()
	last, ok := r.last[d.ID]
	r.mu.Unlock()
	if !ok {
		return false
	}
	next := last.Add(r.o.MinEdit)
	if !r.o.Now().Before(next) {
		return false
	}
	if err := r.o.Outbox.Defer(context.WithoutCancel(ctx), d.ID, next); err != nil {
		r.o.Log.Warn("outbox: holding back an edit failed; sending it now", "id", d.ID, "err", err)
		return false
	}
	return true
}

// delivered notes when row id went out, for MinEdit, and forgets rows whose
// window has passed so the map stays as small as the rows in flight.
func (r *Relay) delivered(id int64) {
	if r.o.MinEdit <= 0 {
		return
	}
	now := r.o.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, t := range r.last {
		if now.Sub(t) >= r.o.MinEdit {
			delete(r.last, k)
		}
	}
	r.last[id] = now
}

// backoff is the wait before attempt n+1: exponential with jitter, and never
// shorter than what a rate-limited platform asked for.
func (r *Relay) backoff(attempts int, err error) time.Duration {
	d := r.o.Backoff << min(attempts-1, 20)
	if d > r.o.MaxBackoff || d <= 0 {
		d = r.o.MaxBackoff
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	var ra RetryAfterError
	if errors.As(err, &ra) && ra.RetryAfter() > d {
		d = ra.RetryAfter()
	}
	return d
}
