package release

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shipbot/shipbot/internal/deploy"
)

// readError names what went wrong reading what on host, for a chat answer:
// a command the host ran and failed (permission denied, a full disk), or a
// host that did not answer within the read bound. Anything else, and a read
// the caller cancelled, is returned wrapped as it was.
func readError(ctx context.Context, host, what string, err error) error {
	var ee *ExitError
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.Canceled):
		return deploy.Errorf(deploy.CodeUnreachable, err, "%s on %s: no answer in time", what, host)
	case errors.As(err, &ee) && strings.Contains(ee.Output, "No space left"):
		return deploy.Errorf(deploy.CodeDiskFull, err, "%s on %s: no space left on device", what, host)
	case errors.As(err, &ee):
		return deploy.Errorf(deploy.CodeFailed, err, "%s on %s failed: %s", what, host, lastLine(ee.Output))
	}
	return fmt.Errorf("%s on %s: %w", what, host, err)
}
