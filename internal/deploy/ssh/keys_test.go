package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/shipbot/shipbot/internal/deploy/ssh/sshtest"
)

func TestLoadSignerChecksPermissions(t *testing.T) {
	t.Parallel()
	pub, _, pemBytes := sshtest.NewKey(t)
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}

	good := write("id_ok", pemBytes, 0o600)
	s, err := LoadSigner(good)
	if err != nil {
		t.Fatalf("0600 key: %v", err)
	}
	if !bytes.Equal(s.PublicKey().Marshal(), pub.Marshal()) {
		t.Fatal("loaded a different key")
	}
	if _, err := LoadSigner(write("id_ro", pemBytes, 0o400)); err != nil {
		t.Fatalf("0400 key: %v", err)
	}

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o610} {
		p := write("id_"+mode.String(), pemBytes, mode)
		_, err := LoadSigner(p)
		if err == nil {
			t.Fatalf("mode %04o: key accepted", mode)
		}
		for _, want := range []string{p, "group or others", "chmod 600"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: error %q lacks %q", mode, err, want)
			}
		}
		// The message never shows key material.
		if strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("error shows the key: %v", err)
		}
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := gossh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(write("id_pass", pem.EncodeToMemory(block), 0o600)); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("passphrase key: %v", err)
	}
	if _, err := LoadSigner(write("id_junk", []byte("not a key"), 0o600)); err == nil || !strings.Contains(err.Error(), "cannot be read as a private key") {
		t.Errorf("junk key: %v", err)
	}
	if _, err := LoadSigner(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing key file accepted")
	}
	if _, err := LoadSigner(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as key: %v", err)
	}
}

func TestHostKeyCallbackNeedsAFile(t *testing.T) {
	t.Parallel()
	if _, err := HostKeyCallback(""); err == nil {
		t.Error("no known_hosts path accepted")
	}
	if _, err := HostKeyCallback(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing known_hosts accepted")
	}
	if _, err := NewOpener(HostConfig{Addr: "127.0.0.1:22", User: "u", Signer: mustSigner(t)}).Open(context.Background()); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Errorf("a host without host key verification: %v", err)
	}
}

func mustSigner(t *testing.T) gossh.Signer {
	_, s, _ := sshtest.NewKey(t)
	return s
}

// openWithKnownHosts opens host 0 of c with known_hosts holding lines.
func openWithKnownHosts(t *testing.T, c *sshtest.Cluster, lines ...string) error {
	t.Helper()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cb, err := HostKeyCallback(kh)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hostConfig(t, c, 0)
	cfg.HostKeys = cb
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := NewOpener(cfg).Open(ctx)
	if err == nil {
		_ = h.Close()
	}
	return err
}

