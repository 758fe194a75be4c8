package notify_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

type memRefs struct {
	mu   sync.Mutex
	refs map[int64]string
}

func (m *memRefs) SaveCardRef(_ context.Context, id int64, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs[id] = ref
	return nil
}

func (m *memRefs) get(id int64) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refs[id]
}

func TestCardRefsSurviveARestart(t *testing.T) {
	refs := &memRefs{refs: map[int64]string{}}
	first := &flakySender{}
	c := notify.NewCards(first, time.Millisecond, quiet())
	c.PersistRefs(refs)
	c.JobChanged(job(deploy.Running, 1))
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := refs.get(7); got != "shell:terminal 1" {
		t.Fatalf("stored ref %q", got)
	}
	// A new process: the job, loaded from the store with its card ref,
	// closes that message and, being interrupted, is posted anew (an edit
	// notifies nobody); the new message becomes the job's card.
	second := &flakySender{}
	c2 := notify.NewCards(second, time.Millisecond, quiet())
	c2.PersistRefs(refs)
	loaded := job(deploy.Interrupted, 2)
	loaded.CardRef = refs.get(7)
	c2.JobChanged(loaded)
	if err := c2.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	second.mu.Lock()
	if second.sends != 1 || len(second.edits) != 1 || second.edits[0] != "interrupted — lock still held" {
		t.Fatalf("after a restart: %d sends, edits %q; want the old card closed and one new card", second.sends, second.edits)
	}
	second.mu.Unlock()
	// Its lock released later: the card (now the new one) is edited.
	c4 := &flakySender{}
	cards4 := notify.NewCards(c4, time.Millisecond, quiet())
	released := job(deploy.Interrupted, 3)
	released.CardRef, released.LockReleasedBy = "shell:terminal 1", "bob"
	cards4.JobChanged(released)
	if err := cards4.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c4.mu.Lock()
	if c4.sends != 0 || len(c4.edits) != 1 || c4.edits[0] != "interrupted — lock released by bob" {
		t.Fatalf("lock released: %d sends, edits %q; want one edit", c4.sends, c4.edits)
	}
	c4.mu.Unlock()
	// A job that finished while shipbot was away (resumed) edits its card.
	third := &flakySender{}
	c3 := notify.NewCards(third, time.Millisecond, quiet())
	done := job(deploy.Succeeded, 3)
	done.CardRef = "shell:terminal 5"
	c3.JobChanged(done)
	if err := c3.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	third.mu.Lock()
	defer third.mu.Unlock()
	if third.sends != 0 || len(third.edits) != 1 {
		t.Fatalf("resumed job: %d sends, %d edits; want one edit", third.sends, len(third.edits))
	}
}

func TestUnreadableCardRefPostsAnew(t *testing.T) {
	refs := &memRefs{refs: map[int64]string{}}
	s := &flakySender{}
	c := notify.NewCards(s, time.Millisecond, quiet())
	c.PersistRefs(refs)
	garbled := job(deploy.Running, 1)
	garbled.CardRef = "garbage"
	c.JobChanged(garbled)
	_ = c.Flush(context.Background())
	s.mu.Lock()
	sends := s.sends
	s.mu.Unlock()
	if sends != 1 {
		t.Fatalf("%d sends; an unreadable ref must not lose the card", sends)
	}
	if r, err := notify.DecodeRef(notify.EncodeRef(notify.Ref{Channel: notify.Channel{Platform: "slack", ID: "C1", Thread: "17.5"}, ID: "1700000000.000100"})); err != nil ||
		r.Channel.Thread != "17.5" || r.ID != "1700000000.000100" {
		t.Fatalf("round trip: %+v %v", r, err)
	}
}
