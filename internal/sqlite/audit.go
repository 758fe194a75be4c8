package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/shipbot/shipbot/internal/audit"
)

const auditCols = `seq, time, kind, actor, identity, chat, command, args, app, env, decision, job_id, intent_seq, outcome, prev_hash, hash`

func scanEvent(s scanner) (*audit.Event, error) {
	var e audit.Event
	var t, kind, args string
	if err := s.Scan(&e.Seq, &t, &kind, &e.Actor, &e.Identity, &e.Chat, &e.Command, &args, &e.App, &e.Env, &e.Decision,
		&e.JobID, &e.IntentSeq, &e.Outcome, &e.PrevHash, &e.Hash); err != nil {
		return nil, err
	}
	e.Kind = audit.Kind(kind)
	if err := json.Unmarshal([]byte(args), &e.Args); err != nil {
		return nil, fmt.Errorf("audit row %d args: %w", e.Seq, err)
	}
	var err error
	e.Time, err = parseTime(t)
	return &e, err
}

// AuditEvents lists rows newest first (default 20).
func (db *DB) AuditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	q := `SELECT ` + auditCols + ` FROM audit WHERE 1=1`
	var args []any
	for _, c := range []struct{ col, v string }{{"app", f.App}, {"env", f.Env}, {"actor", f.Actor}} {
		if c.v != "" {
			q += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 20
	}
	q += fmt.Sprintf(` ORDER BY seq DESC LIMIT %d`, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

// WalkAudit calls fn for every row in seq order, streaming.
func (db *DB) WalkAudit(ctx context.Context, fn func(*audit.Event) error) error {
	rows, err := db.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit ORDER BY seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyAudit recomputes the chain over every row and checks that the last
// row is the recorded head, so a removed tail is caught as well.
func (db *DB) VerifyAudit(ctx context.Context) (int64, error) {
	var v audit.Verifier
	if err := db.WalkAudit(ctx, v.Next); err != nil {
		return v.Count(), err
	}
	var seq int64
	var hash string
	if err := db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
		return v.Count(), fmt.Errorf("reading audit head: %w", err)
	}
	if seq != v.Count() || hash != v.Head() {
		return v.Count(), &audit.ChainError{Seq: v.Count() + 1,
			Reason: fmt.Sprintf("rows after %d are missing (the head records row %d)", v.Count(), seq)}
	}
	return v.Count(), nil
}

// OpenIntents lists intents no outcome closes yet.
func (db *DB) OpenIntents(ctx context.Context) ([]audit.Event, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit a WHERE kind = 'intent'
		AND NOT EXISTS (SELECT 1 FROM audit o WHERE o.kind = 'outcome' AND o.intent_seq = a.seq) ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}