func TestUnknownHostIsRefusedShowingItsFingerprint(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	err := openWithKnownHosts(t, c, "# nothing pinned")
	var hke *HostKeyError
	if !errors.As(err, &hke) {
		t.Fatalf("want *HostKeyError, got %v", err)
	}
	presented := gossh.FingerprintSHA256(c.Hosts[0].HostKey)
	if !hke.Unknown || hke.Presented != presented || len(hke.Expected) != 0 || hke.Host != c.Hosts[0].Addr {
		t.Fatalf("error = %+v, want unknown %s presenting %s", hke, c.Hosts[0].Addr, presented)
	}
	for _, want := range []string{presented, "bot hosts scan " + c.Hosts[0].Addr, "not in"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestChangedHostKeyIsRefusedShowingBothFingerprints(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	old, _, _ := sshtest.NewKey(t)
	err := openWithKnownHosts(t, c, sshtest.KnownHostsLine(c.Hosts[0].Addr, old))
	var hke *HostKeyError
	if !errors.As(err, &hke) {
		t.Fatalf("want *HostKeyError, got %v", err)
	}
	presented := gossh.FingerprintSHA256(c.Hosts[0].HostKey)
	expected := gossh.FingerprintSHA256(old)
	if hke.Unknown || hke.Presented != presented || len(hke.Expected) != 1 || hke.Expected[0] != expected {
		t.Fatalf("error = %+v, want presented %s and expected %s", hke, presented, expected)
	}
	for _, want := range []string{presented, expected, "CHANGED"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestRevokedHostKeyIsRefused(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	err := openWithKnownHosts(t, c,
		"@revoked "+sshtest.KnownHostsLine("*", c.Hosts[0].HostKey),
		sshtest.KnownHostsLine(c.Hosts[0].Addr, c.Hosts[0].HostKey))
	var hke *HostKeyError
	if !errors.As(err, &hke) || !hke.Revoked || !strings.Contains(err.Error(), "@revoked") {
		t.Fatalf("want a revoked *HostKeyError, got %v", err)
	}
}

// A server holding several host key types must be asked for the pinned
// type; otherwise a perfectly known host looks like a changed key.
func TestPinnedKeyTypeIsTheOneNegotiated(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	if err := openWithKnownHosts(t, c, sshtest.KnownHostsLine(c.Hosts[0].Addr, c.Hosts[0].ECDSAKey)); err != nil {
		t.Fatalf("host pinned by its ECDSA key only: %v", err)
	}
	if err := openWithKnownHosts(t, c, sshtest.KnownHostsLine(c.Hosts[0].Addr, c.Hosts[0].HostKey)); err != nil {
		t.Fatalf("host pinned by its ed25519 key only: %v", err)
	}
}

func TestScanHostKeyPrintsALineThatPinsTheHost(t *testing.T) {
	t.Parallel()
	c := sshtest.Start(t, 1)
	addr := c.Hosts[0].Addr
	line, fp, err := ScanHostKey(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if fp != gossh.FingerprintSHA256(c.Hosts[0].HostKey) {
		t.Errorf("fingerprint %s, want the ed25519 host key's %s", fp, gossh.FingerprintSHA256(c.Hosts[0].HostKey))
	}
	if want := sshtest.KnownHostsLine(addr, c.Hosts[0].HostKey); line != want {
		t.Errorf("line = %q, want %q", line, want)
	}
	// The scan wrote nothing: the host is still unknown to an empty file...
	var hke *HostKeyError
	if err := openWithKnownHosts(t, c, ""); !errors.As(err, &hke) || !hke.Unknown || hke.Presented != fp {
		t.Fatalf("after a scan: %v", err)
	}
	// ...and once an admin adds the line, it connects.
	if err := openWithKnownHosts(t, c, line); err != nil {
		t.Fatalf("with the scanned line: %v", err)
	}

	if _, _, err := ScanHostKey(context.Background(), "127.0.0.1:1"); err == nil {
		t.Error("scan of a closed port succeeded")
	}
}

// silentListener accepts connections and never says anything.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func TestHandshakeIsBoundedByTheConnectTimeout(t *testing.T) {
	t.Parallel()
	addr := silentListener(t)
	hk, err := HostKeyCallback(writeEmpty(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := HostConfig{Addr: addr, User: "deploy", Signer: mustSigner(t), HostKeys: hk, ConnectTimeout: 300 * time.Millisecond}

	start := time.Now()
	_, err = NewOpener(cfg).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("Open against a silent host = %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Open took %s with a 300ms connect timeout", took)
	}

	// The job's context ends a handshake too.
	cfg.ConnectTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = NewOpener(cfg).Open(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Open cancelled mid-handshake = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("cancelled Open took %s", took)
	}

	// A scan is bounded the same way.
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	if _, _, err := ScanHostKey(sctx, addr); err == nil {
		t.Error("scan of a silent host succeeded")
	}
}

func writeEmpty(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNormalizeAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"web1":             "web1:22",
		"web1:2222":        "web1:2222",
		"10.0.0.5":         "10.0.0.5:22",
		"::1":              "[::1]:22",
		"[::1]:2200":       "[::1]:2200",
		"[2001:db8::1]":    "[2001:db8::1]:22",
		"host.example.org": "host.example.org:22",
	} {
		if got, err := NormalizeAddr(in); err != nil || got != want {
			t.Errorf("NormalizeAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "web1:0", "web1:99999", "web1:ssh", "-oProxyCommand=x", "a b", "user@host", ":22"} {
		if got, err := NormalizeAddr(bad); err == nil {
			t.Errorf("NormalizeAddr(%q) = %q, want an error", bad, got)
		}
	}
}
