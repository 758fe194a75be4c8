// Package shell is the terminal chat adapter: the person at the terminal talks
// to shipbot as if it were a chat. Lines read from In become
// commands.Requests; messages the bot sends are rendered as text on Out, and
// their buttons are pressed by typing the label printed next to them: the
// message's number and a letter ("5a"), so a button can never be taken for
// one on another card.
package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/shipbot/shipbot/internal/commands"
	"github.com/shipbot/shipbot/internal/notify"
)

// Platform is the notify.Channel platform this adapter serves.
const Platform = "shell"

// TerminalChannel is the one chat the terminal is; requests come from it.
var TerminalChannel = notify.Channel{Platform: Platform, ID: "terminal"}

// keep bounds how many messages (and their buttons) are remembered: the
// terminal can run for weeks, and a card from a thousand messages ago is not
// one anybody means to press a button of.
const keep = 1000

// maxLine bounds one input line; nothing typed at a chat is that long.
const maxLine = 1 << 20

// Options configures a Shell.
type Options struct {
	In  io.Reader
	Out io.Writer
	// Handler receives requests. It may be left nil and set later with
	// SetHandler: the dispatcher needs the Sender before it exists.
	Handler commands.Handler
	// Users are the shell user ids /as may switch to (config identities
	// "shell:NAME").
	Users []string
	// User is the starting identity; empty means the first of Users.
	User string
	// Prompt prints "NAME> " before each line (for an interactive terminal).
	Prompt bool
	// WaitIdle is called when In reaches EOF (or /quit) and should return
	// once running jobs are done, so a piped script sees their outcome.
	WaitIdle func(ctx context.Context) error
	// FileDir is where pictures sent to the terminal (delivery charts) are
	// saved; the message prints the file's path. "": not saved.
	FileDir string
}

// Shell is the terminal chat. Send and Edit are safe to call from any
// goroutine; Run must be called at most once at a time.
type Shell struct {
	in       io.Reader
	users    []string
	prompt   bool
	waitIdle func(ctx context.Context) error
	fileDir  string

	hmu     sync.Mutex
	handler commands.Handler
	user    string

	// mu serialises everything written to out, and the button labels that
	// are printed with it.
	mu          sync.Mutex
	out         io.Writer
	promptShown bool
	buttons     map[string][]string // message id -> Button.Data of its last printing, in order
	buttonOrder []string            // ids in buttons, oldest first, for eviction
	lastMsg     int
	sent        map[string]string // message id -> its rendering without numbers
	sentOrder   []string          // ids in sent, oldest first, for eviction
}

var _ notify.Sender = (*Shell)(nil)

// New returns a Shell reading o.In and writing o.Out.
func New(o Options) *Shell {
	if o.In == nil {
		o.In = strings.NewReader("")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	user := o.User
	if user == "" && len(o.Users) > 0 {
		user = o.Users[0]
	}
	return &Shell{
		in:       o.In,
		out:      o.Out,
		users:    slices.Clone(o.Users),
		prompt:   o.Prompt,
		waitIdle: o.WaitIdle,
		fileDir:  o.FileDir,
		handler:  o.Handler,
		user:     user,
		buttons:  make(map[string][]string),
		sent:     make(map[string]string),
	}
}

// SetHandler sets where requests go.
func (s *Shell) SetHandler(h commands.Handler) {
	s.hmu.Lock()
	s.handler = h
	s.hmu.Unlock()
}

func (s *Shell) current() (commands.Handler, string) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.handler, s.user
}

type inputLine struct {
	text string
	err  error // set on the last value only; io.EOF at end of input
}

// Run reads lines until EOF, /quit or the end of ctx. Each line is handled
// before the next is read, in order. At EOF or /quit it calls WaitIdle, so
// jobs started by a piped script finish before Run returns nil; when ctx
// ends it returns ctx.Err() without waiting.
func (s *Shell) Run(ctx context.Context) error {
	stop := make(chan struct{})
	defer close(stop)
	lines := make(chan inputLine)
	// Reading blocks and cannot be interrupted, so it runs apart from the
	// loop; if ctx ends during a Read the goroutine stays parked in it until
	// In yields something or the process exits.
	go s.read(lines, stop)

	for {
		s.showPrompt()
		var l inputLine
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l = <-lines:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if l.err != nil && s.promptShown {
			// Ctrl-D leaves the cursor after the prompt; end the line there.
			_, _ = io.WriteString(s.out, "\n")
		}
		s.promptShown = false // the person pressed enter: the cursor is on a fresh line
		s.mu.Unlock()
		if l.err != nil {
			if !errors.Is(l.err, io.EOF) {
				return fmt.Errorf("shell: read input: %w", l.err)
			}
			return s.finish(ctx)
		}
		if quit := s.handleLine(ctx, l.text); quit {
			return s.finish(ctx)
		}
	}
}

