package release

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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

// execHost runs argv with os/exec, enough to drive real git here.
type execHost struct{}

func (execHost) Name() string { return "exec" }
func (execHost) Close() error { return nil }
func (execHost) Run(ctx context.Context, dir string, argv []string, out func(string)) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		out(sc.Text())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Argv: argv, Code: ee.ExitCode(), Output: string(b)}
	}
	return err
}

// Even if a ref starting with "-" got past validation, git would read it as
// a revision name, never as an option.
func TestGitResolveTreatsDashRefAsRevision(t *testing.T) {
	dir := t.TempDir()
	h := execHost{}
	tg := &target{host: h, name: "exec"}
	ctx := context.Background()
	for _, argv := range [][]string{
		{"git", "-C", dir, "init", "-q", "-b", "main"},
		{"git", "-C", dir, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "one"},
	} {
		if err := h.Run(ctx, "", argv, func(string) {}); err != nil {
			t.Fatal(err)
		}
	}
	sha, err := resolveRef(ctx, tg, dir, "main")
	if err != nil || !shaPattern.MatchString(sha) {
		t.Fatalf("main: %q, %v", sha, err)
	}
	if got := gitCheckout(dir, sha); got[len(got)-1] != sha {
		t.Fatalf("checkout argv %q", got)
	}

	marker := filepath.Join(t.TempDir(), "pwned")
	for _, ref := range []string{"--orphan=evil", "--output=" + marker, "-h"} {
		argv := gitResolve(dir, ref)
		if i := slices.Index(argv, "--end-of-options"); i < 0 || !strings.HasPrefix(argv[i+1], ref) {
			t.Fatalf("%q: ref not after --end-of-options: %q", ref, argv)
		}
		if _, err := resolveRef(ctx, tg, dir, ref); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("%q: %v", ref, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a ref was read as --output")
	}
	var branches []string
	_ = h.Run(ctx, "", []string{"git", "-C", dir, "branch", "--list", "evil"}, func(l string) { branches = append(branches, l) })
	if len(branches) != 0 {
		t.Fatalf("a ref was read as --orphan: %q", branches)
	}
}
