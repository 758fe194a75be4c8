package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

// RetryAfterError is implemented by adapter errors that carry a platform's
// "slow down" answer (Telegram retry_after, Slack Retry-After).
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// SlowDown wraps err, a platform's rate-limit answer, as a RetryAfterError
// asking for a wait of after.
func SlowDown(err error, after time.Duration) error { return &slowDown{err: err, after: after} }

type slowDown struct {
	err   error
	after time.Duration
}

func (e *slowDown) Error() string             { return e.err.Error() }
func (e *slowDown) Unwrap() error             { return e.err }
func (e *slowDown) RetryAfter() time.Duration { return e.after }

var _ RetryAfterError = (*slowDown)(nil)

// Cards keeps one chat card per job up to date. The first post of a job's card
// is synchronous, so the card is in the chat before the command that created
// the job returns; later changes are coalesced to at most one edit per
// interval per card, and the job's final state is retried until delivered.
type Cards struct {
	sender   Sender
	interval time.Duration
	log      *slog.Logger
	attempts int
	refs     CardRefs

	mu     sync.Mutex
	cards  map[int64]*card
	active sync.WaitGroup
}

type card struct {
	ch     Channel
	ref    *Ref
	latest deploy.Job
	dirty  bool
	busy   bool // a post or a worker owns the card
	// repost: the job was interrupted while shipbot was down. An edit
	// notifies nobody (Telegram), so the old card is closed and the state
	// goes out as a new message, which becomes the job's card.
	repost bool
	last   time.Time
}

var _ deploy.Observer = (*Cards)(nil)

// CardRefs keeps which message shows which job, so that after a restart a
// job's card is edited (interrupted, resumed, finished) instead of posted
// again. The sqlite store implements it on jobs.card_ref, which comes back
// as Job.CardRef on every job it loads.
type CardRefs interface {
	SaveCardRef(ctx context.Context, jobID int64, ref string) error
}

// PersistRefs makes c remember card refs in s. Call it before the first job.
func (c *Cards) PersistRefs(s CardRefs) { c.refs = s }

// EncodeRef and DecodeRef turn a Ref into the text CardRefs stores.
func EncodeRef(r Ref) string { return r.Channel.String() + " " + r.ID }

// DecodeRef is the inverse of EncodeRef.
func DecodeRef(s string) (Ref, error) {
	i := strings.LastIndexByte(s, ' ')
	if i < 0 || i == len(s)-1 {
		return Ref{}, fmt.Errorf("card ref %q: want CHANNEL ID", s)
	}
	ch, err := ParseChannel(s[:i])
	if err != nil {
		return Ref{}, err
	}
	return Ref{Channel: ch, ID: s[i+1:]}, nil
}

// storedRef is the card a job loaded from the store already has.
func (c *Cards) storedRef(j deploy.Job) *Ref {
	if j.CardRef == "" {
		return nil
	}
	r, err := DecodeRef(j.CardRef)
	if err != nil {
		c.log.Warn("stored card ref unreadable", "job", j.ID, "err", err)
		return nil
	}
	return &r
}

func (c *Cards) saveRef(id int64, r Ref) {
	if c.refs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.refs.SaveCardRef(ctx, id, EncodeRef(r)); err != nil {
		// The card still works in this process; only a restart would post anew.
		c.log.Warn("card ref not stored", "job", id, "err", err)
	}
}

