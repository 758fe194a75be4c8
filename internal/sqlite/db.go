// Package sqlite is shipbot's one database (modernc.org/sqlite, pure Go): WAL,
// synchronous=FULL, foreign keys, embedded versioned migrations. It implements
// deploy.Store and audit.Store.
//
// Every write goes through one goroutine that commits in groups: the writes
// waiting when a transaction starts all run in it, each inside its own
// SAVEPOINT, and one fsync makes them durable together. That is how the bot
// does thousands of audited commands a second on a disk that does a few
// thousand fsyncs a second, and it keeps the audit hash chain in strict order
// without any locking in the callers. Reads use a separate pool: WAL lets them
// run beside the writer and see the last committed state.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("database is closed")

// DB is shipbot's database. Close it when done.
type DB struct {
	wdb *sql.DB // holds the writer's one connection
	r   *sql.DB // readers
	w   *writer // owned by the writer goroutine once Open returns

	// mu orders sends on reqs against Close closing it, so that no request
	// is queued after the writer has drained the queue and left.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the writer goroutine has returned
}

// Open opens the database at path, creating it (and its directory, 0700) if
// needed, and applies any migration it has not seen yet.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("database path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	// SQLite gives the -wal and -shm files the mode of the database file, so
	// creating it 0600 first keeps all three private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("database file: %w", err)
	}
	f.Close()

	wdb, err := sql.Open("sqlite", dsn(path, writerParams))
	if err != nil {
		return nil, err
	}
	// One connection, never recycled: the writer goroutine keeps it for life.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	conn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	fail := func(err error) (*DB, error) {
		conn.Close()
		wdb.Close()
		return nil, err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fail(fmt.Errorf("opening %s: %w", path, err))
	}
	if !strings.EqualFold(mode, "wal") {
		// Without WAL readers block the writer and durability differs.
		return fail(fmt.Errorf("opening %s: journal mode is %q, not wal (is the file system local?)", path, mode))
	}
	if err := migrate(ctx, conn); err != nil {
		return fail(fmt.Errorf("migrating %s: %w", path, err))
	}
	w := &writer{conn: conn, stmts: map[string]*sql.Stmt{}}
	if w.head, err = readHead(ctx, conn); err != nil {
		w.closeStmts()
		return fail(fmt.Errorf("reading the audit head of %s: %w", path, err))
	}

	r, err := sql.Open("sqlite", dsn(path, readerParams))
	if err != nil {
		return fail(err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)

	db := &DB{wdb: wdb, r: r, w: w, reqs: make(chan *request, maxBatch), done: make(chan struct{})}
	go db.run()
	return db, nil
}

// The writer's BEGIN takes the write lock at once (_txlock=immediate), so a
// transaction never fails half way for want of it. Readers are query_only:
// a write sent to them by mistake fails instead of racing the writer.
var (
	writerParams = []string{"_pragma=busy_timeout(5000)", "_pragma=journal_mode(WAL)", "_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(1)", "_txlock=immediate"}
	readerParams = []string{"_pragma=busy_timeout(5000)", "_pragma=foreign_keys(1)", "_pragma=query_only(1)"}
)

// dsn builds a "file:" URI. SQLite decodes %XX in the path, so the characters
// that would end the path early are escaped.
func dsn(path string, params []string) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + p + "?" + strings.Join(params, "&")
}

// Close lets the writer finish the writes already queued, then closes the
// database. Writes after Close return ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		<-db.done
		return nil
	}
	db.closed = true
	close(db.reqs)
	db.mu.Unlock()
	<-db.done
	db.w.closeStmts()
	return errors.Join(db.w.conn.Close(), db.wdb.Close(), db.r.Close())
}

// Ping checks that the database answers reads and that the writer can take
// the write lock, for /readyz.
func (db *DB) Ping(ctx context.Context) error {
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	var seq int64
	if err := db.r.QueryRowContext(ctx, `SELECT seq FROM audit_head WHERE id = 1`).Scan(&seq); err != nil {
		return fmt.Errorf("database read: %w", err)
	}
	if err := db.write(ctx, func(*writer) error { return nil }); err != nil {
		return fmt.Errorf("database write: %w", err)
	}
	return nil
}

// Times are stored with exactly nine fractional digits so that comparing the
// text compares the times (RFC3339Nano drops trailing zeros, and "05Z" sorts
// after "05.5Z").
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}
