package ssh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

const (
	defaultConnectTimeout = 10 * time.Second
	defaultKeepalive      = 15 * time.Second
	// keepaliveMisses is how many keepalive intervals may pass without a
	// reply before the connection is given up (OpenSSH's ServerAliveCountMax).
	keepaliveMisses = 3
	defaultMaxLine  = 8 << 10
	// defaultCancelGrace is how long a cancelled Run waits for sshd to
	// confirm the step ended (sshd closes the session only once the step
	// exited) before it drops the whole connection: a server that does not
	// answer must not hold a cancelled job. It outlasts the remote
	// kill-after, so a step that ignores the hangup is waited for and killed
	// rather than abandoned.
	defaultCancelGrace = (killAfter + 5) * time.Second
)

// HostConfig is how to reach one host.
type HostConfig struct {
	// Name is how the host appears in progress and errors; "" means Addr.
	Name string
	// Addr is host or host:port (port 22 when none; see NormalizeAddr).
	Addr string
	User string
	// Signer is the deploy key (see LoadSigner). No agent, no forwarding.
	Signer gossh.Signer
	// HostKeys verifies the host key (see HostKeyCallback). Required: there
	// is no fallback that trusts whatever the host presents. Before each
	// handshake it is also asked about a throwaway key, to learn from the
	// *knownhosts.KeyError which key types are pinned for the host.
	HostKeys gossh.HostKeyCallback
	// ConnectTimeout bounds the TCP dial and the SSH handshake together
	// (0: 10s).
	ConnectTimeout time.Duration
	// Keepalive is the interval of keepalive requests while a job holds the
	// connection (0: 15s, < 0: none). Three unanswered intervals drop the
	// connection, which fails the running step instead of hanging it.
	Keepalive time.Duration
	// BasePath, when set, is where the app lives on this host instead of the
	// recipe's Path (several instances on one machine, or test hosts that
	// share a file system).
	BasePath string
	// MaxLine caps one output line in bytes (0: 8 KiB).
	MaxLine int

	// cancelGrace overrides defaultCancelGrace in tests.
	cancelGrace time.Duration
}

func (c *HostConfig) name() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Addr
}

// Opener connects to one host, once per job.
type Opener struct {
	cfg HostConfig
}

var (
	_ release.Opener = (*Opener)(nil)
	_ release.Namer  = (*Opener)(nil)
	_ release.Host   = (*Host)(nil)
)

// NewOpener returns an Opener for cfg. Problems with cfg are reported by Open.
func NewOpener(cfg HostConfig) *Opener { return &Opener{cfg: cfg} }

// Name is the host's name, known without connecting.
func (o *Opener) Name() string { return o.cfg.name() }

// Open dials the host, verifies its key and authenticates. The returned
// Host holds the connection (one SSH session per script or command) until
// Close.
func (o *Opener) Open(ctx context.Context) (release.Host, error) {
	cfg := o.cfg
	switch {
	case cfg.Addr == "":
		return nil, errors.New("ssh host has no address")
	case cfg.User == "":
		return nil, fmt.Errorf("ssh host %s has no user", cfg.name())
	case cfg.Signer == nil:
		return nil, fmt.Errorf("ssh host %s has no key", cfg.name())
	case cfg.HostKeys == nil:
		return nil, fmt.Errorf("ssh host %s has no known_hosts to verify its key against", cfg.name())
	}
	addr, err := NormalizeAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	// The host keeps the name it was configured with, as in Plan.
	cfg.Name, cfg.Addr = cfg.name(), addr
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = defaultKeepalive
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = defaultMaxLine
	}
	if cfg.cancelGrace <= 0 {
		cfg.cancelGrace = defaultCancelGrace
	}
	h := &Host{cfg: cfg}
	c, err := h.dial(ctx)
	if err != nil {
		return nil, err
	}
	h.cur = c
	if cfg.BasePath != "" {
		return basedHost{h}, nil
	}
	return h, nil
}

// Host is an open connection to one host. Each Run is one SSH session on it.
// If the connection is dropped (no keepalive reply, or a cancel the host
// never confirmed), the step running on it fails and the next Run dials
// again, so a job's clean-up or switch-back still gets to run.
type Host struct {
	cfg HostConfig

	mu     sync.Mutex // held while dialling, so one Run redials for all
	cur    *conn
	closed bool
}

// basedHost is a Host whose app lives under HostConfig.BasePath; the
// release runner asks for it through release.BasePather.
type basedHost struct{ *Host }

var _ release.BasePather = basedHost{}

func (b basedHost) BasePath() string { return b.cfg.BasePath }

func (h *Host) Name() string { return h.cfg.name() }

// Close ends the connection; a step still running on it is hung up.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.cur == nil {
		return nil
	}
	return h.cur.close(errors.New("host closed"))
}

