package release_test

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// tarGz packs dir's regular files into path, as a CI job would.
func tarGz(t *testing.T, dir, path string) {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func artifactFixture(t *testing.T, hosts int) (*fixture, string) {
	f := newFixture(t, hosts)
	dir := t.TempDir()
	tarGz(t, f.src, filepath.Join(dir, "app-v1.tar.gz"))
	f.runner.Recipe.Fetch = deploy.Fetch{Artifact: filepath.Join(dir, "app-{{ref}}.tar.gz"), DefaultRef: "v1"}
	return f, dir
}

func TestArtifactDeployUnpacksOnEveryHost(t *testing.T) {
	t.Parallel()
	f, _ := artifactFixture(t, 2)
	res, rec, err := f.deploy("r1", "", "")
	if err != nil || res.Release != "r1" {
		t.Fatalf("deploy: %+v %v\n%s", res, err, rec.output())
	}
	for _, base := range f.bases {
		if got := strings.TrimSpace(readFile(t, filepath.Join(base, "releases", "r1", "VERSION"))); got != "r1" {
			t.Fatalf("%s: VERSION %q: the artifact's build.sh did not run in the release", base, got)
		}
		if exists(filepath.Join(base, "releases", "r1", ".artifact.tar.gz")) {
			t.Fatalf("%s: uploaded archive left in the release", base)
		}
	}
	f.wantCurrent("r1")
}

func TestArtifactProblemsStopBeforeAnyHostIsTouched(t *testing.T) {
	t.Parallel()
	f, _ := artifactFixture(t, 2)
	// No artifact for this ref.
	if _, _, err := f.deploy("r1", "", "v2"); err == nil || !strings.Contains(err.Error(), "app-v2.tar.gz") {
		t.Fatalf("missing artifact: %v", err)
	}
	for _, base := range f.bases {
		if exists(filepath.Join(base, "releases")) {
			t.Fatalf("%s: releases/ created although the artifact is missing", base)
		}
	}
	// A host that cannot run the deploy scripts (which receive the artifact).
	f.runner.Hosts[1] = &faultHost{Host: f.hosts[1]}
	_, _, err := f.deploy("r1", "", "")
	if err == nil || !strings.Contains(err.Error(), "cannot run deploy scripts") {
		t.Fatalf("host without upload: %v", err)
	}
	if exists(filepath.Join(f.bases[0], "releases")) {
		t.Fatal("a host was prepared although another cannot receive the artifact")
	}
}

func TestArtifactPathMustStayClean(t *testing.T) {
	t.Parallel()
	f, dir := artifactFixture(t, 1)
	f.runner.Recipe.Fetch.Artifact = dir + "/../" + filepath.Base(dir) + "/app-{{ref}}.tar.gz"
	if _, _, err := f.deploy("r1", "", ""); err == nil || !strings.Contains(err.Error(), "clean absolute path") {
		t.Fatalf("unclean path: %v", err)
	}
	f.runner.Recipe.Fetch = deploy.Fetch{Artifact: filepath.Join(dir, "app-{{ref}}.tar.gz")}
	if _, _, err := f.deploy("r1", "", ""); err == nil || !strings.Contains(err.Error(), "no ref") {
		t.Fatalf("{{ref}} without a ref: %v", err)
	}
}

var _ release.Uploader = (*dirHost)(nil)
