package release

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

func TestReadErrorNamesConditions(t *testing.T) {
	expired, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-expired.Done()
	stopped, stop := context.WithCancel(context.Background())
	stop()
	for _, c := range []struct {
		ctx  context.Context
		err  error
		code deploy.Code
		msg  string
	}{
		{context.Background(), &ExitError{Argv: []string{"ls"}, Code: 2, Output: "ls: cannot open directory '/srv/web/releases': Permission denied\n"},
			deploy.CodeFailed, "listing /srv/web/releases on web1 failed: ls: cannot open directory '/srv/web/releases': Permission denied"},
		{context.Background(), &ExitError{Argv: []string{"ls"}, Code: 1, Output: "write error: No space left on device"},
			deploy.CodeDiskFull, "listing /srv/web/releases on web1: no space left on device"},
		{expired, context.DeadlineExceeded, deploy.CodeUnreachable, "listing /srv/web/releases on web1: no answer in time"},
		{stopped, context.Canceled, "", "listing /srv/web/releases on web1: context canceled"},
		{context.Background(), errors.New("boom"), "", "listing /srv/web/releases on web1: boom"},
	} {
		err := readError(c.ctx, "web1", "listing /srv/web/releases", c.err)
		if deploy.ErrorCode(err) != c.code || err.Error() != c.msg || !errors.Is(err, c.err) {
			t.Errorf("%v: got %q (code %q), want %q (code %q)", c.err, err, deploy.ErrorCode(err), c.msg, c.code)
		}
	}
}
