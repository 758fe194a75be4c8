package audit

import (
	"testing"
	"time"
)

// oldChain is two rows as shipbot sealed them before events had a via
// (hashes computed by the code of commit 8162d86). Adding fields to Event
// must leave the canonical form of a row without them unchanged, or every
// existing audit log would stop verifying.
func oldChain() []*Event {
	at := time.Date(2026, 11, 22, 9, 30, 0, 123456789, time.UTC)
	return []*Event{
		{Seq: 1, Time: at, Kind: KindIntent, Actor: "alice", Identity: "telegram:42", Chat: "telegram:-100",
			Command: "deploy", Args: []string{"helpdesk", "staging", "v1.2"}, App: "helpdesk", Env: "staging",
			Decision: Allowed, Hash: "00c75ec390127c8b0e275a5f95afdeee7b898248173cc535be3af898895fd18a"},
		{Seq: 2, Time: at.Add(time.Minute), Kind: KindOutcome, Actor: "alice", Identity: "telegram:42",
			Chat: "telegram:-100", Command: "deploy", App: "helpdesk", Env: "staging", Decision: Allowed, JobID: 7,
			IntentSeq: 1, Outcome: "succeeded", PrevHash: "00c75ec390127c8b0e275a5f95afdeee7b898248173cc535be3af898895fd18a",
			Hash: "f9fc36178b5c098484ed7f4ee45173481e26474b52817e2df5ef8accb785a129"},
	}
}

func TestChainSealedBeforeViaStillVerifies(t *testing.T) {
	rows := oldChain()
	var v Verifier
	for _, e := range rows {
		if err := v.Next(e); err != nil {
			t.Fatalf("old row %d: %v (hash now %s)", e.Seq, err, hashOf(e))
		}
	}
}

// A row's via is sealed into its hash: changing it breaks the chain.
func TestViaIsSealed(t *testing.T) {
	e := Intent(Who{User: "ci", Identity: "api:ci", Chat: "api:ci", Via: "api"}, "deploy", "helpdesk", "staging", nil)
	if e.Via != "api" {
		t.Fatalf("intent via = %q", e.Via)
	}
	if out := Closing(e, 0, "ok"); out.Via != "api" {
		t.Fatalf("closing via = %q", out.Via)
	}
	if d := Denial(Who{Via: "mcp"}, "deploy", nil, "", "", "no"); d.Via != "mcp" {
		t.Fatalf("denial via = %q", d.Via)
	}
	Prepare("", 1, time.Now(), e)
	e.Via = "auto"
	var v Verifier
	if err := v.Next(e); err == nil {
		t.Fatal("a row whose via was changed still verifies")
	}
}
