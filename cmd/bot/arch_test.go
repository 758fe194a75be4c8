package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/shipbot/shipbot/"

type pkgInfo struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) map[string]pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]pkgInfo{}
	dec := json.NewDecoder(out)
	for {
		var p pkgInfo
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, mod)] = p
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestImportDirection holds the line DESIGN.md draws: audit <- deploy <-
// notify <- commands <- adapters <- cmd/bot; the core imports no adapter,
// database, HTTP, SSH or chat SDK; adapters do not import each other.
func TestImportDirection(t *testing.T) {
	pkgs := listPackages(t)
	core := map[string][]string{ // package -> internal packages it may import
		"internal/audit":    {},
		"internal/deploy":   {"internal/audit"},
		"internal/notify":   {"internal/audit", "internal/deploy"},
		"internal/commands": {"internal/audit", "internal/deploy", "internal/notify", "internal/insights"},
		// Delivery figures: computed in the core, drawn by an adapter.
		"internal/insights": {"internal/audit", "internal/deploy", "internal/notify"},
		// The release runner is core logic over the Host seam: it must not
		// reach the machine itself.
		"internal/deploy/release": {"internal/audit", "internal/deploy"},
	}
	forbidden := []string{"database/sql", "net/http", "os/exec", "golang.org/x/crypto/ssh", "github.com/go-telegram/",
		"github.com/slack-go/", "modernc.org/", "github.com/go-chi/", "gonum.org/"}
	for name, allowed := range core {
		p, ok := pkgs[name]
		if !ok {
			t.Errorf("core package %s missing", name)
			continue
		}
		for _, dep := range p.Deps {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", name, dep)
				}
			}
		}
		for _, imp := range p.Imports {
			if rel, ok := strings.CutPrefix(imp, mod); ok && !contains(allowed, rel) {
				t.Errorf("%s imports %s; core may import only %v", name, rel, allowed)
			}
		}
	}
	adapters := []string{"internal/chat/", "internal/sqlite", "internal/deploy/local", "internal/deploy/ssh",
		"internal/deploy/dokploy", "internal/httpserver", "internal/deploy/httpcheck", "internal/api", "internal/mcp", "internal/insights/plot"}
	isAdapter := func(p string) string {
		for _, a := range adapters {
			// "internal/api" is that package and those under it, not internal/apitoken.
			if p == a || strings.HasPrefix(p, strings.TrimSuffix(a, "/")+"/") {
				return a
			}
		}
		return ""
	}
	for name, p := range pkgs {
		group := isAdapter(name)
		if group == "" || strings.HasSuffix(name, "test") {
			continue
		}
		for _, imp := range p.Imports {
			rel, ok := strings.CutPrefix(imp, mod)
			if !ok {
				continue
			}
			if other := isAdapter(rel); other != "" && other != group && other != "internal/deploy/httpcheck" {
				t.Errorf("adapter %s imports adapter %s", name, rel)
			}
		}
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
