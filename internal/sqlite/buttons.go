package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/shipbot/shipbot/internal/notify"
)

var _ notify.ButtonStore = (*DB)(nil)

// BindButton implements notify.ButtonStore.
func (db *DB) BindButton(ctx context.Context, b notify.BoundButton) (string, error) {
	id := b.ID
	err := db.write(ctx, func(w *writer) error {
		if b.Message != "" {
			var have string
			err := w.scan(`SELECT id FROM buttons WHERE chat = ? AND message = ? AND data = ? LIMIT 1`,
				[]any{b.Chat, b.Message, b.Data}, &have)
			if err == nil {
				// created is when the button was last bound: a card still
				// being edited keeps its buttons past ForgetButtonsBefore.
				id = have
				_, err := w.exec(`UPDATE buttons SET created = ? WHERE id = ?`, formatTime(b.Created), id)
				return err
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		_, err := w.exec(`INSERT INTO buttons (id, data, chat, message, created) VALUES (?,?,?,?,?)`,
			b.ID, b.Data, b.Chat, b.Message, formatTime(b.Created))
		return err
	})
	return id, err
}

// PostedButtons implements notify.ButtonStore.
func (db *DB) PostedButtons(ctx context.Context, ids []string, chat, message string) error {
	return db.write(ctx, func(w *writer) error {
		for _, id := range ids {
			if _, err := w.exec(`UPDATE buttons SET chat = ?, message = ? WHERE id = ?`, chat, message, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// Button implements notify.ButtonStore.
func (db *DB) Button(ctx context.Context, id string) (notify.BoundButton, error) {
	b := notify.BoundButton{ID: id}
	var created string
	err := db.r.QueryRowContext(ctx, `SELECT data, chat, message, created FROM buttons WHERE id = ?`, id).
		Scan(&b.Data, &b.Chat, &b.Message, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return b, notify.ErrNoButton
	}
	if err != nil {
		return b, err
	}
	b.Created, err = parseTime(created)
	return b, err
}

// ForgetButtonsBefore deletes buttons last bound before t. A press on one of
// them is refused as not shipbot's, as for any unknown id; by then what it
// stood for (an approval, a lock, a job's card) has long expired or ended.
func (db *DB) ForgetButtonsBefore(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(w *writer) error {
		res, err := w.exec(`DELETE FROM buttons WHERE created < ?`, formatTime(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