func (s *Shell) read(lines chan<- inputLine, stop <-chan struct{}) {
	sc := bufio.NewScanner(s.in)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		select {
		case lines <- inputLine{text: sc.Text()}:
		case <-stop:
			return
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	select {
	case lines <- inputLine{err: err}:
	case <-stop:
	}
}

func (s *Shell) finish(ctx context.Context) error {
	if s.waitIdle == nil {
		return nil
	}
	if err := s.waitIdle(ctx); err != nil {
		return fmt.Errorf("shell: wait for running jobs: %w", err)
	}
	return nil
}

// handleLine acts on one input line and reports whether it was /quit.
func (s *Shell) handleLine(ctx context.Context, line string) (quit bool) {
	line = strings.TrimSpace(line)
	if line == "" {
		return false
	}
	fields := strings.Fields(line)
	switch fields[0] {
	case "/quit":
		return true
	case "/as":
		s.switchUser(fields[1:])
		return false
	}
	if id, idx, ok := buttonLabel(line); ok {
		s.press(ctx, id, idx)
		return false
	}
	if isNumber(strings.Trim(line, "[]")) {
		// The old way of pressing (one number across the session) pressed
		// buttons on the wrong card; say how it works now.
		s.println("! buttons are pressed by card and letter: type the label shown, like 2a")
		return false
	}
	h, user := s.current()
	if h == nil {
		s.println("! not ready: no command handler yet")
		return false
	}
	h.Handle(ctx, commands.Request{
		Platform: Platform,
		UserID:   user,
		UserName: user,
		Chat:     TerminalChannel,
		Text:     line,
	})
	return false
}

func (s *Shell) switchUser(args []string) {
	allowed := "no shell users are configured"
	if len(s.users) > 0 {
		allowed = "allowed: " + strings.Join(s.users, ", ")
	}
	if len(args) != 1 {
		s.println("usage: /as NAME (" + allowed + ")")
		return
	}
	name := args[0]
	if !slices.Contains(s.users, name) {
		s.println("cannot switch to " + oneLine(name) + " (" + allowed + ")")
		return
	}
	s.hmu.Lock()
	s.user = name
	s.hmu.Unlock()
	s.println("you are now " + name)
}

// buttonLabel recognises a line that is only a button label, "7b" or "[7b]":
// the message number and the button's letter on that message.
func buttonLabel(line string) (id string, idx int, ok bool) {
	if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
		line = line[1 : len(line)-1]
	}
	if len(line) < 2 || len(line) > 10 {
		return "", 0, false
	}
	letter := line[len(line)-1]
	if letter < 'a' || letter > 'z' || !isNumber(line[:len(line)-1]) {
		return "", 0, false
	}
	return line[:len(line)-1], int(letter - 'a'), true
}

