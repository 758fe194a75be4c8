package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// Buttons of a lock reminder. Their token is the lock's Since in Unix
// nanoseconds: it names that one lock, so a reminder left over from a lock
// since released and taken again presses nothing.
const (
	ButtonExtendLock = "lockextend"
	ButtonUnlockLock = "lockrelease"
)

// extendBy is what the reminder's Extend button adds.
const extendBy = time.Hour

func lockedMessage(l deploy.Lock) notify.Message {
	m := notify.Message{Title: fmt.Sprintf("Locked %s/%s", l.App, l.Env), Style: notify.StyleWarning,
		Text: "reason: " + l.Reason}
	if l.Expires.IsZero() {
		m.Fields = []notify.Field{{Name: "expires", Value: "never: /unlock " + l.App + " " + l.Env + " when done"}}
	} else {
		m.Fields = []notify.Field{{Name: "expires", Value: expiry(l, l.Since)}}
	}
	return m
}

// expiry is "in 2h (14:05 UTC)" as seen at now.
func expiry(l deploy.Lock, now time.Time) string {
	if l.Expires.IsZero() {
		return "never"
	}
	// Rounded up: "in 0s" would read as already gone.
	left := max(l.Expires.Sub(now), 0)
	if r := left % time.Second; r != 0 {
		left += time.Second - r
	}
	return fmt.Sprintf("in %s (%s)", deploy.FormatDuration(left), l.Expires.UTC().Format("2006-01-02 15:04:05 MST"))
}

func (d *Dispatcher) lock(ctx context.Context, c *call) Reply {
	ttl := c.cmd.For
	if ttl == 0 {
		ttl = d.cat()[c.cmd.App][c.cmd.Env].LockTTL
	}
	l, err := d.engine.LockFor(ctx, c.cmd.App, c.cmd.Env, c.cmd.Reason, c.who, ttl)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	return d.say(ctx, c, lockedMessage(l), false)
}

func (d *Dispatcher) unlock(ctx context.Context, c *call) Reply {
	force := c.actor.Has("lock:force") // the permission is checked; force also lets it act on another's lock
	if c.cardJob != 0 {
		// Release lock on a job's card releases that job's lock only.
		l, err := d.store.Lock(ctx, c.cmd.App, c.cmd.Env)
		if err != nil || l.JobID != c.cardJob {
			by := ""
			if j, jerr := d.store.Job(ctx, c.cardJob); jerr == nil && j.LockReleasedBy != "" {
				by = " (released by " + j.LockReleasedBy + ")"
			}
			return d.fail(ctx, c, &deploy.Refusal{Msg: fmt.Sprintf("job #%d no longer holds the lock of %s/%s%s", c.cardJob, c.cmd.App, c.cmd.Env, by)})
		}
	}
	held, err := d.engine.Unlock(ctx, c.cmd.App, c.cmd.Env, c.who, force)
	if err != nil {
		if errors.Is(err, deploy.ErrNotFound) {
			err = &deploy.Refusal{Msg: fmt.Sprintf("%s/%s is not locked", c.cmd.App, c.cmd.Env)}
		}
		return d.fail(ctx, c, err)
	}
	was := fmt.Sprintf("was held by %s: %s", held.Owner, held.Reason)
	if held.JobID != 0 {
		was = fmt.Sprintf("was held by %s's job #%d: %s", held.Owner, held.JobID, held.Reason)
	}
	return d.say(ctx, c, notify.Message{Title: fmt.Sprintf("Unlocked %s/%s", c.cmd.App, c.cmd.Env), Style: notify.StyleSuccess,
		Text: was}, false)
}

func (d *Dispatcher) extend(ctx context.Context, c *call) Reply {
	force := c.actor.Has("lock:force") // the permission is checked; force also lets it act on another's lock
	l, err := d.engine.ExtendLock(ctx, c.cmd.App, c.cmd.Env, c.who, c.cmd.For, force)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	return d.say(ctx, c, notify.Message{Title: fmt.Sprintf("Extended the lock on %s/%s", l.App, l.Env),
		Style: notify.StyleWarning, Text: "expires " + expiry(l, time.Now())}, false)
}

