// Package sshtest starts real OpenSSH servers on loopback for tests: each
// a plain `sshd -D` process (no systemd, no system config) with a generated
// host key, accepting one generated ed25519 client key for the current user.
package sshtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHD is where Debian's openssh-server puts the daemon.
const SSHD = "/usr/sbin/sshd"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// Host is one running sshd.
type Host struct {
	Addr string // 127.0.0.1:PORT
	// HostKey is the host's ed25519 key, the one Cluster.KnownHosts pins.
	HostKey gossh.PublicKey
	// ECDSAKey is a second host key the server also holds, as real servers
	// hold several types; it is not pinned.
	ECDSAKey gossh.PublicKey

	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

// Cluster is a set of sshd hosts that share a client key and known_hosts.
type Cluster struct {
	Hosts []*Host
	// User is the account the servers accept (the user running the test).
	User string
	// Signer is the client key the servers accept; KeyFile holds it on disk
	// in OpenSSH format with mode 0600.
	Signer  gossh.Signer
	KeyFile string
	// KnownHosts pins every host's key.
	KnownHosts string
	// Dir holds the keys and config files.
	Dir string

	authorizedKeys string
}

// Require returns the sshd path, or ends the test: t.Fatal when CI or
// SHIPBOT_REQUIRE_INTEGRATION is set (a missing sshd there is a broken
// setup, not a reason to pass), t.Skip otherwise.
func Require(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		msg := SSHD + " is not installed (Debian: apt-get install openssh-server); run scripts/test.sh, which installs it"
		if os.Getenv("CI") != "" || os.Getenv("SHIPBOT_REQUIRE_INTEGRATION") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs /run/sshd: %v", err)
	}
	return SSHD
}

// Options change how the servers of a Cluster run.
type Options struct {
	// SSHDOptions are extra sshd_config settings ("ForceCommand=/x"),
	// given before the defaults so they win over them (sshd keeps the
	// first value of a keyword).
	SSHDOptions []string
	// Wrap, when set, returns the command line that runs host i's sshd
	// given sshd's own (path first): a benchmark starts each in a mount
	// namespace of its own.
	Wrap func(i int, sshd []string) []string
}

// Start starts n sshd hosts and stops them when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, Options{})
}

// StartWith starts n sshd hosts configured by opts.
func StartWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	Require(t)
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	dir := t.TempDir()
	c := &Cluster{User: u.Username, Dir: dir, KnownHosts: filepath.Join(dir, "known_hosts")}

	pub, signer, pemBytes := NewKey(t)
	c.Signer = signer
	c.KeyFile = filepath.Join(dir, "id_ed25519")
	writeFile(t, c.KeyFile, pemBytes, 0o600)
	c.authorizedKeys = filepath.Join(dir, "authorized_keys")
	writeFile(t, c.authorizedKeys, gossh.MarshalAuthorizedKey(pub), 0o600)

	for i := range n {
		c.Hosts = append(c.Hosts, c.startHost(t, i, opts))
	}
	var lines []string
	for _, h := range c.Hosts {
		lines = append(lines, KnownHostsLine(h.Addr, h.HostKey))
	}
	writeFile(t, c.KnownHosts, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	return c
}

// NewKey generates an ed25519 key: its public half, a signer, and the
// private key in OpenSSH PEM format.
func NewKey(t testing.TB) (gossh.PublicKey, gossh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey(), signer, pem.EncodeToMemory(block)
}

func newECDSAKey(t testing.TB) (gossh.PublicKey, []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := gossh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return pub, pem.EncodeToMemory(block)
}

