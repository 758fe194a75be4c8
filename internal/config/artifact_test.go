package config

import (
	"strings"
	"testing"
)

func TestArtifactFetchMapsToRecipe(t *testing.T) {
	src := strings.Replace(base, "fetch: {copy: ./src}", `fetch: {artifact: "/srv/artifacts/app-{{ref}}.tar.gz", ref: main}`, 1)
	if src == base {
		t.Fatal("base config changed; update this test")
	}
	c, err := Parse([]byte(src), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	for app, a := range c.Apps {
		for env := range a.Envs {
			r := c.Recipe(app, env)
			if r.Fetch.Artifact != "/srv/artifacts/app-{{ref}}.tar.gz" || r.Fetch.DefaultRef != "main" || r.Fetch.CopyFrom != "" {
				t.Fatalf("recipe fetch = %+v", r.Fetch)
			}
		}
	}
}
