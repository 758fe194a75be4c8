package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/notify"
)

// maxBatch bounds one group commit, so one transaction (and the wait of the
// first request in it) never grows without end.
const maxBatch = 256

// request is one write: op runs inside the group transaction, in its own
// savepoint, and its error (or the commit's) is sent on done.
type request struct {
	ctx  context.Context
	op   func(w *writer) error
	done chan error
}

// head is the last row of the audit hash chain.
type head struct {
	seq  int64
	hash string
}

// writer is the state of the writer goroutine: its connection, prepared
// statements and the chain head, which only it reads or changes.
type writer struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
	head  head

	// after holds what the ops of the current batch change in their
	// callers' values (ids, seqs, hashes); it runs only once the batch has
	// committed, so a caller never sees values of a write that was undone.
	after []func()

	// jobs turns a job's change into outbox rows written in the same
	// transaction (see ReportJobs); wake runs after they commit.
	jobs func(ctx context.Context, prev deploy.State, j deploy.Job) []notify.Post
	wake func()
}

// write runs op in the writer goroutine inside the next group transaction and
// returns once that transaction has committed or failed. op must not call
// back into the DB's write methods (the writer would wait for itself); it may
// read through the DB's read methods, which see the last committed state.
func (db *DB) write(ctx context.Context, op func(w *writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, op: op, done: make(chan error, 1)}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	select {
	case db.reqs <- r:
	case <-ctx.Done():
		db.mu.RUnlock()
		return ctx.Err()
	}
	db.mu.RUnlock()
	// Once queued the write is not abandoned: the caller must learn what
	// the database now holds. A request whose ctx ends before it runs is
	// answered with ctx's error without running.
	return diskFull(<-r.done)
}

// run is the writer goroutine: it takes the first waiting request and every
// other one already queued (up to maxBatch), and commits them together.
func (db *DB) run() {
	defer close(db.done)
	batch := make([]*request, 0, maxBatch)
	for {
		first, ok := <-db.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.w.commit(batch)
		clear(batch) // let the requests' memory go while the queue is idle
	}
}

// commit runs batch in one transaction, each op in its own savepoint: an op
// that fails is rolled back alone and gets its error; the rest commit. If the
// transaction itself fails, every op gets that error and the chain head goes
// back to what the database holds.
func (w *writer) commit(batch []*request) {
	errs := make([]error, len(batch))
	start := w.head
	w.after = w.after[:0]
	abort := func(err error) {
		w.rollback(start)
		for _, r := range batch {
			r.done <- err
		}
	}
	if _, err := w.exec(`BEGIN IMMEDIATE`); err != nil {
		abort(fmt.Errorf("begin: %w", err))
		return
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err // never ran
			continue
		}
		var fatal error
		errs[i], fatal = w.runOp(r.op)
		if fatal != nil {
			abort(fatal)
			return
		}
	}
	if w.head != start {
		if _, err := w.exec(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, w.head.seq, w.head.hash); err != nil {
			abort(fmt.Errorf("updating the audit head: %w", err))
			return
		}
	}
	if _, err := w.exec(`COMMIT`); err != nil {
		abort(fmt.Errorf("commit: %w", err))
		return
	}
	for _, f := range w.after {
		f()
	}
	w.after = w.after[:0]
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// runOp runs op inside a savepoint. err is op's own failure, which undoes op
// alone; fatal means the transaction can no longer be trusted.
func (w *writer) runOp(op func(*writer) error) (err, fatal error) {
	saved, mark := w.head, len(w.after)
	if _, err := w.exec(`SAVEPOINT op`); err != nil {
		return nil, fmt.Errorf("savepoint: %w", err)
	}
	if err = call(op, w); err != nil {
		w.head, w.after = saved, w.after[:mark]
		if _, rerr := w.exec(`ROLLBACK TO op`); rerr != nil {
			return err, fmt.Errorf("undoing a failed write (%w): %w", err, rerr)
		}
	}
	if _, rerr := w.exec(`RELEASE op`); rerr != nil {
		return err, fmt.Errorf("release savepoint: %w", rerr)
	}
	return err, nil
}

// call turns a panic in op (a caller's check function, say) into op's error,
// so that one bad write cannot stop the writer and hang every caller.
func call(op func(*writer) error, w *writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	return op(w)
}

// rollback ends a failed transaction and reloads the chain head from the
// database: after a failed COMMIT only the file knows what was kept.
func (w *writer) rollback(start head) {
	w.after = w.after[:0]
	// Fails harmlessly when SQLite has already rolled back.
	_, _ = w.exec(`ROLLBACK`)
	h, err := readHead(context.Background(), w.conn)
	if err != nil {
		h = start
	}
	w.head = h
}

// stmt returns the prepared statement for q, preparing it on first use. The
// writer runs a fixed set of queries, so the cache stays small.
func (w *writer) stmt(q string) (*sql.Stmt, error) {
	if s, ok := w.stmts[q]; ok {
		return s, nil
	}
	s, err := w.conn.PrepareContext(context.Background(), q)
	if err != nil {
		return nil, err
	}
	w.stmts[q] = s
	return s, nil
}

// exec runs q in the writer's transaction. The writer uses no caller's
// context: a write that has started is finished, not abandoned half way.
func (w *writer) exec(q string, args ...any) (sql.Result, error) {
	s, err := w.stmt(q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(context.Background(), args...)
}

// scan runs a one-row query and scans it; sql.ErrNoRows when there is none.
func (w *writer) scan(q string, args []any, dest ...any) error {
	s, err := w.stmt(q)
	if err != nil {
		return err
	}
	return s.QueryRowContext(context.Background(), args...).Scan(dest...)
}

func (w *writer) closeStmts() {
	for q, s := range w.stmts {
		s.Close()
		delete(w.stmts, q)
	}
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readHead(ctx context.Context, q queryRower) (head, error) {
	var h head
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&h.seq, &h.hash)
	if errors.Is(err, sql.ErrNoRows) {
		return h, errors.New("audit_head has no row")
	}
	return h, err
}

// ReportJobs makes every job change also write the outbox rows that report
// it, in the same transaction: a notice exists exactly when its change
// does (DESIGN.md seam 4). report may read through the DB's read methods;
// wake runs after the rows commit.
func (db *DB) ReportJobs(ctx context.Context, report func(ctx context.Context, prev deploy.State, j deploy.Job) []notify.Post, wake func()) error {
	// Set in the writer goroutine, which alone reads these fields.
	return db.write(ctx, func(w *writer) error {
		w.jobs, w.wake = report, wake
		return nil
	})
}

// reportJob writes the outbox rows for j's change from prev: every change,
// a step or a released lock as much as a new state (the card shows them
// all; report decides what each chat hears).
func (w *writer) reportJob(prev deploy.State, j deploy.Job) error {
	if w.jobs == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	posts := w.jobs(ctx, prev, j)
	if len(posts) == 0 {
		return nil
	}
	if err := w.enqueue(time.Now(), posts); err != nil {
		return fmt.Errorf("job #%d notice: %w", j.ID, err)
	}
	if w.wake != nil {
		w.after = append(w.after, w.wake)
	}
	return nil
}
