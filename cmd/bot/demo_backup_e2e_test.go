package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The embedded demo config backs up and restores the staging app's shared
// dir, so `go run ./cmd/bot` users can try it: alice backs up, the state
// changes, alice asks for a restore, bob approves it.
func TestE2EDemoBackupAndRestore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	p := e.startBot(nil)
	p.send("/deploy demo staging")
	p.waitFor(cardState(1, "succeeded"))
	shared := filepath.Join(e.envPath("staging"), "shared")
	marker := filepath.Join(shared, "customer-upload.txt")
	if err := os.WriteFile(marker, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.send("/backup demo staging")
	p.waitFor(cardState(2, "succeeded"))
	id := p.mustContain(`backup (\d{8}-\d{6}-2): 1 files`)[1]
	if err := os.WriteFile(marker, []byte("after"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.send("/restore demo staging " + id)
	approval := p.waitFor(cardLine(3, `.*Approval id: ([a-z2-7]{24})`))[1]
	p.send("/as bob")
	p.send("/approve " + approval)
	p.waitFor(cardState(3, "succeeded"))
	p.send("/backups demo staging")
	p.closeInput()
	p.mustExit0()
	if b, _ := os.ReadFile(marker); string(b) != "before" {
		t.Fatalf("after the restore the file holds %q", b)
	}
	list := strings.Join(codeLines(messageBody(t, p.out.String(), "Backups of demo/staging")), "\n")
	if !strings.Contains(list, id+" ") || !strings.Contains(list, "safety by alice") {
		t.Fatalf("/backups:\n%s", list)
	}
	noInternalError(t, p.out.String())
	e.mustVerify()
}
