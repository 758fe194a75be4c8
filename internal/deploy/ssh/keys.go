package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// maxKeyFile bounds how much of a key file is read; real keys are a few KiB.
const maxKeyFile = 1 << 20

// LoadSigner reads the private key at path for public key authentication.
// It refuses a key file that group or others may access: a deploy key opens
// production servers, and ssh(1) refuses such a file for the same reason.
// Passphrase-protected keys are refused too, since nobody is there to type
// the passphrase; use a dedicated deploy key.
func LoadSigner(path string) (gossh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the bytes read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("ssh key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("ssh key %s is accessible by group or others (mode %04o); refusing to use it: run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", path, err)
	}
	signer, err := gossh.ParsePrivateKey(data)
	var missing *gossh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("ssh key %s is protected by a passphrase, which shipbot cannot type; use a dedicated deploy key without one", path)
	case err != nil:
		// The parser's message never contains key material.
		return nil, fmt.Errorf("ssh key %s cannot be read as a private key: %v", path, err)
	}
	return signer, nil
}

// HostKeyError is a host whose key is not the one pinned in known_hosts:
// unknown (Unknown, Expected empty), changed (Expected lists the pinned
// fingerprints) or marked @revoked (Revoked). The connection was refused
// during key exchange, before authentication, so nothing ran on the host.
// Open returns it wrapped in a *deploy.DeniedError, which the engine records
// as an audit denial.
type HostKeyError struct {
	Host      string   // host:port as dialled
	KeyType   string   // type of the presented key, "ssh-ed25519"
	Presented string   // SHA256 fingerprint of the presented key
	Expected  []string // SHA256 fingerprints pinned for the host (mismatch only)
	Unknown   bool
	Revoked   bool
	// KnownHosts is the file checked, for the hint in the message.
	KnownHosts string

	expectedKeys []string // "TYPE FINGERPRINT" for the message
	cause        error
}

func (e *HostKeyError) Error() string {
	file := e.KnownHosts
	if file == "" {
		file = "known_hosts"
	}
	if e.Revoked {
		return fmt.Sprintf("host key of %s (%s %s) is marked @revoked in %s; refused before running anything",
			e.Host, e.KeyType, e.Presented, file)
	}
	if e.Unknown {
		return fmt.Sprintf("host key of %s is not in %s: the host presented %s %s; refused before running anything. "+
			"If that is the host's key (check it on the host itself), add the line printed by `bot hosts scan %s` to %s",
			e.Host, file, e.KeyType, e.Presented, e.Host, file)
	}
	expected := e.expectedKeys
	if len(expected) == 0 {
		expected = e.Expected
	}
	return fmt.Sprintf("HOST KEY OF %s HAS CHANGED: the host presented %s %s but %s expects %s; refused before running anything. "+
		"Someone may be intercepting the connection, or the host was reinstalled: verify the new key on the host before replacing the pinned one",
		e.Host, e.KeyType, e.Presented, file, strings.Join(expected, " or "))
}

// Unwrap gives the knownhosts error behind e.
func (e *HostKeyError) Unwrap() error { return e.cause }

// HostKeyCallback verifies host keys against the known_hosts file at path
// and turns an unknown or changed key into a *HostKeyError. The file must
// exist (it may be empty): an unreadable pin list is an error, never a
// reason to trust whatever the host presents.
func HostKeyCallback(path string) (gossh.HostKeyCallback, error) {
	if path == "" {
		return nil, errors.New("no known_hosts file configured")
	}
	check, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return func(hostname string, remote net.Addr, key gossh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		hke := &HostKeyError{Host: hostname, KeyType: key.Type(), Presented: gossh.FingerprintSHA256(key), KnownHosts: path, cause: err}
		switch {
		case errors.As(err, &re):
			hke.Revoked = true
			return hke
		case !errors.As(err, &ke):
			return err
		}
		hke.Unknown = len(ke.Want) == 0
		for _, w := range ke.Want {
			fp := gossh.FingerprintSHA256(w.Key)
			hke.Expected = append(hke.Expected, fp)
			hke.expectedKeys = append(hke.expectedKeys, w.Key.Type()+" "+fp)
		}
		return hke
	}, nil
}

// preferredHostKeyAlgorithms is the order host key types are asked for: the
// same for a scan and for a host not yet pinned, so the fingerprint in an
// "unknown host" error is the one `bot hosts scan` prints.
var preferredHostKeyAlgorithms = []string{
	gossh.KeyAlgoED25519,
	gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
	gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256,
}

// probeKey is a key no known_hosts file contains; checking it reveals which
// keys are pinned for a host.
var probeKey = sync.OnceValues(func() (gossh.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return gossh.NewPublicKey(pub)
})

