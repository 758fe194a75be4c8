package ssh

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

func writeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An artifact built on the bot's machine reaches every host intact, is
// unpacked into the release and removed.
func TestArtifactDeployOverSSH(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	dir := t.TempDir()
	// Binary-ish content and a name with a space survive the trip.
	payload := strings.Repeat("\x00\x01\xfe\xff shipbot ", 5000)
	writeTarGz(t, filepath.Join(dir, "helpdesk-v7.tar.gz"), map[string]string{
		"app.txt":         "from the artifact\n",
		"static/logo.bin": payload,
		"with space.txt":  "ok\n",
	})
	rc := f.rc
	rc.Fetch = deploy.Fetch{Artifact: filepath.Join(dir, "helpdesk-{{ref}}.tar.gz"), DefaultRef: "v7"}
	res, p, err := f.deploy(t, rc, "r1", "")
	if err != nil || res.Release != "r1" {
		t.Fatalf("deploy: %+v %v\n%s", res, err, p.dump())
	}
	for i, base := range f.bases {
		rel := filepath.Join(base, "releases", "r1")
		if got := readFileT(t, filepath.Join(rel, "app.txt")); got != "from the artifact\n" {
			t.Errorf("host %d: app.txt %q", i+1, got)
		}
		if got := readFileT(t, filepath.Join(rel, "static", "logo.bin")); got != payload {
			t.Errorf("host %d: binary file changed in transit (%d bytes, want %d)", i+1, len(got), len(payload))
		}
		if _, err := os.Stat(filepath.Join(rel, "with space.txt")); err != nil {
			t.Errorf("host %d: %v", i+1, err)
		}
		if _, err := os.Stat(filepath.Join(rel, ".artifact.tar.gz")); !os.IsNotExist(err) {
			t.Errorf("host %d: uploaded archive left in the release (stat: %v)", i+1, err)
		}
	}
	f.requireLive(t, "r1")
}

func TestUploadToHostileNameAndCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	opened, err := NewOpener(f.hosts[0]).Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	up := opened.(interface {
		Upload(ctx context.Context, r io.Reader, dst string, mode os.FileMode) error
	})
	dst := filepath.Join(f.bases[0], "it's $(hostile); name")
	if err := up.Upload(context.Background(), strings.NewReader("data"), dst, 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o640 || readFileT(t, dst) != "data" {
		t.Fatalf("uploaded file: %v %v", fi, err)
	}
	// A reader that never ends: cancel must stop the upload.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = up.Upload(ctx, endless{}, filepath.Join(f.bases[0], "endless"), 0o600)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled upload: %v after %s", err, time.Since(start))
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func readFileT(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
