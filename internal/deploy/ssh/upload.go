package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy/release"
)

var _ release.Uploader = (*Host)(nil)

// Upload streams r into dst on the host through a session running `cat`
// (no PTY: a terminal would mangle binary data), then compares the file's
// SHA-256 on the host with what was sent, so a truncated or altered upload
// never gets unpacked.
func (h *Host) Upload(ctx context.Context, r io.Reader, dst string, mode os.FileMode) error {
	c, err := h.conn(ctx)
	if err != nil {
		return err
	}
	s, err := c.client.NewSession()
	if err != nil {
		return c.explain(h.Name(), err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	sum := sha256.New()
	s.Stdin = io.TeeReader(r, sum)
	var stderr strings.Builder
	s.Stderr = &stderr
	cmd := "umask 077 && cat > " + Quote(dst)
	if err := s.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("upload to %s:%s: %w %s", h.Name(), dst, err, strings.TrimSpace(stderr.String()))
	}
	var got string
	err = h.Run(ctx, "", []string{"sha256sum", "--", dst}, func(line string) {
		if f := strings.Fields(line); len(f) > 0 && got == "" {
			got = f[0]
		}
	})
	if err != nil {
		return fmt.Errorf("checking the upload on %s: %w", h.Name(), err)
	}
	if want := hex.EncodeToString(sum.Sum(nil)); got != want {
		return fmt.Errorf("upload to %s:%s is damaged: sha256 %s on the host, %s sent", h.Name(), dst, got, want)
	}
	return h.Run(ctx, "", []string{"chmod", strconv.FormatUint(uint64(mode.Perm()), 8), "--", dst}, nil)
}
