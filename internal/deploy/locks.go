package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

// LockExpiryWho is the actor of a lock released because it expired.
var LockExpiryWho = Who{User: SchedulerUser, Identity: "shipbot:lock-expiry"}

// MaxLockTTL bounds how long a manual lock may be taken for at once.
const MaxLockTTL = 30 * 24 * time.Hour

// LockFor takes a manual lock on (app, env) that expires after ttl (0: never).
func (e *Engine) LockFor(ctx context.Context, app, env, reason string, who Who, ttl time.Duration) (Lock, error) {
	if ttl < 0 || ttl > MaxLockTTL {
		return Lock{}, refuse("a lock lasts from 1s to %s", FormatDuration(MaxLockTTL))
	}
	now := e.now()
	l := Lock{App: app, Env: env, Owner: who.User, Reason: reason, Since: now, Chat: who.Chat}
	args := []string{reason}
	text := "locked: " + reason
	if ttl > 0 {
		l.Expires = now.Add(ttl)
		args = []string{"--for", FormatDuration(ttl), reason}
		text += " (expires " + l.Expires.UTC().Format(time.RFC3339) + ")"
	}
	in := audit.Intent(who, "lock", app, env, args)
	out := audit.Closing(in, 0, text)
	if err := e.store.AcquireLock(ctx, l, in, out); err != nil {
		return Lock{}, err
	}
	return l, nil
}

// ExtendLock moves the expiry of the manual lock on (app, env) by d, from
// its current expiry (or from now, if that has passed). The holder may; so
// may anyone with force. A lock without expiry stays without.
func (e *Engine) ExtendLock(ctx context.Context, app, env string, who Who, d time.Duration, force bool) (Lock, error) {
	if d <= 0 || d > MaxLockTTL {
		return Lock{}, refuse("a lock is extended by 1s to %s", FormatDuration(MaxLockTTL))
	}
	in := audit.Intent(who, "extend", app, env, []string{FormatDuration(d)})
	out := audit.Closing(in, 0, "")
	var got Lock
	err := e.store.UpdateLock(ctx, app, env, func(l *Lock) error {
		switch {
		case l.JobID != 0:
			return refuse("%s/%s is held by job #%d, which releases it when it ends", app, env, l.JobID)
		case l.Owner != who.User && !force:
			return refuse("%s/%s is locked by %s; only they or someone with lock:force may extend it", app, env, l.Owner)
		case l.Expires.IsZero():
			return refuse("the lock on %s/%s does not expire", app, env)
		}
		from := l.Expires
		if now := e.now(); from.Before(now) {
			from = now
		}
		l.Expires, l.Reminded = from.Add(d), false
		out.Outcome = "extended to " + l.Expires.UTC().Format(time.RFC3339)
		got = *l
		return nil
	}, in, out)
	if errors.Is(err, ErrNotFound) {
		return Lock{}, refuse("%s/%s is not locked", app, env)
	}
	return got, err
}

// RemindLead is how long before expiry the holder is reminded: a quarter
// of the lock's life, at most 10 minutes, at least a second.
func RemindLead(l Lock) time.Duration {
	lead := l.Expires.Sub(l.Since) / 4
	return min(max(lead, time.Second), 10*time.Minute)
}

// LockTick is what one pass over the manual locks found.
type LockTick struct {
	Due      []Lock // about to expire, holder not reminded yet
	Released []Lock // expired and released now
}

// TickLocks releases every manual lock whose expiry has passed (an audit
// intent and outcome by LockExpiryWho each) and lists those about to
// expire whose holder has not been reminded. Run it periodically; mark a
// reminder sent with MarkReminded.
func (e *Engine) TickLocks(ctx context.Context) (LockTick, error) {
	locks, err := e.store.Locks(ctx)
	if err != nil {
		return LockTick{}, err
	}
	var t LockTick
	now := e.now()
	for _, l := range locks {
		if l.JobID != 0 || l.Expires.IsZero() {
			continue
		}
		switch {
		case !now.Before(l.Expires):
			ok, err := e.expireLock(ctx, l)
			if err != nil {
				return t, err
			}
			if ok {
				t.Released = append(t.Released, l)
			}
		case !l.Reminded && !now.Before(l.Expires.Add(-RemindLead(l))):
			t.Due = append(t.Due, l)
		}
	}
	return t, nil
}

// expireLock releases l if it is still the same lock and still expired
// (it may have been extended or released since it was read).
func (e *Engine) expireLock(ctx context.Context, l Lock) (bool, error) {
	in := audit.Intent(LockExpiryWho, "unlock", l.App, l.Env, []string{"expired"})
	out := audit.Closing(in, 0, fmt.Sprintf("lock expired (was held by %s since %s: %s)", l.Owner, l.Since.UTC().Format(time.RFC3339), l.Reason))
	err := e.store.ReleaseLock(ctx, l.App, l.Env, func(cur Lock) error {
		if !cur.Since.Equal(l.Since) || cur.JobID != 0 || cur.Expires.IsZero() || e.now().Before(cur.Expires) {
			return errLockChanged
		}
		return nil
	}, in, out)
	if errors.Is(err, errLockChanged) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

var errLockChanged = errors.New("the lock changed since it was read")

// MarkReminded records that l's holder was reminded, unless the lock has
// changed since.
func (e *Engine) MarkReminded(ctx context.Context, l Lock) error {
	err := e.store.UpdateLock(ctx, l.App, l.Env, func(cur *Lock) error {
		if !cur.Since.Equal(l.Since) || !cur.Expires.Equal(l.Expires) {
			return errLockChanged
		}
		cur.Reminded = true
		return nil
	})
	if errors.Is(err, errLockChanged) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// LockBySince finds the manual lock taken at since (a reminder button names
// its lock by that instant): ErrNotFound once that lock is gone.
func (e *Engine) LockBySince(ctx context.Context, since time.Time) (Lock, error) {
	locks, err := e.store.Locks(ctx)
	if err != nil {
		return Lock{}, err
	}
	for _, l := range locks {
		if l.JobID == 0 && l.Since.Equal(since) {
			return l, nil
		}
	}
	return Lock{}, ErrNotFound
}

// FormatDuration writes d as a person would: 2h, 1h30m, 45m, 90s → 1m30s.
func FormatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	out := ""
	if h > 0 {
		out += fmt.Sprintf("%dh", h)
	}
	if m > 0 {
		out += fmt.Sprintf("%dm", m)
	}
	if s > 0 || out == "" {
		out += fmt.Sprintf("%ds", s)
	}
	return out
}
