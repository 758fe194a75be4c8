package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

var _ audit.Store = (*DB)(nil)

// Append implements audit.Store: events that belong to no state change.
func (db *DB) Append(ctx context.Context, events ...*audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	return db.write(ctx, func(w *writer) error { return w.append(0, events) })
}

const insertAudit = `INSERT INTO audit (seq, time, kind, actor, identity, chat, command, args, app, env, decision,
	job_id, intent_seq, outcome, prev_hash, hash, via) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

// append seals events after the chain head and inserts them. Events whose
// JobID is 0 get jobID. The callers' events are filled in (Seq, Time,
// IntentSeq, JobID, PrevHash, Hash) only once the batch has committed.
func (w *writer) append(jobID int64, events []*audit.Event) error {
	sealed := make([]audit.Event, len(events))
	now := time.Now()
	for i, e := range events {
		c := *e
		if c.JobID == 0 {
			c.JobID = jobID
		}
		// An outcome closing an intent of the same call must see the
		// intent's new seq, which so far only the sealed copy has.
		for k := 0; k < i && c.Closes != nil; k++ {
			if events[k] == c.Closes {
				c.Closes = &sealed[k]
			}
		}
		audit.Prepare(w.head.hash, w.head.seq+1, now, &c)
		args := c.Args
		if args == nil {
			args = []string{}
		}
		argsJSON, err := json.Marshal(args)
		if err != nil {
			return err
		}
		if _, err := w.exec(insertAudit, c.Seq, formatTime(c.Time), string(c.Kind), c.Actor, c.Identity, c.Chat,
			c.Command, string(argsJSON), c.App, c.Env, c.Decision, c.JobID, c.IntentSeq, c.Outcome, c.PrevHash, c.Hash, c.Via); err != nil {
			if c.Kind == audit.KindOutcome && strings.Contains(err.Error(), "UNIQUE") {
				return fmt.Errorf("audit: intent %d already has an outcome: %w", c.IntentSeq, err)
			}
			return fmt.Errorf("audit: %w", err)
		}
		w.head = head{seq: c.Seq, hash: c.Hash}
		sealed[i] = c
	}
	w.after = append(w.after, func() {
		for i, e := range events {
			closes := e.Closes
			*e = sealed[i]
			e.Closes = closes
		}
	})
	return nil
}

const auditCols = `seq, time, kind, actor, identity, chat, command, args, app, env, decision, job_id, intent_seq,
	outcome, prev_hash, hash, via`

func scanEvent(s interface{ Scan(...any) error }, e *audit.Event) error {
	var t, kind, args string
	if err := s.Scan(&e.Seq, &t, &kind, &e.Actor, &e.Identity, &e.Chat, &e.Command, &args, &e.App, &e.Env,
		&e.Decision, &e.JobID, &e.IntentSeq, &e.Outcome, &e.PrevHash, &e.Hash, &e.Via); err != nil {
		return err
	}
	e.Kind = audit.Kind(kind)
	e.Args = nil
	if err := json.Unmarshal([]byte(args), &e.Args); err != nil {
		return fmt.Errorf("audit row %d: args: %w", e.Seq, err)
	}
	var err error
	if e.Time, err = parseTime(t); err != nil {
		return fmt.Errorf("audit row %d: %w", e.Seq, err)
	}
	return nil
}

func collectEvents(rows *sql.Rows, err error) ([]audit.Event, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// DefaultAuditLimit is how many rows AuditEvents returns when the filter
// sets no limit.
const DefaultAuditLimit = 20

// AuditEvents lists rows newest first, for /audit.
func (db *DB) AuditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"app", f.App}, {"env", f.Env}, {"actor", f.Actor}} {
		if c.v != "" {
			where = append(where, c.col+` = ?`)
			args = append(args, c.v)
		}
	}
	q := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	return collectEvents(db.r.QueryContext(ctx, q, args...))
}

// WalkAudit calls fn for every row in seq order, one row at a time, all from
// one snapshot. fn's error stops the walk and is returned.
func (db *DB) WalkAudit(ctx context.Context, fn func(*audit.Event) error) error {
	return db.walk(ctx, db.r, fn)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (db *DB) walk(ctx context.Context, q querier, fn func(*audit.Event) error) error {
	rows, err := q.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e audit.Event
		if err := scanEvent(rows, &e); err != nil {
			return err
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyAudit recomputes the hash chain over every row, then checks that the
// last row is the head recorded beside the chain, so a removed tail (or a
// removed everything) is caught too. A break is an *audit.ChainError naming
// the first row that does not fit; rows is how many rows verified before it.
func (db *DB) VerifyAudit(ctx context.Context) (rows int64, err error) {
	// One read transaction: rows and head come from the same snapshot even
	// while the bot keeps appending.
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	h, err := readHead(ctx, tx)
	if err != nil {
		return 0, fmt.Errorf("reading the audit head: %w", err)
	}
	var v audit.Verifier
	if err := db.walk(ctx, tx, v.Next); err != nil {
		return v.Count(), err
	}
	last := v.Count() // rows start at 1 and are contiguous, or Next failed
	switch {
	case h.seq > last:
		return last, &audit.ChainError{Seq: last + 1,
			Reason: fmt.Sprintf("row missing: the chain ends at row %d but its recorded head is row %d", last, h.seq)}
	case h.seq < last:
		return last, &audit.ChainError{Seq: h.seq + 1,
			Reason: fmt.Sprintf("row added outside shipbot: the recorded head is row %d", h.seq)}
	case h.hash != v.Head():
		return last, &audit.ChainError{Seq: last, Reason: "row does not match the recorded head hash"}
	}
	return last, nil
}

// OpenIntents lists intents that no outcome closes yet, oldest first: side
// effects that were announced but whose result was never recorded.
func (db *DB) OpenIntents(ctx context.Context) ([]audit.Event, error) {
	// The outcome terms repeat the partial index's WHERE so SQLite can use it.
	return collectEvents(db.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit AS i WHERE i.kind = 'intent'
		AND NOT EXISTS (SELECT 1 FROM audit AS o WHERE o.kind = 'outcome' AND o.intent_seq > 0 AND o.intent_seq = i.seq)
		ORDER BY i.seq`))
}
