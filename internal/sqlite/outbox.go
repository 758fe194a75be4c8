package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

var (
	_ notify.Outbox   = (*DB)(nil)
	_ notify.Ingester = (*DB)(nil)
)

// Enqueue writes posts to the outbox in one transaction: a new row per
// (topic, chat), or the next version of an existing one.
func (db *DB) Enqueue(ctx context.Context, posts ...notify.Post) error {
	return db.write(ctx, func(w *writer) error { return w.enqueue(time.Now(), posts) })
}

func (w *writer) enqueue(now time.Time, posts []notify.Post) error {
	for _, p := range posts {
		msg, err := json.Marshal(p.Message)
		if err != nil {
			return err
		}
		ms := now.UnixMilli()
		if p.Closing != nil {
			replaced, err := w.replace(ms, p, msg)
			if err != nil {
				return err
			}
			if replaced {
				continue
			}
		}
		// A new version is due at once and gets a fresh set of attempts; a
		// dead row comes back to life with news. The same message again is
		// no news: no version, so no chat.update/editMessageText that
		// changes nothing and spends the chat's rate limit.
		if _, err := w.exec(`INSERT INTO outbox (topic, channel, message, version, next_attempt, queued)
			VALUES (?, ?, ?, 1, ?, ?)
			ON CONFLICT (topic, channel) DO UPDATE SET message = excluded.message, version = version + 1,
				attempts = 0, next_attempt = excluded.next_attempt, dead = 0, last_error = '', queued = excluded.queued
			WHERE outbox.message IS NOT excluded.message`,
			p.Topic, p.Channel.String(), string(msg), ms, ms); err != nil {
			return err
		}
	}
	return nil
}

// replace gives p's topic a new message in p's channel when it already has
// one: the old message gets p.Closing as its last edit (a row of its own
// that only edits), and the topic's row forgets its ref, so the relay posts
// p.Message anew. It reports false when the topic has no message yet.
func (w *writer) replace(ms int64, p notify.Post, msg []byte) (bool, error) {
	var ref string
	err := w.scan(`SELECT ref FROM outbox WHERE topic = ? AND channel = ?`, []any{p.Topic, p.Channel.String()}, &ref)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && ref == "") {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	closing, err := json.Marshal(p.Closing)
	if err != nil {
		return false, err
	}
	if _, err := w.exec(`INSERT INTO outbox (topic, channel, message, version, ref, edit_only, next_attempt, queued)
		VALUES (?, ?, ?, 1, ?, 1, ?, ?)
		ON CONFLICT (topic, channel) DO UPDATE SET message = excluded.message, version = version + 1, ref = excluded.ref,
			edit_only = 1, attempts = 0, next_attempt = excluded.next_attempt, dead = 0, last_error = '', queued = excluded.queued`,
		notify.ClosedTopic(p.Topic), p.Channel.String(), string(closing), ref, ms, ms); err != nil {
		return false, err
	}
	_, err = w.exec(`UPDATE outbox SET message = ?, version = version + 1, ref = '', attempts = 0, next_attempt = ?, dead = 0,
		last_error = '', queued = ? WHERE topic = ? AND channel = ?`, string(msg), ms, ms, p.Topic, p.Channel.String())
	return err == nil, err
}

