package notify

import "time"

// RetryAfterError is implemented by adapter errors that carry a platform's
// "slow down" answer (Telegram retry_after, Slack Retry-After). The relay
// waits at least that long before the next attempt.
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
