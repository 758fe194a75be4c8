package shell_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/chattest"
	"github.com/shipbot/shipbot/internal/chat/shell"
	"github.com/shipbot/shipbot/internal/notify"
)

// terminal is an Out that can refuse its next write, as a closed pipe does.
type terminal struct {
	mu     sync.Mutex
	b      strings.Builder
	refuse bool
}

func (w *terminal) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refuse {
		w.refuse = false
		return 0, errors.New("broken pipe")
	}
	return w.b.Write(p)
}

// posted counts message headers ("── #3 ──"), not edits ("(updated)").
func (w *terminal) posted() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, l := range strings.Split(w.b.String(), "\n") {
		if strings.HasPrefix(l, "── #") && !strings.Contains(l, "(updated)") {
			n++
		}
	}
	return n
}

func TestSenderContract(t *testing.T) {
	chattest.SenderContract(t, func(t *testing.T) chattest.SenderRig {
		out := &terminal{}
		s := shell.New(shell.Options{Out: out})
		return chattest.SenderRig{Sender: s, Channel: notify.Channel{Platform: shell.Platform, ID: "terminal"},
			RefuseNextMessage: func() { out.mu.Lock(); out.refuse = true; out.mu.Unlock() },
			Posted:            out.posted}
	})
}