// Ingest implements notify.Ingester: the dedupe key, the tracked state and
// its outbox rows commit together, or none of them does.
func (db *DB) Ingest(ctx context.Context, key, topic string,
	plan func(prev *notify.Tracked) (next *notify.Tracked, posts []notify.Post, err error)) (dup bool, err error) {
	err = db.write(ctx, func(w *writer) error {
		now := time.Now()
		res, err := w.exec(`INSERT INTO seen (key, time) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, formatTime(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			dup = true
			return nil
		}
		var prev *notify.Tracked
		var p notify.Tracked
		var event string
		err = w.scan(`SELECT topic, project, sha, status, event FROM pipelines WHERE topic = ?`, []any{topic},
			&p.Topic, &p.Project, &p.SHA, &p.Status, &event)
		switch {
		case err == nil:
			p.Event = []byte(event)
			prev = &p
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		// plan merges the event into prev inside this transaction: two
		// deliveries of one pipeline never merge into the same old state.
		next, posts, err := plan(prev)
		if err != nil || next == nil {
			return err
		}
		if _, err := w.exec(`INSERT INTO pipelines (topic, project, sha, status, event, updated) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (topic) DO UPDATE SET project = excluded.project, sha = excluded.sha, status = excluded.status,
				event = excluded.event, updated = excluded.updated`,
			topic, next.Project, next.SHA, next.Status, string(next.Event), formatTime(now)); err != nil {
			return err
		}
		return w.enqueue(now, posts)
	})
	return dup, err
}

// PipelineTopics returns the topics of project's pipelines at sha, newest first.
func (db *DB) PipelineTopics(ctx context.Context, project, sha string) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT topic FROM pipelines WHERE project = ? AND sha = ? ORDER BY updated DESC`, project, sha)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// SentRef returns the message sent for topic in ch, if one was.
func (db *DB) SentRef(ctx context.Context, topic string, ch notify.Channel) (*notify.Ref, error) {
	var raw string
	err := db.r.QueryRowContext(ctx, `SELECT ref FROM outbox WHERE topic = ? AND channel = ?`, topic, ch.String()).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) || raw == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeRef(raw)
}

type storedRef struct {
	Channel string `json:"chat"`
	ID      string `json:"id"`
}

func decodeRef(raw string) (*notify.Ref, error) {
	var s storedRef
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("outbox ref %q: %w", raw, err)
	}
	ch, err := notify.ParseChannel(s.Channel)
	if err != nil {
		return nil, err
	}
	return &notify.Ref{Channel: ch, ID: s.ID}, nil
}

// Due implements notify.Outbox.
func (db *DB) Due(ctx context.Context, now time.Time, limit int, busy map[int64]bool) ([]notify.Delivery, error) {
	q := `SELECT id, topic, channel, message, version, ref, attempts, queued, edit_only FROM outbox
		WHERE delivered < version AND dead = 0 AND next_attempt <= ?`
	args := []any{now.UnixMilli()}
	if len(busy) > 0 {
		q += ` AND id NOT IN (` + strings.TrimSuffix(strings.Repeat("?,", len(busy)), ",") + `)`
		for id := range busy {
			args = append(args, id)
		}
	}
	q += ` ORDER BY next_attempt, id LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []notify.Delivery
	for rows.Next() {
		var d notify.Delivery
		var ch, msg, ref string
		var queued int64
		if err := rows.Scan(&d.ID, &d.Topic, &ch, &msg, &d.Version, &ref, &d.Attempts, &queued, &d.EditOnly); err != nil {
			return nil, err
		}
		if d.Channel, err = notify.ParseChannel(ch); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(msg), &d.Message); err != nil {
			return nil, fmt.Errorf("outbox row %d: %w", d.ID, err)
		}
		if ref != "" {
			if d.Ref, err = decodeRef(ref); err != nil {
				return nil, err
			}
		}
		d.Queued = time.UnixMilli(queued)
		out = append(out, d)
	}
	return out, rows.Err()
}

// SaveRef implements notify.Outbox.
func (db *DB) SaveRef(ctx context.Context, id int64, ref notify.Ref) error {
	raw, err := json.Marshal(storedRef{Channel: ref.Channel.String(), ID: ref.ID})
	if err != nil {
		return err
	}
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`UPDATE outbox SET ref = ? WHERE id = ?`, string(raw), id)
		return err
	})
}

// Delivered implements notify.Outbox.
func (db *DB) Delivered(ctx context.Context, id, version int64) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`UPDATE outbox SET delivered = max(delivered, ?), attempts = 0, last_error = '' WHERE id = ?`, version, id)
		return err
	})
}

// Retry implements notify.Outbox.
func (db *DB) Retry(ctx context.Context, id int64, attempts int, next time.Time, lastErr string, dead bool) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ?, dead = ? WHERE id = ?`,
			attempts, next.UnixMilli(), lastErr, dead, id)
		return err
	})
}

// Defer implements notify.Outbox.
func (db *DB) Defer(ctx context.Context, id int64, next time.Time) error {
	return db.write(ctx, func(w *writer) error {
		_, err := w.exec(`UPDATE outbox SET next_attempt = ? WHERE id = ?`, next.UnixMilli(), id)
		return err
	})
}

// ForgetDeliveredBefore deletes outbox rows whose newest version was
// delivered and written before t: every job's card, every notice and
// pipeline card would otherwise stay forever. A later change of what such
// a row reported is posted as a new message. Rows still due and dead
// letters stay.
func (db *DB) ForgetDeliveredBefore(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(w *writer) error {
		res, err := w.exec(`DELETE FROM outbox WHERE delivered >= version AND dead = 0 AND queued < ?`, t.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// OutboxDepth counts rows waiting for delivery and dead letters.
func (db *DB) OutboxDepth(ctx context.Context) (pending, dead int, err error) {
	err = db.r.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN delivered < version AND dead = 0 THEN 1 ELSE 0 END), 0),
		coalesce(sum(dead), 0) FROM outbox`).Scan(&pending, &dead)
	return pending, dead, err
}

// OutboxPendingIn counts rows waiting for delivery to chats of platform
// ("shell"): the terminal waits for its own messages, not for a chat
// platform that is down.
func (db *DB) OutboxPendingIn(ctx context.Context, platform string) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE delivered < version AND dead = 0
		AND substr(channel, 1, length(?) + 1) = ? || ':'`, platform, platform).Scan(&n)
	return n, err
}

// JobCounts counts jobs by state, for /metrics.
func (db *DB) JobCounts(ctx context.Context) (map[string]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT state, count(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}
