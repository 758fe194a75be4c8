package ssh

import (
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

// hostConfig is the HostConfig for host i of c, loading the key and
// known_hosts the way the wiring does.
func hostConfig(t testing.TB, c *sshtest.Cluster, i int) HostConfig {
	t.Helper()
	signer, err := LoadSigner(c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := HostKeyCallback(c.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	return HostConfig{
		Addr:           c.Hosts[i].Addr,
		User:           c.User,
		Signer:         signer,
		HostKeys:       hk,
		ConnectTimeout: 5 * time.Second,
		Keepalive:      -1,
	}
}

func open(t testing.TB, cfg HostConfig) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := NewOpener(cfg).Open(ctx)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Addr, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	switch h := h.(type) {
	case *Host:
		return h
	case basedHost:
		return h.Host
	}
	t.Fatalf("Open returned %T", h)
	return nil
}

// lines collects output lines from concurrent writers.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (c *lines) add(l string) {
	c.mu.Lock()
	c.l = append(c.l, l)
	c.mu.Unlock()
}

func (c *lines) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.l...)
}

// run runs argv on h and returns its output lines.
func run(t testing.TB, h release.Host, dir string, argv ...string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out lines
	err := h.Run(ctx, dir, argv, out.add)
	return out.get(), err
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

// processes returns the command lines of processes whose command line
// contains marker. The sshd hosts run on this machine, so their processes
// are ours to see.
func processes(t testing.TB, marker string) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-a", "-f", marker).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil // none
	}
	if err != nil {
		t.Fatalf("pgrep: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// progress records what a deploy reports.
type progress struct {
	mu     sync.Mutex
	steps  []string // "name state detail"
	output []string
}

var _ deploy.Progress = (*progress)(nil)

func (p *progress) Step(name string, state deploy.StepState, detail string) {
	p.mu.Lock()
	p.steps = append(p.steps, name+" "+string(state)+" "+detail)
	p.mu.Unlock()
}

func (p *progress) Output(line string) {
	p.mu.Lock()
	p.output = append(p.output, line)
	p.mu.Unlock()
}

func (p *progress) saw(prefix string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.steps {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func (p *progress) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "steps:\n  " + strings.Join(p.steps, "\n  ") + "\noutput:\n  " + strings.Join(p.output, "\n  ")
}

// freezingProxy forwards TCP to target. freeze makes the connections open
// at that moment pass nothing more either way while staying open, like a
// network that silently stopped delivering packets; later connections work.
type freezingProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	frozen chan struct{}
	conns  []net.Conn
	closed bool
}

func newFreezingProxy(t testing.TB, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target, frozen: make(chan struct{})}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) addr() string { return p.ln.Addr().String() }

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.frozen)
	p.frozen = make(chan struct{})
}

// close drops every connection, which the server sees as the client gone.
func (p *freezingProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (p *freezingProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *freezingProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !p.track(in) || !p.track(out) {
			_ = in.Close()
			_ = out.Close()
			return
		}
		p.mu.Lock()
		frozen := p.frozen
		p.mu.Unlock()
		go p.pipe(out, in, frozen)
		go p.pipe(in, out, frozen)
	}
}

func (p *freezingProxy) pipe(dst, src net.Conn, frozen <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			// Hold the data and the connection until the proxy is closed.
			_, _ = io.Copy(io.Discard, src)
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = dst.Close()
			return
		}
	}
}