// KnownHostsLine is the known_hosts line pinning key for addr.
func KnownHostsLine(addr string, key gossh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

var (
	penaltiesOnce sync.Once
	penaltiesOpt  []string
)

// penaltyOptions turns off OpenSSH's per-source penalties where the
// installed sshd has them (9.8+): tests deliberately abort handshakes from
// 127.0.0.1, which would otherwise get loopback refused for a while. Older
// servers reject the unknown option, so it is probed once.
func penaltyOptions(t testing.TB, hostKey string) []string {
	penaltiesOnce.Do(func() {
		probe := exec.Command(SSHD, "-t", "-f", "/dev/null", "-h", hostKey, "-o", "PerSourcePenalties=no")
		if probe.Run() == nil {
			penaltiesOpt = []string{"-o", "PerSourcePenalties=no"}
		}
	})
	return penaltiesOpt
}

func (c *Cluster) startHost(t testing.TB, i int, opts Options) *Host {
	t.Helper()
	pub, _, pemBytes := NewKey(t)
	keyFile := filepath.Join(c.Dir, fmt.Sprintf("host%d_ed25519", i+1))
	writeFile(t, keyFile, pemBytes, 0o600)
	ecPub, ecPEM := newECDSAKey(t)
	ecFile := filepath.Join(c.Dir, fmt.Sprintf("host%d_ecdsa", i+1))
	writeFile(t, ecFile, ecPEM, 0o600)

	var lastErr error
	// A free port can be taken between probing and sshd binding it; retry.
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		h := &Host{
			Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			HostKey:  pub,
			ECDSAKey: ecPub,
			exited:   make(chan struct{}),
			log:      &syncBuffer{},
		}
		args := []string{"-D", "-e", "-f", "/dev/null",
			"-p", strconv.Itoa(port), "-h", keyFile, "-h", ecFile}
		for _, o := range opts.SSHDOptions {
			args = append(args, "-o", o)
		}
		args = append(args,
			"-o", "ListenAddress=127.0.0.1",
			"-o", "PidFile=none",
			"-o", "AuthorizedKeysFile="+c.authorizedKeys,
			"-o", "StrictModes=no",
			"-o", "UsePAM=no",
			"-o", "PasswordAuthentication=no",
			"-o", "KbdInteractiveAuthentication=no",
			"-o", "MaxStartups=100",
			// bash runs ~/.bashrc for every sshd command unless SHLVL
			// says it is nested. The tester's shell setup (pyenv, nvm...)
			// is no part of the test and can cost 100+ ms per command.
			"-o", "SetEnv=SHLVL=1",
		)
		args = append(args, penaltyOptions(t, keyFile)...)
		argv := append([]string{SSHD}, args...)
		if opts.Wrap != nil {
			argv = opts.Wrap(i, argv)
		}
		h.cmd = exec.Command(argv[0], argv[1:]...)
		h.cmd.Stdout = h.log
		h.cmd.Stderr = h.log
		if err := h.cmd.Start(); err != nil {
			t.Fatalf("start sshd: %v", err)
		}
		go func() { _ = h.cmd.Wait(); close(h.exited) }()
		if lastErr = h.waitReady(); lastErr == nil {
			t.Cleanup(func() {
				h.Stop()
				if t.Failed() {
					t.Logf("sshd %s log:\n%s", h.Addr, h.log.String())
				}
			})
			return h
		}
		h.Stop()
	}
	t.Fatalf("sshd did not start: %v", lastErr)
	return nil
}

// waitReady polls until the server sends its SSH banner.
func (h *Host) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", h.Addr, time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 8)
			n, _ := conn.Read(buf)
			_ = conn.Close()
			if string(buf[:n]) == "SSH-2.0-" {
				return nil
			}
		}
		select {
		case <-h.exited:
			return fmt.Errorf("sshd on %s exited: %s", h.Addr, strings.TrimSpace(h.log.String()))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s not ready within %s: %s", h.Addr, startTimeout, h.log.String())
		}
	}
}

// Stop kills the server. Sessions it already forked end when their
// connections close.
func (h *Host) Stop() {
	if h.cmd.Process != nil {
		_ = h.cmd.Process.Kill()
	}
	<-h.exited
}

// Log is what sshd wrote so far.
func (h *Host) Log() string { return h.log.String() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

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
