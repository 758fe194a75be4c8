package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// recorder is a commands.Handler that records requests and the order of
// events (requests, WaitIdle) and answers through reply.
type recorder struct {
	mu     sync.Mutex
	reqs   []commands.Request
	events []string
	reply  func(commands.Request) commands.Reply
}

func (r *recorder) Handle(_ context.Context, req commands.Request) commands.Reply {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.events = append(r.events, "request")
	reply := r.reply
	r.mu.Unlock()
	if reply == nil {
		return commands.Reply{}
	}
	return reply(req)
}

func (r *recorder) waitIdle(context.Context) error {
	r.mu.Lock()
	r.events = append(r.events, "wait-idle")
	r.mu.Unlock()
	return nil
}

func (r *recorder) requests() []commands.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]commands.Request(nil), r.reqs...)
}

func (r *recorder) eventLog() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.events, ",")
}

// syncBuffer is an Out that tests may read while the Shell writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var approvalCard = notify.Message{
	Title: "Approval needed: deploy demo to staging",
	Style: notify.StyleWarning,
	Buttons: []notify.Button{
		{Label: "Approve", Data: "approve:Zx81"},
		{Label: "Deny", Data: "deny:Zx81"},
	},
}

func TestScriptedSession(t *testing.T) {
	script := strings.Join([]string{
		"/deploy demo staging",
		"   ",
		"/as bob",
		"/as mallory",
		"1a",
		" [1b] ",
		"1c",
		"9a",
		"2",
		"/quit",
		"/deploy demo production",
	}, "\n") + "\n"
	var out bytes.Buffer
	rec := &recorder{}
	sh := New(Options{
		In:       strings.NewReader(script),
		Out:      &out,
		Users:    []string{"alice", "bob"},
		User:     "alice",
		WaitIdle: rec.waitIdle,
	})
	rec.reply = func(req commands.Request) commands.Reply {
		switch {
		case req.Text == "/deploy demo staging":
			if _, err := sh.Send(context.Background(), req.Chat, approvalCard); err != nil {
				t.Errorf("Send: %v", err)
			}
			return commands.Reply{}
		case req.Action == "approve:Zx81":
			return commands.Reply{Notice: "approved by " + req.UserName}
		default:
			return commands.Reply{Notice: "already decided\x1b[2J", Refused: true}
		}
	}
	sh.SetHandler(rec) // set after New, as the wiring does

	if err := sh.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}

	terminal := notify.Channel{Platform: "shell", ID: "terminal"}
	want := []commands.Request{
		{Platform: "shell", UserID: "alice", UserName: "alice", Chat: terminal, Text: "/deploy demo staging"},
		{Platform: "shell", UserID: "bob", UserName: "bob", Chat: terminal, Action: "approve:Zx81"},
		{Platform: "shell", UserID: "bob", UserName: "bob", Chat: terminal, Action: "deny:Zx81"},
	}
	got := rec.requests()
	if len(got) != len(want) {
		t.Fatalf("got %d requests %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	wantOut := "── #1 ──\n" +
		"⚠ Approval needed: deploy demo to staging\n" +
		"[1a] Approve  [1b] Deny\n" +
		"you are now bob\n" +
		"cannot switch to mallory (allowed: alice, bob)\n" +
		"approved by bob\n" +
		"! already decided\n" +
		"! no button [1c]\n" +
		"! no button [9a]\n" +
		"! buttons are pressed by card and letter: type the label shown, like 2a\n"
	if out.String() != wantOut {
		t.Errorf("transcript:\n%s\nwant:\n%s", out.String(), wantOut)
	}
	if log := rec.eventLog(); log != "request,request,request,wait-idle" {
		t.Errorf("events = %s; want WaitIdle once, after the last request", log)
	}
}

func TestEOFWaitsForIdle(t *testing.T) {
	rec := &recorder{}
	sh := New(Options{In: strings.NewReader("/status"), Handler: rec, User: "alice", WaitIdle: rec.waitIdle})
	if err := sh.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if log := rec.eventLog(); log != "request,wait-idle" {
		t.Errorf("events = %s, want request,wait-idle (last line without newline still counts)", log)
	}

	failing := errors.New("drain interrupted")
	sh = New(Options{In: strings.NewReader(""), WaitIdle: func(context.Context) error { return failing }})
	if err := sh.Run(context.Background()); !errors.Is(err, failing) {
		t.Errorf("Run = %v, want the WaitIdle error", err)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close() // frees the reader goroutine parked in Read
	rec := &recorder{}
	out := &syncBuffer{}
	sh := New(Options{In: pr, Out: out, Handler: rec, User: "alice", WaitIdle: rec.waitIdle})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()

	if _, err := io.WriteString(pw, "/status\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first request", func() bool { return len(rec.requests()) == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended while input was blocked")
	}
	if log := rec.eventLog(); log != "request" {
		t.Errorf("events = %s; WaitIdle must not run when ctx ends", log)
	}
}

func TestReadErrorIsReturned(t *testing.T) {
	broken := errors.New("tty gone")
	sh := New(Options{In: io.MultiReader(strings.NewReader("/status\n"), errReader{broken}), Handler: &recorder{}})
	if err := sh.Run(context.Background()); !errors.Is(err, broken) {
		t.Errorf("Run = %v, want the read error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestNoHandlerYet(t *testing.T) {
	var out bytes.Buffer
	sh := New(Options{In: strings.NewReader("/status\n"), Out: &out})
	if err := sh.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.String() != "! not ready: no command handler yet\n" {
		t.Errorf("out = %q", out.String())
	}
}

func TestAsUsage(t *testing.T) {
	var out bytes.Buffer
	rec := &recorder{}
	sh := New(Options{In: strings.NewReader("/as\n/as alice bob\n/whoami\n"), Out: &out, Handler: rec, Users: []string{"alice", "bob"}})
	if err := sh.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "usage: /as NAME (allowed: alice, bob)\nusage: /as NAME (allowed: alice, bob)\n"
	if out.String() != want {
		t.Errorf("out = %q, want %q", out.String(), want)
	}
	// With no starting User the first configured one is used.
	if reqs := rec.requests(); len(reqs) != 1 || reqs[0].UserID != "alice" || reqs[0].Text != "/whoami" {
		t.Errorf("requests = %+v", reqs)
	}

	out.Reset()
	sh = New(Options{In: strings.NewReader("/as root\n"), Out: &out, Handler: rec})
	if err := sh.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.String() != "cannot switch to root (no shell users are configured)\n" {
		t.Errorf("out = %q", out.String())
	}
}

func TestRefusedWithoutNotice(t *testing.T) {
	var out bytes.Buffer
	rec := &recorder{reply: func(commands.Request) commands.Reply { return commands.Reply{Refused: true} }}
	sh := New(Options{In: strings.NewReader("1a\n"), Out: &out, Handler: rec})
	if _, err := sh.Send(context.Background(), TerminalChannel, approvalCard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := sh.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.String() != "! refused\n" {
		t.Errorf("out = %q", out.String())
	}
}

func TestEdit(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	sh := New(Options{Out: &out})
	card := notify.Message{
		Title:   "Deploying demo",
		Steps:   []notify.Step{{Name: "build", State: "running"}},
		Buttons: []notify.Button{{Label: "Cancel", Data: "cancel:1"}},
	}
	ref, err := sh.Send(ctx, TerminalChannel, card)
	if err != nil {
		t.Fatal(err)
	}
	if ref != (notify.Ref{Channel: TerminalChannel, ID: "1"}) {
		t.Errorf("ref = %+v", ref)
	}
	out.Reset()

	if err := sh.Edit(ctx, ref, card); err != nil {
		t.Fatalf("identical Edit: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("identical Edit printed %q, want nothing", out.String())
	}

	card.Steps = []notify.Step{{Name: "build", State: "done"}}
	if err := sh.Edit(ctx, ref, card); err != nil {
		t.Fatal(err)
	}
	want := "── #1 (updated) ──\n• Deploying demo\n  [x] build\n[1a] Cancel\n"
	if out.String() != want {
		t.Errorf("changed Edit printed %q, want %q", out.String(), want)
	}
	out.Reset()

	// The stored state is now the edited one.
	if err := sh.Edit(ctx, ref, card); err != nil || out.Len() != 0 {
		t.Errorf("repeating the edit: err=%v, printed %q", err, out.String())
	}

	// A message this Shell did not send (a ref kept across a restart) is printed.
	if err := sh.Edit(ctx, notify.Ref{Channel: TerminalChannel, ID: "77"}, card); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "── #77 (updated) ──\n") {
		t.Errorf("unknown ref edit printed %q", out.String())
	}
	out.Reset()

	// The next message's buttons carry its own number.
	ref2, err := sh.Send(ctx, TerminalChannel, card)
	if err != nil {
		t.Fatal(err)
	}
	if ref2.ID != "2" || !strings.HasSuffix(out.String(), "[2a] Cancel\n") {
		t.Errorf("next send: ref %+v, printed %q", ref2, out.String())
	}
}

func TestOtherChannelsAndErrors(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	sh := New(Options{Out: &out})

	ops := notify.Channel{Platform: "shell", ID: "ops", Thread: "7"}
	ref, err := sh.Send(ctx, ops, notify.Message{Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "── #1 to shell:ops/7 ──\nhi\n" || ref.Channel != ops {
		t.Errorf("printed %q, ref %+v", out.String(), ref)
	}
	out.Reset()

	if _, err := sh.Send(ctx, notify.Channel{Platform: "telegram", ID: "1"}, notify.Message{Text: "x"}); err == nil {
		t.Error("Send to a telegram channel succeeded")
	}
	if err := sh.Edit(ctx, notify.Ref{Channel: notify.Channel{Platform: "slack", ID: "C1"}, ID: "1"}, notify.Message{Text: "x"}); err == nil {
		t.Error("Edit of a slack message succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := sh.Send(cancelled, TerminalChannel, notify.Message{Text: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with ended ctx = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("refused sends printed %q", out.String())
	}

	broken := errors.New("stdout closed")
	sh = New(Options{Out: failWriter{broken}})
	if _, err := sh.Send(ctx, TerminalChannel, notify.Message{Text: "x"}); !errors.Is(err, broken) {
		t.Errorf("Send = %v, want the write error", err)
	}
	if err := sh.Edit(ctx, notify.Ref{Channel: TerminalChannel, ID: "9"}, notify.Message{Text: "x"}); !errors.Is(err, broken) {
		t.Errorf("Edit = %v, want the write error", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestButtonWindowIsBounded(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	var out bytes.Buffer
	sh := New(Options{In: strings.NewReader("1a\n2a\n1001a\n"), Out: &out, Handler: rec})
	for i := 1; i <= keep+1; i++ {
		if _, err := sh.Send(ctx, TerminalChannel, notify.Message{Buttons: []notify.Button{{Label: "b", Data: fmt.Sprintf("b%d", i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	if err := sh.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if out.String() != "! no button [1a]\n" {
		t.Errorf("out = %q, want only button 1 forgotten", out.String())
	}
	reqs := rec.requests()
	if len(reqs) != 2 || reqs[0].Action != "b2" || reqs[1].Action != "b1001" || reqs[0].Text != "" {
		t.Errorf("requests = %+v, want presses of b2 and b1001", reqs)
	}
	if len(sh.buttons) != keep || len(sh.buttonOrder) != keep || len(sh.sent) != keep || len(sh.sentOrder) != keep {
		t.Errorf("remembered buttons of %d messages, %d messages (%d ids), want %d each", len(sh.buttons), len(sh.sent), len(sh.sentOrder), keep)
	}
}

func TestPrompt(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	out := &syncBuffer{}
	rec := &recorder{}
	sh := New(Options{In: pr, Out: out, Handler: rec, Users: []string{"alice", "bob"}, Prompt: true})
	done := make(chan error, 1)
	go func() { done <- sh.Run(context.Background()) }()

	waitFor(t, "the first prompt", func() bool { return out.String() == "alice> " })
	// A message arriving while the prompt waits goes on its own line and the
	// prompt comes back after it.
	if _, err := sh.Send(context.Background(), TerminalChannel, notify.Message{Text: "job done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(pw, "/as bob\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the prompt after /as", func() bool { return strings.HasSuffix(out.String(), "bob> ") })
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "alice> \n── #1 ──\njob done\nalice> you are now bob\nbob> \n"
	if out.String() != want {
		t.Errorf("out = %q, want %q", out.String(), want)
	}
}

// chunkWriter records every Write separately and deliberately takes no lock:
// if the Shell ever wrote from two goroutines at once, -race reports it.
type chunkWriter struct{ chunks []string }

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.chunks = append(w.chunks, string(p))
	return len(p), nil
}

func TestConcurrentSendsStayWhole(t *testing.T) {
	const senders, lines = 20, 50
	pr, pw := io.Pipe()
	out := &chunkWriter{}
	rec := &recorder{}
	sh := New(Options{In: pr, Out: out, Handler: rec, User: "alice"})
	rec.reply = func(req commands.Request) commands.Reply {
		if _, err := sh.Send(context.Background(), req.Chat, notify.Message{Text: "ack " + req.Text}); err != nil {
			t.Errorf("reply Send: %v", err)
		}
		return commands.Reply{}
	}
	done := make(chan error, 1)
	go func() { done <- sh.Run(context.Background()) }()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range lines {
			if _, err := fmt.Fprintf(pw, "/status %d\n", i); err != nil {
				t.Errorf("feeding input: %v", err)
				return
			}
		}
	}()
	refs := make(chan notify.Ref, senders)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref, err := sh.Send(context.Background(), TerminalChannel, bigMessage(g))
			if err != nil {
				t.Errorf("Send %d: %v", g, err)
			}
			refs <- ref
		}()
	}
	wg.Wait()
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(refs)

	ids := map[string]bool{}
	for ref := range refs {
		ids[ref.ID] = true
	}
	if len(ids) != senders {
		t.Errorf("%d distinct refs from %d sends", len(ids), senders)
	}
	if n := len(rec.requests()); n != lines {
		t.Errorf("handled %d lines, want %d", n, lines)
	}
	whole := regexp.MustCompile(`^── #\d+ ──\n`)
	numbers := map[string]bool{}
	for g := range senders {
		body := strings.TrimSuffix(Render(bigMessage(g), func(int, notify.Button) string { return "0" }), "[0] ok\n")
		found := 0
		for _, c := range out.chunks {
			if !strings.Contains(c, fmt.Sprintf("g%02d", g)) {
				continue
			}
			found++
			if !whole.MatchString(c) || !strings.Contains(c, body) {
				t.Errorf("message %d not written whole in one Write: %q", g, c)
			}
			m := regexp.MustCompile(`\[(\d+)a\] ok\n$`).FindStringSubmatch(c)
			if m == nil {
				t.Errorf("message %d lacks its button line: %q", g, c)
				continue
			}
			numbers[m[1]] = true
		}
		if found != 1 {
			t.Errorf("message %d appears in %d writes, want 1", g, found)
		}
	}
	if len(numbers) != senders {
		t.Errorf("%d distinct button numbers for %d messages", len(numbers), senders)
	}
	for _, c := range out.chunks {
		if strings.HasPrefix(c, "── #") && strings.Count(c, "── #") != 1 {
			t.Errorf("two messages in one write: %q", c)
		}
	}
}

func bigMessage(g int) notify.Message {
	code := make([]string, 30)
	for i := range code {
		code[i] = fmt.Sprintf("g%02d output line %d", g, i)
	}
	return notify.Message{
		Title:   fmt.Sprintf("g%02d progress", g),
		Steps:   []notify.Step{{Name: "build", State: "done"}, {Name: "switch", State: "running"}},
		Code:    code,
		Buttons: []notify.Button{{Label: "ok", Data: fmt.Sprintf("ok:%d", g)}},
	}
}
