package chattest

import (
	"context"
	"testing"

	"github.com/shipbot/shipbot/internal/notify"
)

// SenderRig is one adapter's notify.Sender with its fake platform behind it,
// for SenderContract.
type SenderRig struct {
	Sender  notify.Sender
	Channel notify.Channel
	// RefuseNextMessage makes the platform refuse the next message posted.
	RefuseNextMessage func()
	// RefuseNextFile makes the platform refuse the next file upload; nil
	// where the adapter sends no files.
	RefuseNextFile func()
	// Posted is how many messages the platform holds in Channel (posts,
	// not edits).
	Posted func() int
}

// SenderContract checks what every notify.Sender promises its callers (the
// outbox relay, the dispatcher): Send gives a ref or an
// error, never both, so a caller that retries on error never posts twice
// and one that keeps the ref never loses a posted message; an edit to the
// same content is no error.
func SenderContract(t *testing.T, newRig func(t *testing.T) SenderRig) {
	ctx := context.Background()
	t.Run("a sent message has a ref", func(t *testing.T) {
		r := newRig(t)
		ref, err := r.Sender.Send(ctx, r.Channel, notify.Message{Title: "hello"})
		if err != nil {
			t.Fatal(err)
		}
		if ref.ID == "" || ref.Channel.Platform != r.Channel.Platform {
			t.Fatalf("ref %+v for channel %+v", ref, r.Channel)
		}
		if n := r.Posted(); n != 1 {
			t.Fatalf("%d messages posted, want 1", n)
		}
	})
	t.Run("a refused message is an error and no ref", func(t *testing.T) {
		r := newRig(t)
		r.RefuseNextMessage()
		ref, err := r.Sender.Send(ctx, r.Channel, notify.Message{Title: "hello"})
		if err == nil || ref != (notify.Ref{}) {
			t.Fatalf("Send = %+v, %v; want no ref and an error", ref, err)
		}
		if n := r.Posted(); n != 0 {
			t.Fatalf("%d messages posted, want 0", n)
		}
	})
	t.Run("a posted message whose file fails is a ref and no error", func(t *testing.T) {
		r := newRig(t)
		if r.RefuseNextFile == nil {
			t.Skip("this adapter sends no files")
		}
		r.RefuseNextFile()
		m := notify.Message{Title: "done", Attachment: &notify.Attachment{Name: "job.log", Content: []byte("full log\n")}}
		ref, err := r.Sender.Send(ctx, r.Channel, m)
		if err != nil || ref.ID == "" {
			// A ref with an error makes callers that retry post the
			// message again; an error alone loses the ref of a message
			// that is out.
			t.Fatalf("Send = %+v, %v; want a ref and no error", ref, err)
		}
		if n := r.Posted(); n != 1 {
			t.Fatalf("%d messages posted, want 1", n)
		}
	})
	t.Run("an edit to the same content is no error", func(t *testing.T) {
		r := newRig(t)
		m := notify.Message{Title: "running", Steps: []notify.Step{{Name: "build", State: "running"}}}
		ref, err := r.Sender.Send(ctx, r.Channel, m)
		if err != nil {
			t.Fatal(err)
		}
		m.Steps[0].State = "done"
		for range 2 {
			if err := r.Sender.Edit(ctx, ref, m); err != nil {
				t.Fatal(err)
			}
		}
		if n := r.Posted(); n != 1 {
			t.Fatalf("%d messages posted, want 1 (edits post nothing)", n)
		}
	})
}
