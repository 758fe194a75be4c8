package notify_test

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

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

type rateLimited struct{ after time.Duration }

func (e rateLimited) Error() string             { return "429 too many requests" }
func (e rateLimited) RetryAfter() time.Duration { return e.after }

// flakySender fails the first failEdits edits with a 429, and records every
// delivered state with its time.
type flakySender struct {
	mu        sync.Mutex
	failEdits int
	sends     int
	edits     []string
	editTimes []time.Time
	failedAt  time.Time
}

func (s *flakySender) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	return notify.Ref{Channel: ch, ID: "1"}, nil
}

func (s *flakySender) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failEdits > 0 {
		s.failEdits--
		s.failedAt = time.Now()
		return fmt.Errorf("edit: %w", rateLimited{after: 50 * time.Millisecond})
	}
	s.edits = append(s.edits, m.Fields[0].Value)
	s.editTimes = append(s.editTimes, time.Now())
	return nil
}

func job(state deploy.State, line int) deploy.Job {
	return deploy.Job{ID: 7, App: "demo", Env: "staging", State: state, Output: []string{fmt.Sprint("line ", line)},
		RequestedBy: deploy.Who{User: "alice", Chat: "shell:terminal"}}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func flush(t *testing.T, c *notify.Cards) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCardsCoalesceAndEndOnFinalState(t *testing.T) {
	s := &flakySender{}
	c := notify.NewCards(s, 20*time.Millisecond, quiet())
	c.JobChanged(job(deploy.Queued, 0))
	for i := 1; i <= 200; i++ {
		c.JobChanged(job(deploy.Running, i))
	}
	c.JobChanged(job(deploy.Succeeded, 201))
	flush(t, c)
	if s.sends != 1 {
		t.Fatalf("%d cards posted for one job, want 1", s.sends)
	}
	if len(s.edits) == 0 || len(s.edits) > 20 {
		t.Fatalf("%d edits for 201 changes: not coalesced", len(s.edits))
	}
	if last := s.edits[len(s.edits)-1]; last != "succeeded" {
		t.Fatalf("last delivered state %q, want succeeded", last)
	}
	for i := 1; i < len(s.editTimes); i++ {
		if gap := s.editTimes[i].Sub(s.editTimes[i-1]); gap < 15*time.Millisecond {
			t.Fatalf("edits %d and %d only %s apart", i-1, i, gap)
		}
	}
}

func TestCardsHonourRetryAfterAndKeepFinalState(t *testing.T) {
	s := &flakySender{failEdits: 3}
	c := notify.NewCards(s, time.Millisecond, quiet())
	c.JobChanged(job(deploy.Running, 0))
	c.JobChanged(job(deploy.Failed, 1))
	flush(t, c)
	if len(s.edits) != 1 || s.edits[0] != "failed" {
		t.Fatalf("edits %v: the final state must arrive after the 429s", s.edits)
	}
	if wait := s.editTimes[0].Sub(s.failedAt); wait < 45*time.Millisecond {
		t.Fatalf("retried %s after a 429 asking for 50ms", wait)
	}
}

func TestCardsRetryFirstPost(t *testing.T) {
	s := &failingFirstSend{}
	c := notify.NewCards(s, time.Millisecond, quiet())
	c.JobChanged(job(deploy.AwaitingApproval, 0))
	flush(t, c)
	if s.ok != 1 {
		t.Fatalf("card posted %d times after a failed first post, want 1", s.ok)
	}
}

type failingFirstSend struct {
	mu       sync.Mutex
	attempts int
	ok       int
}

func (s *failingFirstSend) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.attempts == 1 {
		return notify.Ref{}, errors.New("503")
	}
	s.ok++
	return notify.Ref{Channel: ch, ID: "9"}, nil
}

func (s *failingFirstSend) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	return nil
}

func TestJobCardButtons(t *testing.T) {
	j := job(deploy.AwaitingApproval, 0)
	j.ApprovalID = "abcdefghijklmnopqrstuvwx"
	m := notify.JobCard(j)
	if len(m.Buttons) != 2 || m.Buttons[0].Data != "approve:abcdefghijklmnopqrstuvwx" || m.Buttons[1].Data != "deny:abcdefghijklmnopqrstuvwx" {
		t.Fatalf("approval buttons %+v", m.Buttons)
	}
	for _, b := range m.Buttons {
		if len(b.Data) > 64 {
			t.Fatalf("button data %d bytes, over Telegram's 64", len(b.Data))
		}
	}
	// An interrupted deploy that switched away from r1 offers to put r1
	// back; one that never switched offers only to release the lock; once
	// released, the card says by whom and offers nothing.
	j.State, j.Action, j.FromRelease, j.Switch = deploy.Interrupted, deploy.ActionDeploy, "r1", deploy.SwitchDone
	if m := notify.JobCard(j); len(m.Buttons) != 2 || m.Buttons[0].Label != "Release lock" || m.Buttons[1].Label != "Rollback to r1" ||
		!strings.Contains(m.Text, "Rollback makes r1 live again") {
		t.Fatalf("interrupted buttons %+v, text %q", m.Buttons, m.Text)
	}
	j.Switch = deploy.SwitchNever
	if m := notify.JobCard(j); len(m.Buttons) != 1 || m.Buttons[0].Label != "Release lock" || !strings.Contains(m.Text, "never switched: r1") {
		t.Fatalf("never-switched buttons %+v, text %q", m.Buttons, m.Text)
	}
	j.LockReleasedBy = "bob"
	if m := notify.JobCard(j); len(m.Buttons) != 0 || m.Fields[0].Value != "interrupted — lock released by bob" {
		t.Fatalf("released: buttons %+v, fields %+v", m.Buttons, m.Fields)
	}
	j.State = deploy.Succeeded
	if m := notify.JobCard(j); len(m.Buttons) != 0 {
		t.Fatalf("finished job has buttons %+v", m.Buttons)
	}
}

func TestJobCardAttachesTheLogOnlyAtTheEndWhenLong(t *testing.T) {
	j := job(deploy.Running, 0)
	for i := range 30 {
		j.Output = append(j.Output, fmt.Sprint("line ", i))
	}
	if m := notify.JobCard(j); m.Attachment != nil || len(m.Code) != 8 {
		t.Fatalf("running card: attachment %v, %d code lines", m.Attachment, len(m.Code))
	}
	j.State = deploy.Succeeded
	m := notify.JobCard(j)
	if m.Attachment == nil || !strings.Contains(string(m.Attachment.Content), "line 0\n") || !strings.Contains(string(m.Attachment.Content), "line 29\n") {
		t.Fatalf("final card attachment %+v", m.Attachment)
	}
	short := job(deploy.Failed, 1)
	if m := notify.JobCard(short); m.Attachment != nil {
		t.Fatal("a short log needs no file")
	}
}
