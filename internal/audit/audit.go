// Package audit is the leaf of shipbot: the audit Event, its hash chain, secret
// redaction and the Store interface the rest of the bot appends through.
//
// Every row is sealed as hash = SHA-256(prev_hash || canonical(row)), so an
// UPDATE or DELETE anywhere in the table breaks the chain at that row, and
// Verify names the first row that no longer fits.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Kind says what an audit row records.
type Kind string

const (
	// KindIntent is written before a side effect; exactly one KindOutcome closes it.
	KindIntent Kind = "intent"
	// KindOutcome closes the intent named by IntentSeq.
	KindOutcome Kind = "outcome"
	// KindDenial records a refused request; nothing was done.
	KindDenial Kind = "denial"
)

// Decision says whether a request was let through.
type Decision string

const (
	Allowed Decision = "allowed"
	Denied  Decision = "denied"
)

// Who is the person behind an event: the config user (empty when the
// identity is unknown), the verified platform identity, and the chat the
// request came from. deploy.Who is this type.
type Who struct {
	User     string // config user name
	Identity string // "telegram:123"
	Chat     string // "telegram:-100123" — where answers go
	// Via is the door a request came through when it is not a person in
	// chat: "api" (the HTTP API), "auto" (an auto-deploy rule), "mcp".
	Via string
}

