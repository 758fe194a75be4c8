package chat

import (
	"sync"

	"github.com/shipbot/shipbot/internal/notify"
)

// AttachTries is how often one message's attachment is tried: with the
// message, and once more with its next edit, for a passing network error. A
// chat where the bot may not send files refuses every time; asking forever
// would upload on every edit of the card.
const AttachTries = 2

// keepAttached bounds the memory; a card edited after thousands of others
// have ended is not going to be edited again.
const keepAttached = 4096

// Attached remembers which messages got their Attachment, so a card edited
// again after it ended does not post its log twice, and which keep failing.
// Safe for concurrent use.
type Attached struct {
	mu    sync.Mutex
	sent  map[string]bool
	order []string // keys of sent, oldest first, for eviction
	fails map[string]int
}

func key(ref notify.Ref) string { return ref.Channel.String() + "#" + ref.ID }

// Due reports whether ref's attachment should be sent now.
func (a *Attached) Due(ref notify.Ref) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := key(ref)
	return !a.sent[k] && a.fails[k] < AttachTries
}

// Sent notes that ref's attachment went out.
func (a *Attached) Sent(ref notify.Ref) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sent == nil {
		a.sent = map[string]bool{}
	}
	k := key(ref)
	if a.sent[k] {
		return
	}
	a.sent[k] = true
	a.order = append(a.order, k)
	if len(a.order) > keepAttached {
		delete(a.sent, a.order[0])
		a.order = a.order[1:]
	}
}

// Failed notes one failed try of ref's attachment.
func (a *Attached) Failed(ref notify.Ref) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fails == nil || len(a.fails) > keepAttached {
		a.fails = map[string]int{} // a bound, not a record
	}
	a.fails[key(ref)]++
}
