package commands

import (
	"strings"
	"testing"
)

// Issue 14: /logs --build, and commit ids refused on Dokploy envs.
func TestParseLogsBuildAndDokployRefs(t *testing.T) {
	c, err := Parse("/logs supermock staging 80 --build")
	if err != nil || !c.Build || c.Lines != 80 || c.App != "supermock" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := Parse("/deploy supermock staging --build"); err == nil || !strings.Contains(err.Error(), "unknown option") {
		t.Fatalf("--build on deploy: %v", err)
	}
	for ref, refused := range map[string]bool{"3f2a9c1": true, "3F2A9C1D7E3F2A9C1D7E3F2A9C1D7E3F2A9C1D7E": true,
		"main": false, "v1.4.2": false, "20261123": false, "release/2026-11": false} {
		err := RefForDriver("dokploy", ref)
		if (err != nil) != refused || (refused && !strings.Contains(err.Error(), "branch or tag")) {
			t.Errorf("dokploy %q: %v", ref, err)
		}
		if err := RefForDriver("ssh", ref); err != nil {
			t.Errorf("ssh %q: %v", ref, err)
		}
	}
}
