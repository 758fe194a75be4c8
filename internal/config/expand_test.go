package config

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"A": "alpha", "B_2": "beta", "EMPTY": ""})
	for _, tc := range []struct {
		in, want string
		subst    bool
		err      string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha", subst: true},
		{in: "x-${A}-${B_2}-y", want: "x-alpha-beta-y", subst: true},
		{in: "${EMPTY}", want: "", subst: true},
		{in: "$${A}", want: "${A}"},
		{in: "$${A} and ${A}", want: "${A} and alpha", subst: true},
		{in: "$HOME $$ $", want: "$HOME $$ $"},
		{in: "${MISSING}", err: "environment variable MISSING is not set"},
		{in: "${A", err: "unclosed ${"},
		{in: "${1A}", err: `invalid environment variable name "1A"`},
		{in: "${}", err: `invalid environment variable name ""`},
		{in: "${A B}", err: `invalid environment variable name "A B"`},
	} {
		got, subst, err := expand(tc.in, env)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expand(%q) error = %v, want %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("expand(%q) error = %v", tc.in, err)
		case got != tc.want || subst != tc.subst:
			t.Errorf("expand(%q) = %q, %v; want %q, %v", tc.in, got, subst, tc.want, tc.subst)
		}
	}
}

func TestParseExpandsEnvInValuesOfEveryType(t *testing.T) {
	yaml := replace("path: ./var/demo", "path: ${DEMO_DIR}/demo") +
		"        keep_releases: ${KEEP}\n        step_timeout: ${STEP}\n        approval: {required: \"${NEED_APPROVAL}\"}\n" +
		"        build: [[echo, \"$${NOT_A_VAR}\"]]\n"
	c, err := Parse([]byte(yaml), "t.yaml", envOf(map[string]string{
		"DEMO_DIR": "/srv", "KEEP": "7", "STEP": "90s", "NEED_APPROVAL": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Apps["demo"].Envs["staging"]
	if e.Path != "/srv/demo" || e.KeepReleases != 7 || e.StepTimeout.String() != "1m30s" || !e.Approval.Required {
		t.Errorf("env = %+v", e)
	}
	if e.Build[0][1] != "${NOT_A_VAR}" {
		t.Errorf("escaped ${ = %q", e.Build[0][1])
	}
	if strings.Contains(c.Summary(), "/srv/demo") {
		t.Errorf("summary prints a value from the environment:\n%s", c.Summary())
	}
}

func TestParseMissingEnvNamesKeyAndVariable(t *testing.T) {
	yaml := replace("path: ./var/demo", "path: ${DEMO_DIR}/demo") + "        fetch: {git: \"https://${GIT_USER}:${GIT_TOKEN}@h/r.git\"}\n"
	yaml = strings.Replace(yaml, "        fetch: {copy: ./src}\n", "", 1)
	es := parseErrors(t, yaml, map[string]string{"GIT_USER": "bot"})
	want := []string{
		"t.yaml:13: " + envKey + ".path: environment variable DEMO_DIR is not set",
		"t.yaml:15: " + envKey + ".fetch.git: environment variable GIT_TOKEN is not set",
	}
	if got := es.Error(); got != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestKeysAreNotExpanded(t *testing.T) {
	yaml := base + "        ${KEY}: x\n"
	es := parseErrors(t, yaml, map[string]string{"KEY": "path"})
	if !strings.Contains(es.Error(), "t.yaml:16: "+envKey+".${KEY}: unknown key") {
		t.Errorf("errors = %v", es)
	}
}