// hostKeyAlgorithms returns the host key algorithms to offer host: the types
// pinned for it, so a server holding several key types presents the one we
// know instead of a type we have no pin for, which would look like a changed
// key. For a host with no pin it returns the preferred order.
func hostKeyAlgorithms(check gossh.HostKeyCallback, host string, remote net.Addr) []string {
	probe, err := probeKey()
	if err != nil {
		return preferredHostKeyAlgorithms
	}
	var ke *knownhosts.KeyError
	if err := check(host, remote, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return preferredHostKeyAlgorithms
	}
	known := map[string]bool{}
	for _, w := range ke.Want {
		switch t := w.Key.Type(); t {
		case gossh.KeyAlgoRSA:
			known[gossh.KeyAlgoRSASHA512] = true
			known[gossh.KeyAlgoRSASHA256] = true
		default:
			known[t] = true
		}
	}
	var algos []string
	for _, a := range preferredHostKeyAlgorithms {
		if known[a] {
			algos = append(algos, a)
		}
	}
	if len(algos) == 0 {
		// Pinned types we have no preference for (certificates, sk keys):
		// let the library offer everything it supports.
		return nil
	}
	return algos
}

// NormalizeAddr returns s ("host", "host:port", "[v6]:port" or a bare IPv6
// address) as host:port, with port 22 when none is given.
func NormalizeAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty host address")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil {
			return net.JoinHostPort(ip.String(), "22"), nil
		}
		if strings.ContainsAny(s, ":[]") {
			return "", fmt.Errorf("host address %q is not HOST or HOST:PORT", s)
		}
		host, port = s, "22"
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, " \t\n/@") {
		return "", fmt.Errorf("host address %q has no valid host name", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("host address %q has an invalid port", s)
	}
	return net.JoinHostPort(host, port), nil
}

// errScanned stops a scan's handshake once the host key is seen.
var errScanned = errors.New("host key recorded")

// defaultScanTimeout bounds a scan when ctx has no deadline.
const defaultScanTimeout = 10 * time.Second

// ScanHostKey connects to addr ("host" or "host:port"), takes the host key
// it presents and hangs up before authenticating. It returns the
// known_hosts line for the key and its SHA256 fingerprint, for an admin to
// compare with the key on the host itself (ssh-keygen -lf) and then add.
// It trusts nothing: nothing is written anywhere.
func ScanHostKey(ctx context.Context, addr string) (line, fingerprint string, err error) {
	addr, err = NormalizeAddr(addr)
	if err != nil {
		return "", "", err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultScanTimeout)
		defer cancel()
	}
	var key gossh.PublicKey
	cfg := &gossh.ClientConfig{
		User: "shipbot-scan",
		HostKeyCallback: func(_ string, _ net.Addr, k gossh.PublicKey) error {
			key = k
			return errScanned
		},
		HostKeyAlgorithms: preferredHostKeyAlgorithms,
	}
	conn, err := handshake(ctx, addr, cfg, 0)
	if conn != nil {
		_ = conn.Close()
	}
	if key == nil {
		if err == nil {
			err = errors.New("the host presented no key")
		}
		return "", "", fmt.Errorf("scan %s: %w", addr, err)
	}
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key), gossh.FingerprintSHA256(key), nil
}

// handshake dials addr and runs the SSH handshake, bounded by timeout (if
// > 0) and by ctx. ClientConfig.Timeout only bounds the TCP dial, and a host
// that accepts and then says nothing would hold the handshake forever, so a
// deadline is set on the connection until the handshake is done.
func handshake(ctx context.Context, addr string, cfg *gossh.ClientConfig, timeout time.Duration) (*clientConn, error) {
	hctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// why says why the handshake stopped early: the caller ended it (ctx's
	// error, so errors.Is finds it) or the host did not answer in time.
	why := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("no answer within %s", timeout)
	}
	var d net.Dialer
	conn, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		if hctx.Err() != nil {
			return nil, fmt.Errorf("connect to %s: %w", addr, why())
		}
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if dl, ok := hctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Closing the connection is the only way to interrupt a handshake.
	stop := context.AfterFunc(hctx, func() { _ = conn.Close() })
	if cfg.HostKeyAlgorithms == nil && cfg.HostKeyCallback != nil {
		cfg.HostKeyAlgorithms = hostKeyAlgorithms(cfg.HostKeyCallback, addr, conn.RemoteAddr())
	}
	c, chans, reqs, err := gossh.NewClientConn(conn, addr, cfg)
	interrupted := !stop()
	if err != nil {
		_ = conn.Close()
		var hke *HostKeyError
		switch {
		case errors.As(err, &hke):
			return nil, hke
		case errors.Is(err, errScanned):
			return nil, err
		case interrupted || isTimeout(err):
			return nil, fmt.Errorf("ssh handshake with %s: %w", addr, why())
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	if interrupted {
		_ = c.Close()
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, why())
	}
	_ = conn.SetDeadline(time.Time{})
	return &clientConn{Conn: c, chans: chans, reqs: reqs}, nil
}

// clientConn carries what NewClientConn returned to NewClient.
type clientConn struct {
	gossh.Conn
	chans <-chan gossh.NewChannel
	reqs  <-chan *gossh.Request
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