// NewCards edits at most once per interval per card (0 means one second).
func NewCards(s Sender, interval time.Duration, log *slog.Logger) *Cards {
	if interval <= 0 {
		interval = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Cards{sender: s, interval: interval, log: log, attempts: 10, cards: map[int64]*card{}}
}

// JobChanged implements deploy.Observer.
func (c *Cards) JobChanged(j deploy.Job) {
	c.mu.Lock()
	cd, ok := c.cards[j.ID]
	if !ok {
		if j.RequestedBy.Chat == "" {
			// Scheduled jobs come from no chat; their results go out
			// through the notification routes instead.
			c.mu.Unlock()
			return
		}
		ch, err := ParseChannel(j.RequestedBy.Chat)
		if err != nil {
			c.mu.Unlock()
			c.log.Warn("job has no chat to report to", "job", j.ID, "chat", j.RequestedBy.Chat)
			return
		}
		cd = &card{ch: ch, busy: true}
		c.cards[j.ID] = cd
		c.active.Add(1)
		c.mu.Unlock()
		if ref := c.storedRef(j); ref != nil {
			// Posted before a restart: edit that message.
			c.mu.Lock()
			cd.ref, cd.latest, cd.dirty = ref, j, true
			// Only recovery reports an interrupted job whose lock is still
			// held; later changes (its lock released) edit the new card.
			cd.repost = j.State == deploy.Interrupted && j.LockReleasedBy == ""
			c.mu.Unlock()
			go c.work(j.ID, cd)
			return
		}
		c.firstPost(j.ID, cd, j)
		return
	}
	cd.latest, cd.dirty = j, true
	if cd.busy {
		c.mu.Unlock()
		return
	}
	cd.busy = true
	c.active.Add(1)
	c.mu.Unlock()
	go c.work(j.ID, cd)
}

func (c *Cards) firstPost(id int64, cd *card, j deploy.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ref, err := c.sender.Send(ctx, cd.ch, JobCard(j))
	cancel()
	c.mu.Lock()
	if err != nil {
		c.log.Warn("job card not posted; will retry", "job", id, "err", err)
		if !cd.dirty {
			cd.latest, cd.dirty = j, true
		}
	} else {
		cd.ref, cd.last = &ref, time.Now()
	}
	c.mu.Unlock()
	if err == nil {
		c.saveRef(id, ref)
	}
	go c.work(id, cd)
}

// work delivers the latest state of one card until nothing is left to send.
func (c *Cards) work(id int64, cd *card) {
	defer c.active.Done()
	failures := 0
	for {
		c.mu.Lock()
		if !cd.dirty {
			cd.busy = false
			if cd.latest.State.Terminal() && cd.ref != nil {
				delete(c.cards, id)
			}
			c.mu.Unlock()
			return
		}
		wait := time.Until(cd.last.Add(c.interval))
		c.mu.Unlock()
		if wait > 0 {
			time.Sleep(wait) // the coalescing window: later changes replace this one
		}
		c.mu.Lock()
		j, ref, repost := cd.latest, cd.ref, cd.repost
		cd.dirty, cd.repost = false, false
		c.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if repost && ref != nil {
			old := JobCard(j)
			old.Buttons, old.Attachment = nil, nil
			old.Text = strings.TrimSpace(old.Text + "\n(continued in a new message below)")
			if err := c.sender.Edit(ctx, *ref, old); err != nil {
				c.log.Info("old card of an interrupted job not closed", "job", id, "err", err)
			}
			ref = nil
		}
		var err error
		if ref == nil {
			var r Ref
			r, err = c.sender.Send(ctx, cd.ch, JobCard(j))
			if err == nil {
				ref = &r
				c.saveRef(id, r)
			}
		} else {
			err = c.sender.Edit(ctx, *ref, JobCard(j))
		}
		cancel()
		c.mu.Lock()
		cd.last = time.Now()
		if err == nil {
			cd.ref = ref
			failures = 0
			c.mu.Unlock()
			continue
		}
		if errors.Is(err, ErrMessageGone) && ref != nil {
			// Someone deleted the card: no edit will ever land. Post the
			// job's state as a new card, which becomes the job's card.
			cd.ref = nil
			if !cd.dirty {
				cd.latest, cd.dirty = j, true
			}
			cd.last = time.Time{}
			c.mu.Unlock()
			c.log.Info("job card was deleted; posting a new one", "job", id)
			continue
		}
		failures++
		if !cd.dirty {
			cd.latest, cd.dirty = j, true // re-send this state unless a newer one came
		}
		c.mu.Unlock()
		c.log.Warn("job card not updated", "job", id, "attempt", failures, "err", err)
		if failures >= c.attempts {
			c.mu.Lock()
			cd.dirty, cd.busy = false, false
			delete(c.cards, id)
			c.mu.Unlock()
			c.log.Error("job card abandoned", "job", id, "state", j.State)
			return
		}
		pause := time.Duration(failures) * c.interval
		var ra RetryAfterError
		if errors.As(err, &ra) && ra.RetryAfter() > pause {
			pause = ra.RetryAfter()
		}
		time.Sleep(pause)
	}
}

// Flush waits until every pending card change has been delivered (or
// abandoned), or ctx ends.
func (c *Cards) Flush(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.active.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