func (h *Host) dial(ctx context.Context) (*conn, error) {
	cc, err := handshake(ctx, h.cfg.Addr, &gossh.ClientConfig{
		User:            h.cfg.User,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(h.cfg.Signer)},
		HostKeyCallback: h.cfg.HostKeys,
		Timeout:         h.cfg.ConnectTimeout,
	}, h.cfg.ConnectTimeout)
	var hke *HostKeyError
	if errors.As(err, &hke) {
		return nil, &deploy.DeniedError{Err: hke}
	}
	if err != nil {
		return nil, dialError(ctx, h.Name(), h.cfg.User, err)
	}
	c := &conn{client: gossh.NewClient(cc.Conn, cc.chans, cc.reqs), done: make(chan struct{})}
	if h.cfg.Keepalive > 0 {
		go c.keepalive(h.cfg.Keepalive)
	}
	return c, nil
}

// conn returns the working connection, dialling again if it was dropped.
func (h *Host) conn(ctx context.Context) (*conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("ssh %s: host is closed", h.Name())
	}
	if h.cur != nil && h.cur.lostErr() == nil {
		return h.cur, nil
	}
	c, err := h.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconnect to %s: %w", h.Name(), err)
	}
	h.cur = c
	return c, nil
}

// conn is one SSH connection of a Host.
type conn struct {
	client *gossh.Client
	done   chan struct{} // closed with the connection

	once sync.Once
	mu   sync.Mutex
	lost error // why the connection was closed
}

func (c *conn) close(why error) error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		c.lost = why
		c.mu.Unlock()
		close(c.done)
		err = c.client.Close()
	})
	return err
}

func (c *conn) lostErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// explain wraps err from a command on c, naming why c was dropped if it was.
func (c *conn) explain(host string, err error) error {
	if lost := c.lostErr(); lost != nil {
		return fmt.Errorf("connection to %s lost: %w", host, lost)
	}
	return fmt.Errorf("ssh %s: %w", host, err)
}

// keepalive asks the server for a reply every interval. OpenSSH answers
// keepalive@openssh.com with a failure reply; any reply proves the
// connection works. No reply within keepaliveMisses intervals drops it.
func (c *conn) keepalive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		replied := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		wait := time.NewTimer(keepaliveMisses * interval)
		select {
		case <-c.done:
			wait.Stop()
			return
		case err := <-replied:
			wait.Stop()
			if err != nil {
				_ = c.close(fmt.Errorf("keepalive failed: %w", err))
				return
			}
		case <-wait.C:
			_ = c.close(fmt.Errorf("no reply to keepalive within %s", keepaliveMisses*interval))
			return
		}
	}
}

// ptyModes: nothing is typed into the PTY, so nothing should be echoed.
var ptyModes = gossh.TerminalModes{gossh.ECHO: 0}

// Run executes argv on the host in dir and streams its combined output
// (reads and backups; deploy phases go through RunScript).
//
// The step gets a PTY for one reason: cancellation. Closing a session
// without a PTY leaves the remote command running, and sshd does not deliver
// signal requests to every user's processes. Closing a session with a PTY
// makes sshd close the PTY, and the kernel hangs up the step (SIGHUP to
// it and its foreground process group); the remote timeout wrapper forwards
// the hangup and kills the step a few seconds later if it ignored it. The
// same happens when the bot dies and its connection drops.
func (h *Host) Run(ctx context.Context, dir string, argv []string, out func(line string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var limit time.Duration
	if dl, ok := ctx.Deadline(); ok {
		limit = time.Until(dl)
		if limit <= 0 {
			return context.DeadlineExceeded
		}
	}
	cmd, err := remoteCommand(dir, argv, limit)
	if err != nil {
		return err
	}

	c, err := h.conn(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}

	// finished tells a pending cancel that Run is over.
	finished := make(chan struct{})
	defer close(finished)
	var mu sync.Mutex
	var sess *gossh.Session
	stopCancel := context.AfterFunc(ctx, func() {
		mu.Lock()
		s := sess
		mu.Unlock()
		if s != nil {
			// sshd honours this only where it runs the session in an
			// unprivileged child (not for root); the hangup covers the rest.
			_ = s.Signal(gossh.SIGKILL)
			_ = s.Close()
		}
		select {
		case <-finished:
		case <-time.After(h.cfg.cancelGrace):
			_ = c.close(fmt.Errorf("the host did not confirm a cancelled command within %s", h.cfg.cancelGrace))
		}
	})
	defer stopCancel()

	s, err := c.client.NewSession()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.explain(h.Name(), err)
	}
	mu.Lock()
	sess = s
	mu.Unlock()
	defer s.Close()
	if ctx.Err() != nil {
		// The cancel may have fired before sess was set.
		return ctx.Err()
	}

	w := release.NewLineWriter(h.cfg.MaxLine, out)
	defer w.Close()
	s.Stdout = w
	s.Stderr = w // empty with a PTY, which merges both streams
	if err := s.RequestPty("dumb", 50, 200, ptyModes); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.explain(h.Name(), fmt.Errorf("request pty: %w", err))
	}
	if err := s.Start(cmd); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.explain(h.Name(), fmt.Errorf("start %s: %w", argv[0], err))
	}
	err = s.Wait()
	w.Close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		// A step killed by a signal has 128+signal here, as in a shell.
		return &release.ExitError{Argv: append([]string(nil), argv...), Code: ee.ExitStatus(), Output: w.Tail()}
	}
	return c.explain(h.Name(), fmt.Errorf("%s: %w", argv[0], err))
}
