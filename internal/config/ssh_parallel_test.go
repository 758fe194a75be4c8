package config

import (
	"os"
	"strings"
	"testing"
)

// Unset, ssh.parallel lets every host of the env work at once (up to
// DefaultSSHParallel), and the summary says how many that is.
func TestSSHParallelDefaultsToAllHosts(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const set = "          parallel: 2\n"
	if !strings.Contains(string(data), set) {
		t.Fatal("testdata/full.yaml no longer sets parallel: 2; update this test")
	}
	data = []byte(strings.Replace(string(data), set, "", 1))
	c, err := Parse(data, "full.yaml", envOf(map[string]string{"GIT_TOKEN": gitToken, "HEALTH_TOKEN": healthToken, "API_KEY": apiKey}))
	if err != nil {
		t.Fatal(err)
	}
	prod := c.Apps["helpdesk"].Envs["production"]
	if prod.SSH.Parallel != DefaultSSHParallel || DefaultSSHParallel != 50 {
		t.Fatalf("parallel = %d, want %d (50)", prod.SSH.Parallel, DefaultSSHParallel)
	}
	if !strings.Contains(c.Summary(), "as deploy (parallel 2)") {
		t.Errorf("summary should show the 2 hosts working at once:\n%s", c.Summary())
	}
}
