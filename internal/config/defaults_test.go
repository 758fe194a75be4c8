package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const withDefaults = `users:
  alice: {identities: ["shell:alice"], roles: [admin]}
roles:
  admin: {permissions: ["*"]}
apps:
  web:
    envs:
      staging:
        path: /srv/web-staging
      production:
        path: /srv/web
        shared: [.env]
        health: {url: "https://web.example.com/health"}
        lock: {default_ttl: 2h}
    defaults:
      driver: local
      fetch: {copy: ./src, ref: main}
      shared: [.env, uploads/]
      build:
        - [sh, build.sh]
      health:
        url: "http://127.0.0.1:8080/health"
        retries: 3
`

func TestDefaultsInheritOverrideAndReplaceLists(t *testing.T) {
	c, err := Parse([]byte(withDefaults), "d.yaml", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	st, prod := c.Apps["web"].Envs["staging"], c.Apps["web"].Envs["production"]
	// Inherited key by key.
	if st.Driver != "local" || st.Fetch.Copy != "./src" || st.Fetch.Ref != "main" || st.Path != "/srv/web-staging" {
		t.Errorf("staging = %+v", st)
	}
	if !reflect.DeepEqual(st.Build, [][]string{{"sh", "build.sh"}}) || !reflect.DeepEqual(st.Shared, []string{".env", "uploads/"}) {
		t.Errorf("staging build %v shared %v", st.Build, st.Shared)
	}
	// A list the env writes replaces the default's, it is not merged.
	if !reflect.DeepEqual(prod.Shared, []string{".env"}) {
		t.Errorf("production shared = %v, want only .env", prod.Shared)
	}
	// Mappings merge key by key: the env's url wins, retries is inherited.
	if prod.Health.URL != "https://web.example.com/health" || prod.Health.Retries != 3 || st.Health.URL != "http://127.0.0.1:8080/health" {
		t.Errorf("health: production %+v, staging %+v", prod.Health, st.Health)
	}
	// Built-in defaults still apply under both.
	if prod.KeepReleases != 5 || prod.Health.ExpectStatus != 200 {
		t.Errorf("production lost built-in defaults: %+v", prod)
	}
	if prod.Lock.DefaultTTL.Duration != 2*time.Hour || st.Lock.DefaultTTL.Duration != 0 {
		t.Errorf("lock ttl: production %v, staging %v", prod.Lock.DefaultTTL, st.Lock.DefaultTTL)
	}

	out, err := c.Explain("web", "production")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"driver: local # from defaults", "path: /srv/web\n", `url: "https://web.example.com/health"`,
		"retries: 3 # from defaults", "shared: [.env]\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "uploads/") {
		t.Errorf("explain shows the replaced list:\n%s", out)
	}
	if _, err := c.Explain("web", "nope"); err == nil {
		t.Error("explain of an unknown env succeeded")
	}
}

func TestDefaultsUnknownKeyNamedOnceWithLine(t *testing.T) {
	bad := strings.Replace(withDefaults, "      driver: local\n", "      driver: local\n      helth: {url: x}\n", 1)
	_, err := Parse([]byte(bad), "d.yaml", nil)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v, want config errors", err)
	}
	if len(es) != 1 || es[0].Line != 17 || es[0].Key != "apps.web.defaults.helth" || !strings.Contains(es[0].Msg, "unknown key") {
		t.Fatalf("errors = %v, want one unknown key apps.web.defaults.helth at line 17", es)
	}
	if !strings.HasPrefix(es[0].Error(), "d.yaml:17:") {
		t.Errorf("error %q does not start with file:line", es[0].Error())
	}
	// A mistake in an env's own key is still its own.
	bad = strings.Replace(withDefaults, "        lock: {default_ttl: 2h}\n", "        lock: {default_tll: 2h}\n", 1)
	_, err = Parse([]byte(bad), "d.yaml", nil)
	if !errors.As(err, &es) || len(es) != 1 || es[0].Key != "apps.web.envs.production.lock.default_tll" || es[0].Line != 14 {
		t.Fatalf("errors = %v", err)
	}
}

// An env that needs something the defaults do not give still fails
// validation, pointing at the env.
func TestDefaultsStillValidated(t *testing.T) {
	bad := strings.Replace(withDefaults, "      driver: local\n", "", 1)
	_, err := Parse([]byte(bad), "d.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "apps.web.envs.staging.driver") || !strings.Contains(err.Error(), "apps.web.envs.production.driver") {
		t.Fatalf("err = %v, want driver missing in both envs", err)
	}
}
