package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// A write that finds the disk full is reported as that condition, and
// nothing is written. SQLite's max_page_count stands in for a full disk: it
// fails the write with the same SQLITE_FULL (https://sqlite.org/pragma.html#pragma_max_page_count).
func TestDiskFullIsNamed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages int
	if err := db.r.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := db.write(ctx, func(w *writer) error {
		_, err := w.exec(`PRAGMA max_page_count = ` + strconv.Itoa(pages))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	big := make([]string, 2000)
	for i := range big {
		big[i] = "a line of output that takes some room on a page"
	}
	err = db.Append(ctx, &audit.Event{Kind: audit.KindDenial, Actor: "alice", Command: "x", Args: big})
	if deploy.ErrorCode(err) != deploy.CodeDiskFull {
		t.Fatalf("append on a full database = %v, want a disk-full condition", err)
	}
	var de *deploy.Error
	if !errors.As(err, &de) || de.Msg == "" {
		t.Fatalf("no message for the person: %v", err)
	}
}
