package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/shipbot/shipbot/internal/chat/shell"
	"github.com/shipbot/shipbot/internal/chat/slack"
	"github.com/shipbot/shipbot/internal/chat/telegram"
	"github.com/shipbot/shipbot/internal/notify"
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
		// What the chat adapters share: no SDK, no adapter.
		"internal/chat": {"internal/audit", "internal/deploy", "internal/notify", "internal/commands"},
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
	for _, v := range adapterImports(pkgs) {
		t.Error(v)
	}
}

// adapters are the outside-facing packages, each a group of its own (with
// its subpackages): one never imports another. internal/chat, what the
// chat adapters share, is not one of them, so each may import it.
var adapters = []string{"internal/chat/shell", "internal/chat/telegram", "internal/chat/slack", "internal/sqlite",
	"internal/deploy/local", "internal/deploy/ssh", "internal/deploy/dokploy", "internal/httpserver", "internal/deploy/httpcheck",
	"internal/api", "internal/mcp", "internal/insights/plot"}

func adapterOf(p string) string {
	for _, a := range adapters {
		// "internal/api" is that package and those under it, not internal/apitoken.
		if p == a || strings.HasPrefix(p, a+"/") {
			return a
		}
	}
	return ""
}

// adapterImports lists every import of one adapter by another (test helper
// packages, named *test, may import what they fake).
func adapterImports(pkgs map[string]pkgInfo) []string {
	var out []string
	for name, p := range pkgs {
		group := adapterOf(name)
		if group == "" || strings.HasSuffix(name, "test") {
			continue
		}
		for _, imp := range p.Imports {
			rel, ok := strings.CutPrefix(imp, mod)
			if !ok {
				continue
			}
			if other := adapterOf(rel); other != "" && other != group && other != "internal/deploy/httpcheck" {
				out = append(out, "adapter "+name+" imports adapter "+rel)
			}
		}
	}
	return out
}

// One chat adapter importing another is refused like any adapter pair
// (before, internal/chat/ was one group and telegram could import slack).
func TestChatAdaptersDoNotImportEachOther(t *testing.T) {
	pkgs := map[string]pkgInfo{
		"internal/chat/telegram": {Imports: []string{mod + "internal/chat/slack", mod + "internal/chat"}},
		"internal/chat/slack":    {Imports: []string{mod + "internal/chat", mod + "internal/chat/slack/slackfake"}},
	}
	got := adapterImports(pkgs)
	if len(got) != 1 || got[0] != "adapter internal/chat/telegram imports adapter internal/chat/slack" {
		t.Fatalf("violations %q", got)
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

// The platforms config accepts are the chat adapters there are.
func TestPlatformsAreTheChatAdapters(t *testing.T) {
	got := []string{shell.Platform, telegram.Platform, slack.Platform}
	if !slices.Equal(got, notify.Platforms) {
		t.Fatalf("adapters %v, notify.Platforms %v", got, notify.Platforms)
	}
}
