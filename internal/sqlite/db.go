// Package sqlite is shipbot's one database (modernc.org/sqlite, pure Go):
// WAL, synchronous=FULL, foreign keys, embedded versioned migrations. It
// implements deploy.Store and audit.Store.
//
// All writes go through one goroutine that commits them in groups: the
// operations waiting when a transaction starts run in it, each inside its own
// SAVEPOINT, and one fsync makes them all durable. That is how the bot does
// several thousand audited commands a second on a disk that does a few
// thousand fsyncs a second, and it keeps the audit hash chain strictly
// ordered without locks in the callers.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// maxBatch bounds one group commit so one transaction never grows without end.
const maxBatch = 256

// DB is the database. Close it when done.
type DB struct {
	w    *sql.DB // the one writer connection, used only by the writer goroutine
	r    *sql.DB // readers (WAL lets them run beside the writer)
	reqs chan *writeReq
	quit chan struct{}
	done chan struct{}
	once sync.Once

	headSeq  int64 // owned by the writer goroutine
	headHash string
}

type writeReq struct {
	fn  func(w *writer) error
	err chan error
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	db := &DB{w: w, r: r, reqs: make(chan *writeReq, maxBatch), quit: make(chan struct{}), done: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		db.closeConns()
		return nil, fmt.Errorf("migrating %s: %w", path, err)
	}
	if err := w.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&db.headSeq, &db.headHash); err != nil {
		db.closeConns()
		return nil, fmt.Errorf("reading audit head: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.closeConns()
		return nil, err
	}
	go db.writeLoop()
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	var version int
	if err := db.w.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		n, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", name)
		}
		if n <= version {
			continue
		}
		body, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			return err
		}
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, n)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		version = n
	}
	return nil
}

// Close stops the writer after the queued writes and closes the database.
func (db *DB) Close() error {
	db.once.Do(func() { close(db.quit) })
	<-db.done
	return db.closeConns()
}

func (db *DB) closeConns() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// Ping checks the database answers, for /readyz.
func (db *DB) Ping(ctx context.Context) error { return db.r.PingContext(ctx) }

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("database is closed")

// write runs fn in the writer goroutine inside a savepoint of the current
// group transaction and returns once that transaction has committed.
func (db *DB) write(ctx context.Context, fn func(w *writer) error) error {
	req := &writeReq{fn: fn, err: make(chan error, 1)}
	select {
	case <-db.quit:
		return ErrClosed
	default:
	}
	select {
	case db.reqs <- req:
	case <-db.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the write is not abandoned: its outcome is what the
	// database now holds, and the caller must know it.
	select {
	case err := <-req.err:
		return err
	case <-db.done:
		// The writer ended; it answers everything it took before ending.
		select {
		case err := <-req.err:
			return err
		default:
			return ErrClosed
		}
	}
}

func (db *DB) writeLoop() {
	defer close(db.done)
	for {
		var first *writeReq
		select {
		case first = <-db.reqs:
		case <-db.quit:
			// Finish what was queued before Close.
			select {
			case first = <-db.reqs:
			default:
				return
			}
		}
		batch := []*writeReq{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.commit(batch)
	}
}

// writer is what a write function gets: the group transaction and the
// running head of the audit chain.
type writer struct {
	ctx  context.Context
	tx   *sql.Tx
	seq  int64
	hash string
	now  time.Time
}

func (db *DB) commit(batch []*writeReq) {
	ctx := context.Background()
	errs := make([]error, len(batch))
	fail := func(err error) {
		for _, r := range batch {
			r.err <- err
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	w := &writer{ctx: ctx, tx: tx, seq: db.headSeq, hash: db.headHash, now: time.Now().UTC()}
	for i, r := range batch {
		seq, hash := w.seq, w.hash
		if _, err := tx.ExecContext(ctx, `SAVEPOINT op`); err != nil {
			errs[i] = err
			continue
		}
		if err := r.fn(w); err != nil {
			errs[i] = err
			w.seq, w.hash = seq, hash
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO op`); rerr != nil {
				tx.Rollback()
				fail(fmt.Errorf("rolling back a failed write: %w (after %v)", rerr, err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE op`); err != nil {
			tx.Rollback()
			fail(err)
			return
		}
	}
	if w.seq != db.headSeq {
		if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, w.seq, w.hash); err != nil {
			tx.Rollback()
			fail(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	db.headSeq, db.headHash = w.seq, w.hash
	for i, r := range batch {
		r.err <- errs[i]
	}
}

// append seals and inserts events after the current head.
func (w *writer) append(jobID int64, events []*audit.Event) error {
	for _, e := range events {
		if e.JobID == 0 {
			e.JobID = jobID
		}
		audit.Prepare(w.hash, w.seq+1, w.now, e)
		args, err := jsonText(e.Args)
		if err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO audit (seq, time, kind, actor, identity, chat, command, args, app, env,
			decision, job_id, intent_seq, outcome, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			e.Seq, formatTime(e.Time), string(e.Kind), e.Actor, e.Identity, e.Chat, e.Command, args, e.App, e.Env,
			e.Decision, e.JobID, e.IntentSeq, e.Outcome, e.PrevHash, e.Hash); err != nil {
			if strings.Contains(err.Error(), "UNIQUE") {
				return fmt.Errorf("intent %d already has an outcome: %w", e.IntentSeq, err)
			}
			return err
		}
		w.seq, w.hash = e.Seq, e.Hash
	}
	return nil
}

// Append implements audit.Store.
func (db *DB) Append(ctx context.Context, events ...*audit.Event) error {
	return db.write(ctx, func(w *writer) error { return w.append(0, events) })
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