func isNumber(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// buttonName is the label of button idx on message id: "7a", "7b"…
func buttonName(id string, idx int) string {
	if idx >= 26 {
		// No card carries that many buttons; a label that cannot be typed
		// is better than one that presses another.
		return id + "?"
	}
	return id + string(rune('a'+idx))
}

func (s *Shell) press(ctx context.Context, id string, idx int) {
	s.mu.Lock()
	datas := s.buttons[id]
	s.mu.Unlock()
	if idx >= len(datas) {
		s.println(fmt.Sprintf("! no button [%s]", buttonName(id, idx)))
		return
	}
	data := datas[idx]
	h, user := s.current()
	if h == nil {
		s.println("! not ready: no command handler yet")
		return
	}
	reply := h.Handle(ctx, commands.Request{
		Platform: Platform,
		UserID:   user,
		UserName: user,
		Chat:     TerminalChannel,
		Action:   data,
	})
	notice := oneLine(reply.Notice)
	switch {
	case reply.Refused && notice == "":
		s.println("! refused")
	case reply.Refused:
		s.println("! " + notice)
	case notice != "":
		s.println(notice)
	}
}

// Send prints m and returns a Ref whose ID is its message number.
func (s *Shell) Send(ctx context.Context, ch notify.Channel, m notify.Message) (notify.Ref, error) {
	if err := ctx.Err(); err != nil {
		return notify.Ref{}, err
	}
	if ch.Platform != Platform {
		return notify.Ref{}, fmt.Errorf("shell: cannot send to %s: not a shell channel", ch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastMsg++
	id := strconv.Itoa(s.lastMsg)
	header := "── #" + id + channelNote(ch) + " ──\n"
	if err := s.writeLocked(header + Render(m, s.labeller(id, len(m.Buttons))) + s.savePicture(id, m.Attachment)); err != nil {
		return notify.Ref{}, fmt.Errorf("shell: send: %w", err)
	}
	s.rememberLocked(id, Render(m, nil))
	return notify.Ref{Channel: ch, ID: id}, nil
}

// Edit prints m again under an "(updated)" header, so a transcript shows
// every state of a progress card. Editing to what the message already shows
// prints nothing, as chat platforms treat it as a no-op.
func (s *Shell) Edit(ctx context.Context, ref notify.Ref, m notify.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ref.Channel.Platform != Platform {
		return fmt.Errorf("shell: cannot edit message on %s: not a shell channel", ref.Channel)
	}
	// Compared without button labels: only what the person reads counts.
	plain := Render(m, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.sent[ref.ID]; ok && prev == plain {
		return nil
	}
	id := oneLine(ref.ID)
	header := "── #" + id + channelNote(ref.Channel) + " (updated) ──\n"
	if err := s.writeLocked(header + Render(m, s.labeller(id, len(m.Buttons))) + s.savePicture(id, m.Attachment)); err != nil {
		return fmt.Errorf("shell: edit: %w", err)
	}
	// Refs from before a restart (the outbox relay keeps them) are printed
	// but not tracked: their ids may collide with this run's.
	if _, ok := s.sent[ref.ID]; ok {
		s.sent[ref.ID] = plain
	}
	return nil
}

// channelNote names the chat in a header when it is not the terminal itself,
// so routing to other shell channels stays visible.
func channelNote(ch notify.Channel) string {
	if ch.ID == TerminalChannel.ID && ch.Thread == "" {
		return ""
	}
	return " to " + oneLine(ch.String())
}

// labeller returns the label function for printing message id with n
// buttons, and records their data under id, replacing what an earlier
// printing of the same card had: an edited card's "7a" is its button now.
// A message printed with no buttons forgets the old ones (a finished job's
// card loses its Cancel).
func (s *Shell) labeller(id string, n int) func(int, notify.Button) string {
	if _, ok := s.buttons[id]; !ok {
		s.buttonOrder = append(s.buttonOrder, id)
		if len(s.buttonOrder) > keep {
			delete(s.buttons, s.buttonOrder[0])
			s.buttonOrder = slices.Delete(s.buttonOrder, 0, 1)
		}
	}
	datas := make([]string, n)
	s.buttons[id] = datas
	return func(i int, b notify.Button) string {
		if i < len(datas) {
			datas[i] = b.Data
		}
		return buttonName(id, i)
	}
}

func (s *Shell) rememberLocked(id, plain string) {
	s.sent[id] = plain
	s.sentOrder = append(s.sentOrder, id)
	if len(s.sentOrder) > keep {
		delete(s.sent, s.sentOrder[0])
		s.sentOrder = slices.Delete(s.sentOrder, 0, 1)
	}
}

// println writes one line of the shell's own (not the bot's) output.
func (s *Shell) println(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The shell's own notices have nowhere to report a failed write; the
	// next Send will.
	_ = s.writeLocked(line + "\n")
}

// writeLocked writes text in one Write. When a prompt is waiting for input,
// the text goes on a fresh line and the prompt is printed again after it.
func (s *Shell) writeLocked(text string) error {
	if s.promptShown {
		text = "\n" + text + s.promptText()
	}
	_, err := io.WriteString(s.out, text)
	return err
}

func (s *Shell) showPrompt() {
	if !s.prompt {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.promptShown {
		return
	}
	if _, err := io.WriteString(s.out, s.promptText()); err == nil {
		s.promptShown = true
	}
}

func (s *Shell) promptText() string {
	_, user := s.current()
	return user + "> "
}