// Event is one audit row. Build it with Intent, Outcome and Denial, so every
// package fills the same fields the same way.
type Event struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      Kind      `json:"kind"`
	Actor     string    `json:"actor"`         // config user name; "" when the identity is unknown
	Identity  string    `json:"identity"`      // verified platform identity, "telegram:123"
	Chat      string    `json:"chat"`          // where the request came from, "slack:C0123"
	Via       string    `json:"via,omitempty"` // the door when not chat: "api", "auto", "mcp"
	Command   string    `json:"command"`
	Args      []string  `json:"args"`
	App       string    `json:"app"`
	Env       string    `json:"env"`
	Decision  Decision  `json:"decision"`
	JobID     int64     `json:"job_id"`
	IntentSeq int64     `json:"intent_seq"` // outcome rows: the intent they close
	Outcome   string    `json:"outcome"`    // outcome and denial rows: what happened / why
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`

	// Closes links an outcome to an intent appended in the same Append call,
	// whose Seq is unknown until it is sealed. Stores set IntentSeq from it
	// (see Prepare); it is not stored itself.
	Closes *Event `json:"-"`
}

// Intent is the row written before a side effect, in the same transaction
// as the change it announces; exactly one Outcome closes it.
func Intent(who Who, command, app, env string, args []string) *Event {
	return &Event{Kind: KindIntent, Actor: who.User, Identity: who.Identity, Chat: who.Chat, Via: who.Via,
		Command: command, Args: append([]string(nil), args...), App: app, Env: env, Decision: Allowed}
}

// Outcome closes an intent: the one whose Seq is intentSeq (a job's, written
// when it was asked for), or, with intentSeq 0, the one set as Closes before
// both are appended together.
func Outcome(who Who, command, app, env string, jobID, intentSeq int64, text string) *Event {
	return &Event{Kind: KindOutcome, Actor: who.User, Identity: who.Identity, Chat: who.Chat, Via: who.Via,
		Command: command, App: app, Env: env, Decision: Allowed, JobID: jobID, IntentSeq: intentSeq, Outcome: text}
}

// Closing is the outcome of in, to be appended in the same batch: same
// person, command, app and env.
func Closing(in *Event, jobID int64, text string) *Event {
	out := Outcome(Who{User: in.Actor, Identity: in.Identity, Chat: in.Chat, Via: in.Via}, in.Command, in.App, in.Env, jobID, 0, text)
	out.Closes = in
	return out
}

// Denial records a refused request and why; nothing was done.
func Denial(who Who, command string, args []string, app, env, why string) *Event {
	return &Event{Kind: KindDenial, Actor: who.User, Identity: who.Identity, Chat: who.Chat, Via: who.Via,
		Command: command, Args: append([]string(nil), args...), App: app, Env: env, Decision: Denied, Outcome: why}
}

// Prepare readies e to be stored as row seq after the row whose hash is prev:
// it fills Seq, a missing Time, IntentSeq from Closes, and seals it. Stores
// call it for each event in order, inside the transaction that inserts them.
func Prepare(prev string, seq int64, now time.Time, e *Event) {
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	if e.Closes != nil && e.IntentSeq == 0 {
		e.IntentSeq = e.Closes.Seq
	}
	Seal(prev, e)
}

// Store appends sealed events. Implementations seal each event against the
// current head of the chain (setting Seq, PrevHash and Hash) and make the whole
// batch durable before returning; on error nothing of the batch is stored.
type Store interface {
	Append(ctx context.Context, events ...*Event) error
}

// Filter narrows a listing. Zero values match everything.
type Filter struct {
	Limit    int
	App, Env string
	Actor    string
}

// canonical is the exact byte string that is hashed: every field but Hash, in a
// fixed order, times in UTC with nanoseconds so a round trip through the
// database gives the same bytes. A field added later is omitted while empty,
// so rows sealed before it existed hash as they did.
func canonical(e *Event) []byte {
	c := *e
	c.Hash = ""
	c.Time = c.Time.UTC()
	if c.Args == nil {
		c.Args = []string{}
	}
	b, err := json.Marshal(struct {
		Seq       int64    `json:"seq"`
		Time      string   `json:"time"`
		Kind      Kind     `json:"kind"`
		Actor     string   `json:"actor"`
		Identity  string   `json:"identity"`
		Chat      string   `json:"chat"`
		Command   string   `json:"command"`
		Args      []string `json:"args"`
		App       string   `json:"app"`
		Env       string   `json:"env"`
		Decision  Decision `json:"decision"`
		JobID     int64    `json:"job_id"`
		IntentSeq int64    `json:"intent_seq"`
		Outcome   string   `json:"outcome"`
		PrevHash  string   `json:"prev_hash"`
		Via       string   `json:"via,omitempty"`
	}{c.Seq, c.Time.Format(time.RFC3339Nano), c.Kind, c.Actor, c.Identity, c.Chat, c.Command, c.Args,
		c.App, c.Env, c.Decision, c.JobID, c.IntentSeq, c.Outcome, c.PrevHash, c.Via})
	if err != nil {
		// Only strings and integers: Marshal cannot fail.
		panic(err)
	}
	return b
}

// Seal sets e.PrevHash to prev and computes e.Hash. Seq and Time must be set.
func Seal(prev string, e *Event) {
	e.PrevHash = prev
	e.Hash = hashOf(e)
}

func hashOf(e *Event) string {
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(canonical(e))
	return hex.EncodeToString(h.Sum(nil))
}

// ChainError names the first row that does not fit the chain.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at row %d: %s", e.Seq, e.Reason)
}

// Verifier checks rows one at a time in Seq order, so a large log streams.
type Verifier struct {
	prevHash string
	prevSeq  int64
	n        int64
}

// Next checks e against the rows seen so far.
func (v *Verifier) Next(e *Event) error {
	if e.Seq != v.prevSeq+1 {
		return &ChainError{Seq: v.prevSeq + 1, Reason: fmt.Sprintf("row missing (next row present is %d)", e.Seq)}
	}
	if e.PrevHash != v.prevHash {
		return &ChainError{Seq: e.Seq, Reason: "prev_hash does not match the previous row's hash"}
	}
	if got := hashOf(e); got != e.Hash {
		return &ChainError{Seq: e.Seq, Reason: "row content does not match its hash (modified)"}
	}
	v.prevHash, v.prevSeq = e.Hash, e.Seq
	v.n++
	return nil
}

// Count is the number of rows verified so far.
func (v *Verifier) Count() int64 { return v.n }

// Head is the hash of the last verified row.
func (v *Verifier) Head() string { return v.prevHash }