func (d *Dispatcher) locks(ctx context.Context, c *call) Reply {
	ls, err := d.store.Locks(ctx)
	if err != nil {
		return d.fail(ctx, c, err)
	}
	ls = slices.DeleteFunc(ls, func(l deploy.Lock) bool { return !c.actor.Can(PermView, l.App, l.Env) })
	m := notify.Message{Title: "Locks"}
	now := time.Now()
	for _, l := range ls {
		what := l.Reason
		if l.JobID != 0 {
			what = fmt.Sprintf("job #%d (%s)", l.JobID, l.Reason)
		}
		exp := "no expiry"
		if l.JobID != 0 {
			exp = "until its job ends (or, if interrupted, is unlocked)"
		} else if !l.Expires.IsZero() {
			exp = "expires " + expiry(l, now)
		}
		m.Code = append(m.Code, fmt.Sprintf("%s/%s  by %s  %s  age %s  %s", l.App, l.Env, l.Owner, what,
			deploy.FormatDuration(now.Sub(l.Since)), exp))
	}
	if len(ls) == 0 {
		m.Text = "nothing is locked"
	}
	return d.read(ctx, c, m)
}

// lockButtonCommand turns a reminder button back into the command it
// stands for, if its lock still exists.
func (d *Dispatcher) lockButtonCommand(ctx context.Context, verb, token string) (string, error) {
	ns, err := strconv.ParseInt(token, 10, 64)
	if err != nil || ns <= 0 {
		return "", errors.New("this button is not one of shipbot's")
	}
	l, err := d.engine.LockBySince(ctx, time.Unix(0, ns))
	if errors.Is(err, deploy.ErrNotFound) {
		return "", errors.New("the lock this reminder was about is gone (unlocked or expired)")
	}
	if err != nil {
		return "", err
	}
	if verb == ButtonExtendLock {
		return "/extend " + l.App + " " + l.Env + " " + deploy.FormatDuration(extendBy), nil
	}
	return "/unlock " + l.App + " " + l.Env, nil
}

// WatchLocks is the periodic pass over expiring locks: the holder of a lock
// about to expire is reminded in the chat it was taken in, with Extend and
// Unlock buttons; an expired lock is released (audited by the engine) and
// that chat told. A reminder is marked sent only after it was sent, so a
// crash between the two repeats it rather than losing it.
func (d *Dispatcher) WatchLocks(ctx context.Context) error {
	t, err := d.engine.TickLocks(ctx)
	if err != nil {
		return err
	}
	for _, l := range t.Released {
		d.tell(ctx, l, "expired", notify.Message{Title: fmt.Sprintf("Lock on %s/%s expired", l.App, l.Env), Style: notify.StyleSuccess,
			Text: fmt.Sprintf("%s's lock (%s), taken %s, was released; deploys may run again.", l.Owner, l.Reason,
				l.Since.UTC().Format("2006-01-02 15:04 MST"))})
	}
	now := time.Now()
	for _, l := range t.Due {
		token := strconv.FormatInt(l.Since.UnixNano(), 10)
		m := notify.Message{Title: fmt.Sprintf("Lock on %s/%s expires %s", l.App, l.Env, expiry(l, now)), Style: notify.StyleWarning,
			Text: fmt.Sprintf("%s, your lock (%s) is released then and deploys may run. Still need it?", l.Owner, l.Reason),
			Buttons: []notify.Button{
				{Label: "Extend " + deploy.FormatDuration(extendBy), Data: ButtonExtendLock + ":" + token, Style: notify.StyleWarning},
				{Label: "Unlock", Data: ButtonUnlockLock + ":" + token, Style: notify.StyleSuccess},
			}}
		if !d.tell(ctx, l, "reminder", m) {
			continue
		}
		if err := d.engine.MarkReminded(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// tell sends m to the chat l was taken in and reports whether it went out
// (into the outbox, with Options.Notices: the relay retries it from there).
// what names the notice in the lock's outbox topic, so a reminder written
// twice (a crash before MarkReminded) is one message.
func (d *Dispatcher) tell(ctx context.Context, l deploy.Lock, what string, m notify.Message) bool {
	ch, err := notify.ParseChannel(l.Chat)
	if err != nil {
		d.log.Warn("lock has no chat to tell", "app", l.App, "env", l.Env, "chat", l.Chat)
		return true // nowhere to send it: do not try again every tick
	}
	if d.notices != nil {
		topic := fmt.Sprintf("lock:%s/%s:%d:%s", l.App, l.Env, l.Since.UnixNano(), what)
		if err := d.notices(ctx, notify.Post{Topic: topic, Channel: ch, Message: m}); err != nil {
			d.log.Warn("lock notice not queued", "app", l.App, "env", l.Env, "chat", l.Chat, "err", err)
			return false
		}
		return true
	}
	if _, err := d.sender.Send(ctx, ch, m); err != nil {
		d.log.Warn("lock notice not sent", "app", l.App, "env", l.Env, "chat", l.Chat, "err", err)
		return false
	}
	return true
}
