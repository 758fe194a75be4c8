package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
)

func chain(n int) []*audit.Event {
	var out []*audit.Event
	prev := ""
	for i := 1; i <= n; i++ {
		e := &audit.Event{Kind: audit.KindIntent, Actor: "alice", Command: "deploy", Args: []string{"demo", "staging"}}
		audit.Prepare(prev, int64(i), time.Date(2026, 11, 22, 10, 0, i, 0, time.UTC), e)
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func verify(evs []*audit.Event) error {
	var v audit.Verifier
	for _, e := range evs {
		if err := v.Next(e); err != nil {
			return err
		}
	}
	return nil
}

func TestChainDetectsEveryKindOfEdit(t *testing.T) {
	if err := verify(chain(5)); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	edits := map[string]struct {
		edit func([]*audit.Event) []*audit.Event
		seq  int64
	}{
		"outcome changed": {func(c []*audit.Event) []*audit.Event { c[2].Outcome = "x"; return c }, 3},
		"arg changed":     {func(c []*audit.Event) []*audit.Event { c[1].Args[0] = "other"; return c }, 2},
		"time changed":    {func(c []*audit.Event) []*audit.Event { c[3].Time = c[3].Time.Add(time.Second); return c }, 4},
		"row removed":     {func(c []*audit.Event) []*audit.Event { return append(c[:2], c[3:]...) }, 3},
		"rows swapped":    {func(c []*audit.Event) []*audit.Event { c[1], c[2] = c[2], c[1]; return c }, 2},
		"rehashed alone": {func(c []*audit.Event) []*audit.Event {
			c[2].Actor = "mallory"
			audit.Seal(c[2].PrevHash, c[2]) // a forger who recomputes one hash breaks the next link
			return c
		}, 4},
	}
	for name, tc := range edits {
		err := verify(tc.edit(chain(5)))
		var ce *audit.ChainError
		if !errors.As(err, &ce) || ce.Seq != tc.seq {
			t.Errorf("%s: %v, want chain error at row %d", name, err, tc.seq)
		}
	}
}

func TestPrepareLinksOutcomeToIntent(t *testing.T) {
	in := &audit.Event{Kind: audit.KindIntent}
	out := &audit.Event{Kind: audit.KindOutcome, Closes: in}
	audit.Prepare("", 7, time.Now(), in)
	audit.Prepare(in.Hash, 8, time.Now(), out)
	if out.IntentSeq != 7 || out.PrevHash != in.Hash {
		t.Fatalf("outcome closes %d with prev %q", out.IntentSeq, out.PrevHash)
	}
	b, _ := json.Marshal(out)
	if bytes.Contains(b, []byte("Closes")) {
		t.Fatalf("Closes leaked into the stored form: %s", b)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := audit.NewSecret("xoxb-very-secret-token")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("start", "token", s)
	j, _ := json.Marshal(struct{ T audit.Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), logs.String(), string(j)} {
		if strings.Contains(out, "very-secret") {
			t.Fatalf("secret printed: %s", out)
		}
	}
	if s.Reveal() != "xoxb-very-secret-token" {
		t.Fatal("Reveal lost the value")
	}
}

func TestRedactorReplacesSecrets(t *testing.T) {
	r := audit.NewRedactor(audit.NewSecret("hunter22"), audit.NewSecret("hunter22-longer"), audit.NewSecret("ab"))
	got := r.String("pass=hunter22-longer and hunter22; ab stays")
	if strings.Contains(got, "hunter22") || !strings.Contains(got, "ab stays") {
		t.Fatalf("redacted %q", got)
	}
	e := &audit.Event{Args: []string{"--password=hunter22"}, Outcome: "failed: hunter22 rejected"}
	r.Event(e)
	if strings.Contains(e.Args[0]+e.Outcome, "hunter22") {
		t.Fatalf("event not redacted: %+v", e)
	}
	var nilR *audit.Redactor
	if nilR.String("x") != "x" {
		t.Fatal("nil redactor must pass text through")
	}
}

// The constructors fill the same fields the same way wherever a row is
// made: who, what, the typed decision, and the link of an outcome to its
// intent.
func TestConstructors(t *testing.T) {
	who := audit.Who{User: "alice", Identity: "shell:alice", Chat: "shell:terminal"}
	args := []string{"v1"}
	in := audit.Intent(who, "deploy", "demo", "staging", args)
	args[0] = "changed"
	if in.Kind != audit.KindIntent || in.Decision != audit.Allowed || in.Actor != "alice" || in.Identity != "shell:alice" ||
		in.Chat != "shell:terminal" || in.Args[0] != "v1" || in.App != "demo" || in.Env != "staging" {
		t.Fatalf("intent %+v", in)
	}
	out := audit.Closing(in, 7, "ok")
	if out.Kind != audit.KindOutcome || out.Closes != in || out.Command != "deploy" || out.JobID != 7 || out.Actor != "alice" ||
		out.Outcome != "ok" || out.Decision != audit.Allowed {
		t.Fatalf("closing %+v", out)
	}
	if o := audit.Outcome(who, "deploy", "demo", "staging", 7, 41, "done"); o.IntentSeq != 41 || o.Closes != nil {
		t.Fatalf("outcome %+v", o)
	}
	d := audit.Denial(audit.Who{Identity: "slack:U1", Chat: "slack:C1"}, "message", nil, "", "", "channel not allowed")
	if d.Kind != audit.KindDenial || d.Decision != audit.Denied || d.Actor != "" || d.Outcome != "channel not allowed" {
		t.Fatalf("denial %+v", d)
	}
}
