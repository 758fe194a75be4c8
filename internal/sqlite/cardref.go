package sqlite

import (
	"context"
	"fmt"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

var _ notify.CardRefs = (*DB)(nil)

// SaveCardRef implements notify.CardRefs. The engine's own job updates keep
// it: they write card_ref only when they carry one.
func (db *DB) SaveCardRef(ctx context.Context, jobID int64, ref string) error {
	return db.write(ctx, func(w *writer) error {
		res, err := w.exec(`UPDATE jobs SET card_ref = ? WHERE id = ?`, ref, jobID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("job #%d: %w", jobID, deploy.ErrNotFound)
		}
		return nil
	})
}
