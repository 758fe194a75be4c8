package notify

import (
	"context"
	"fmt"
	"strings"
)

// Router is a Sender that hands each message to the Sender of its channel's platform.
type Router map[string]Sender

var _ Sender = Router(nil)

func (r Router) pick(platform string) (Sender, error) {
	s, ok := r[platform]
	if !ok {
		return nil, fmt.Errorf("no chat adapter for platform %q", platform)
	}
	return s, nil
}

func (r Router) Send(ctx context.Context, ch Channel, m Message) (Ref, error) {
	s, err := r.pick(ch.Platform)
	if err != nil {
		return Ref{}, err
	}
	return s.Send(ctx, ch, m)
}

func (r Router) Edit(ctx context.Context, ref Ref, m Message) error {
	s, err := r.pick(ref.Channel.Platform)
	if err != nil {
		return err
	}
	return s.Edit(ctx, ref, m)
}

// ParseChannel reads "platform:id" or "platform:id/thread".
func ParseChannel(s string) (Channel, error) {
	p, rest, ok := strings.Cut(s, ":")
	if !ok || p == "" || rest == "" {
		return Channel{}, fmt.Errorf("chat %q: want platform:id", s)
	}
	id, thread, _ := strings.Cut(rest, "/")
	return Channel{Platform: p, ID: id, Thread: thread}, nil
}
