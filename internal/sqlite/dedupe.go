package sqlite

import (
	"context"
	"time"
)

// FirstSeen records key and reports whether it was new. The record is
// durable before FirstSeen returns true, so an event redelivered after a
// crash is recognised; the price is that an event whose handling crashed
// after this point is not retried, which for chat commands is the safer side.
func (db *DB) FirstSeen(ctx context.Context, key string) (bool, error) {
	var fresh bool
	err := db.write(ctx, func(w *writer) error {
		res, err := w.exec(`INSERT INTO seen (key, time) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, formatTime(time.Now()))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	return fresh, err
}

// ForgetSeenBefore deletes dedupe keys older than t; the platforms stop
// redelivering long before (Telegram keeps updates 24 hours).
func (db *DB) ForgetSeenBefore(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(w *writer) error {
		res, err := w.exec(`DELETE FROM seen WHERE time < ?`, formatTime(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
