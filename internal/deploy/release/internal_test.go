package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestNewerFirstSortsNaturally(t *testing.T) {
	ids := []string{"r9", "r10", "r1", "20240101-2", "20240101-10", "r2"}
	newerFirst(ids)
	want := []string{"r10", "r9", "r2", "r1", "20240101-10", "20240101-2"}
	if !slices.Equal(ids, want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
}

func TestExpandKnownVariablesOnly(t *testing.T) {
	vars := map[string]string{"release": "r1", "ref": "{{release}}", "path": "/srv/a"}
	got := expand([]string{"{{path}}/releases/{{release}}", "{{.Names}}", "{{ref}}", "x{{nope}}y", "{{release"}, vars)
	want := []string{"/srv/a/releases/r1", "{{.Names}}", "{{release}}", "x{{nope}}y", "{{release"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestCapBytesKeepsNewest(t *testing.T) {
	got, cut := capBytes([]string{"aaaa", "bbbb", "cc"}, 8)
	if !slices.Equal(got, []string{"bbbb", "cc"}) || !cut {
		t.Fatalf("%q %v", got, cut)
	}
	got, cut = capBytes([]string{"héllo wörld"}, 6)
	if len(strings.Join(got, "\n"))+1 > 6 || !cut || !strings.HasSuffix(got[0], "rld") {
		t.Fatalf("%q %v", got, cut)
	}
	got, cut = capBytes([]string{"a", "b"}, 4)
	if len(got) != 2 || cut {
		t.Fatalf("%q %v", got, cut)
	}
}

func TestSharedEntryRejectsEscapes(t *testing.T) {
	for _, s := range []string{"", "/etc", "..", "../x", "a/../../x", ".", "-rf"} {
		if _, _, err := sharedEntry(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if rel, dir, err := sharedEntry("storage/logs/"); err != nil || rel != "storage/logs" || !dir {
		t.Errorf("storage/logs/: %q %v %v", rel, dir, err)
	}
}

// gitScript runs the fetch part of a prepare script for ref, cloning repo
// into a new dir, and returns the dir and the script's output.
func gitScript(t *testing.T, repo, ref string) (string, string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "release")
	s := newScript("test", false, 0)
	s.begin(StepFetch)
	s.gitFetch(dir, repo, ref)
	s.end(StepFetch)
	s.finish()
	out, err := exec.Command("/bin/sh", "-c", s.out.Text).CombinedOutput()
	return dir, string(out), err
}

// Even if a ref starting with "-" got past validation, git would read it as
// a revision name, never as an option.
func TestGitFetchTreatsDashRefAsRevision(t *testing.T) {
	repo := t.TempDir()
	for _, argv := range [][]string{
		{"git", "-C", repo, "init", "-q", "-b", "main"},
		{"git", "-C", repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "one"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	dir, out, err := gitScript(t, repo, "main")
	if err != nil || !strings.Contains(out, "@@shipbot-test end fetch 0") {
		t.Fatalf("main: %v\n%s", err, out)
	}
	head, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{40}\n$`).Match(head) {
		t.Fatalf("checked out %q, %v", head, err)
	}

	marker := filepath.Join(t.TempDir(), "pwned")
	for _, ref := range []string{"--orphan=evil", "--output=" + marker, "-h"} {
		dir, out, _ := gitScript(t, repo, ref)
		if !strings.Contains(out, "@@shipbot-test fail noref") {
			t.Errorf("%q: not refused as an unknown ref:\n%s", ref, out)
		}
		if b, _ := exec.Command("git", "-C", dir, "branch", "--list", "evil").Output(); len(b) != 0 {
			t.Fatalf("a ref was read as --orphan: %q", b)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a ref was read as --output")
	}
}
