package config

import (
	"errors"
	"strings"
	"testing"
)

// base is the smallest valid config. Cases edit it by replacing a line or by
// appending keys to the staging env, which then start on line 16.
const base = `users:
  alice:
    identities: ["shell:alice"]
    roles: [admin]
roles:
  admin:
    permissions: ["*"]
apps:
  demo:
    envs:
      staging:
        driver: local
        path: ./var/demo
        fetch: {copy: ./src}
        health: {url: "http://127.0.0.1:8080/health"}
`

const envKey = "apps.demo.envs.staging"

func replace(old, new string) string {
	if !strings.Contains(base, old) {
		panic("base has no " + old)
	}
	return strings.Replace(base, old, new, 1)
}

func parseErrors(t *testing.T, yaml string, env map[string]string) Errors {
	t.Helper()
	c, err := Parse([]byte(yaml), "t.yaml", envOf(env))
	if err == nil {
		t.Fatalf("Parse succeeded, want errors; config: %+v", c)
	}
	if c != nil {
		t.Errorf("Parse returned a config with errors")
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T is not Errors: %v", err, err)
	}
	return es
}

func TestBaseIsValid(t *testing.T) {
	if _, err := Parse([]byte(base), "t.yaml", nil); err != nil {
		t.Fatalf("base config: %v", err)
	}
}

func TestInvalidConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // each must appear as a line of the error
	}{
		{"unknown key deep in env", base + "        helth: {url: http://x}\n",
			[]string{`t.yaml:16: ` + envKey + `.helth: unknown key (did you mean "health"?)`}},
		{"unknown key in nested block", base + "        ssh_x: 1\n        approval: {requird: true}\n",
			[]string{`t.yaml:16: ` + envKey + `.ssh_x: unknown key`, `t.yaml:17: ` + envKey + `.approval.requird: unknown key (did you mean "required"?)`}},
		{"unknown top-level key", "chats: {}\n" + base,
			[]string{`t.yaml:1: chats: unknown key (did you mean "chat"?)`}},
		{"unknown chat platform", base + "chat:\n  irc: {}\n",
			[]string{`t.yaml:17: chat.irc: unknown key`}},
		{"duplicate key", replace("        fetch:", "        path: ./other\n        fetch:"),
			[]string{`t.yaml:14: ` + envKey + `.path: duplicate key (first written on line 13)`}},
		{"syntax error", base + "  - [unclosed\n",
			[]string{`t.yaml:8: YAML syntax: did not find expected key`}},
		{"two documents", base + "---\nbot: {}\n",
			[]string{`t.yaml:16: only one YAML document is allowed`}},
		{"no apps", "apps: {}\n",
			[]string{`t.yaml:1: apps: at least one app is required`}},
		{"empty file", "",
			[]string{`t.yaml:1: apps: at least one app is required`}},
		{"no envs", "apps:\n  demo:\n    description: d\n",
			[]string{`t.yaml:2: apps.demo.envs: at least one env is required`}},
		{"bad names", replace("  demo:", "  Demo_App:"),
			[]string{`t.yaml:9: apps.Demo_App: name "Demo_App" is not allowed: it must match ^[a-z0-9][a-z0-9._-]{0,62}$`}},
		{"bad user and role names", replace("  alice:", "  -alice:"),
			[]string{`t.yaml:2: users.-alice: name "-alice" is not allowed`}},
		{"bad env name", replace("      staging:", "      stag ing:"),
			[]string{`t.yaml:11: apps.demo.envs.stag ing: name "stag ing" is not allowed`}},
		// lock:force and audit:read are whole grants; an env called force
		// would otherwise be granted lock by lock:force.
		{"env named force", replace("      staging:", "      force:"),
			[]string{`t.yaml:11: apps.demo.envs.force: env name "force" is reserved: lock:force and audit:read are whole permissions`}},
		{"env named read", replace("      staging:", "      read:"),
			[]string{`t.yaml:11: apps.demo.envs.read: env name "read" is reserved`}},

		{"bot values", base + "bot:\n  data_dir: \"\"\n  output_lines: 0\n  shutdown_timeout: 0s\n",
			[]string{
				`t.yaml:17: bot.data_dir: must not be empty`,
				`t.yaml:18: bot.output_lines: must be at least 1, not 0`,
				`t.yaml:19: bot.shutdown_timeout: must be longer than 0s`,
			}},
		{"mapping as key", base + "        ? {a: b}\n        : x\n",
			[]string{`t.yaml:16: ` + envKey + `: keys must be plain names, not a mapping`}},
		{"bad duration", base + "        step_timeout: 10\n",
			[]string{`t.yaml:16: ` + envKey + `.step_timeout: must be a duration such as 30s, 10m or 1h30m, not "10"`}},
		{"negative duration", base + "bot: {job_timeout: -5m}\n",
			[]string{`t.yaml:16: bot.job_timeout: must not be negative`}},
		{"zero duration", base + "        approval: {ttl: 0s}\n",
			[]string{`t.yaml:16: ` + envKey + `.approval.ttl: must be longer than 0s`}},
		{"bad int", base + "        keep_releases: many\n",
			[]string{`t.yaml:16: ` + envKey + `.keep_releases: must be a whole number, not "many"`}},
		{"int too small", base + "        keep_releases: 0\n",
			[]string{`t.yaml:16: ` + envKey + `.keep_releases: must be at least 1, not 0`}},
		{"bad bool", base + "        approval: {required: yes}\n",
			[]string{`t.yaml:16: ` + envKey + `.approval.required: must be true or false, not "yes"`}},
		{"value where list expected", base + "        shared: .env\n",
			[]string{`t.yaml:16: ` + envKey + `.shared: must be a list, not a single value`}},
		{"mapping expected", base + "        fetch2: x\nbot: nope\n",
			[]string{`t.yaml:17: bot: must be a mapping, not a single value`}},

		{"missing driver", replace("        driver: local\n", "        keep_releases: 3\n"),
			[]string{`t.yaml:11: ` + envKey + `.driver: is required (local or ssh)`}},
		{"unknown driver", replace("driver: local", "driver: docker"),
			[]string{`t.yaml:12: ` + envKey + `.driver: unknown driver "docker" (known: local, ssh, dokploy)`}},
		{"ssh driver without ssh block", replace("driver: local", "driver: ssh"),
			[]string{
				`t.yaml:11: ` + envKey + `.ssh: the ssh driver needs an ssh block with hosts, user, key_file and known_hosts`,
				`t.yaml:13: ` + envKey + `.path: must be absolute for the ssh driver, not "./var/demo"`,
			}},
		{"local driver with ssh block", base + "        ssh: {hosts: [web1]}\n",
			[]string{`t.yaml:16: ` + envKey + `.ssh: the local driver takes no ssh block`}},
		{"incomplete ssh block", replace("driver: local\n        path: ./var/demo", "driver: ssh\n        path: /srv/demo") +
			"        ssh:\n          hosts: [\"bad host\", \"web:99999\", web1, \"[::1]:22\", \"web1\"]\n          parallel: 0\n",
			[]string{
				`t.yaml:17: ` + envKey + `.ssh.hosts[0]: host "bad host" is not a host name or IP address`,
				`t.yaml:17: ` + envKey + `.ssh.hosts[1]: host "web:99999" has an invalid port "99999"`,
				`t.yaml:17: ` + envKey + `.ssh.hosts[4]: host "web1" is listed twice`,
				`t.yaml:16: ` + envKey + `.ssh.user: is required`,
				`t.yaml:16: ` + envKey + `.ssh.key_file: is required`,
				`t.yaml:16: ` + envKey + `.ssh.known_hosts: is required (a pinned known_hosts file)`,
				`t.yaml:18: ` + envKey + `.ssh.parallel: must be at least 1, not 0`,
			}},
		{"ssh without hosts", replace("driver: local\n        path: ./var/demo", "driver: ssh\n        path: /srv/demo") +
			"        ssh: {user: \"deploy me\", key_file: k, known_hosts: kh}\n",
			[]string{
				`t.yaml:16: ` + envKey + `.ssh.hosts: at least one host is required`,
				`t.yaml:16: ` + envKey + `.ssh.user: "deploy me" is not a valid user name`,
			}},

		{"path missing", replace(`path: ./var/demo`, `path: ""`),
			[]string{`t.yaml:13: ` + envKey + `.path: is required`}},
		{"template in path", replace(`path: ./var/demo`, `path: "./var/{{app}}"`),
			[]string{`t.yaml:13: ` + envKey + `.path: templates ({{...}}) are not expanded here`}},
		{"fetch git and copy", replace("fetch: {copy: ./src}", "fetch: {copy: ./src, git: \"https://x/y.git\"}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch: takes one of git, copy or artifact`}},
		{"fetch copy and artifact", replace("fetch: {copy: ./src}", "fetch: {copy: ./src, artifact: /srv/a.tar.gz}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch: takes one of git, copy or artifact`}},
		{"relative artifact", replace("fetch: {copy: ./src}", "fetch: {artifact: a.tar.gz}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch.artifact: must be an absolute path`}},
		{"artifact template", replace("fetch: {copy: ./src}", "fetch: {artifact: \"/srv/{{app}}-{{ref}}.tar.gz\"}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch.artifact: may use only {{ref}}`}},
		{"fetch neither", replace("fetch: {copy: ./src}", "fetch: {ref: main}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch: needs git (a repository URL), copy (a directory) or artifact (a .tar.gz on the bot's machine)`}},
		{"no fetch at all", replace("        fetch: {copy: ./src}\n", ""),
			[]string{`t.yaml:11: ` + envKey + `.fetch: needs git`}},
		{"bad ref", replace("fetch: {copy: ./src}", "fetch: {git: \"https://x/y.git\", ref: \"main;rm -rf /\"}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch.ref: ref "main;rm -rf /" is not allowed`}},
		{"ref with dots", replace("fetch: {copy: ./src}", "fetch: {git: \"https://x/y.git\", ref: \"a..b\"}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch.ref: ref "a..b" is not allowed: no '..'`}},
		{"git looks like an option", replace("fetch: {copy: ./src}", "fetch: {git: \"--upload-pack=evil\"}"),
			[]string{`t.yaml:14: ` + envKey + `.fetch.git: must not start with '-'`}},

		{"shared paths", base + "        shared:\n          - /etc/passwd\n          - ../up\n          - a/../../b\n          - ok/file\n          - \"\"\n          - ./\n",
			[]string{
				`t.yaml:17: ` + envKey + `.shared[0]: "/etc/passwd" must be relative to the shared directory`,
				`t.yaml:18: ` + envKey + `.shared[1]: "../up" must not contain '..'`,
				`t.yaml:19: ` + envKey + `.shared[2]: "a/../../b" must not contain '..'`,
				`t.yaml:21: ` + envKey + `.shared[4]: must not be empty`,
				`t.yaml:22: ` + envKey + `.shared[5]: "./" must name a file or directory inside the shared directory`,
			}},

		{"empty argv", base + "        build: [[]]\n",
			[]string{`t.yaml:16: ` + envKey + `.build[0]: a command needs at least one word`}},
		{"empty program", base + "        migrate: [[\"\", x]]\n",
			[]string{`t.yaml:16: ` + envKey + `.migrate[0]: the program name (first word) must not be empty`}},
		{"command as string", base + "        restart:\n          - systemctl restart demo\n",
			[]string{`t.yaml:17: ` + envKey + `.restart[0]: a command is a list of words (argv), e.g. [systemctl, restart, myapp], not "systemctl restart demo"`}},
		{"unknown template", base + "        build:\n          - [echo, \"{{version}}\"]\n",
			[]string{`t.yaml:17: ` + envKey + `.build[0][1]: unknown template variable {{version}}`}},
		{"unclosed template", base + "        build:\n          - [echo, \"{{app\"]\n",
			[]string{`t.yaml:17: ` + envKey + `.build[0][1]: unclosed {{ in "{{app"`}},
		{"lines outside logs", base + "        restart:\n          - [echo, ok]\n          - [tail, -n, \"{{lines}}\"]\n",
			[]string{`t.yaml:18: ` + envKey + `.restart[1][2]: {{lines}} is only available in logs.command`}},
		{"lines in log file", base + "        logs: {file: \"/tmp/{{lines}}.log\"}\n",
			[]string{`t.yaml:16: ` + envKey + `.logs.file: {{lines}} is only available in logs.command`}},
		{"logs both", base + "        logs: {file: a.log, command: [cat, a.log]}\n",
			[]string{`t.yaml:16: ` + envKey + `.logs: takes command or file, not both`}},
		{"logs bad template", base + "        logs:\n          command: [journalctl, -n, \"{{count}}\"]\n",
			[]string{`t.yaml:17: ` + envKey + `.logs.command[2]: unknown template variable {{count}}`}},

		{"health both", replace(`health: {url: "http://127.0.0.1:8080/health"}`, `health: {url: "http://h/", command: ["true"]}`),
			[]string{`t.yaml:15: ` + envKey + `.health: takes url or command, not both`}},
		{"health neither", replace(`health: {url: "http://127.0.0.1:8080/health"}`, `health: {retries: 3}`),
			[]string{`t.yaml:15: ` + envKey + `.health: needs url or command`}},
		{"health missing", replace("        health: {url: \"http://127.0.0.1:8080/health\"}\n", ""),
			[]string{`t.yaml:11: ` + envKey + `.health: needs url or command`}},
		{"health url scheme", replace(`url: "http://127.0.0.1:8080/health"`, `url: "ftp://u:pw@h/x"`),
			[]string{`t.yaml:15: ` + envKey + `.health.url: must be an http:// or https:// URL, not "ftp://[redacted]@h/x"`}},
		{"health url template", replace(`url: "http://127.0.0.1:8080/health"`, `url: "http://{{host}}/"`),
			[]string{`t.yaml:15: ` + envKey + `.health.url: unknown template variable {{host}}`}},
		{"health status", replace(`health: {`, `health: {expect_status: 42, retries: 0, interval: 0s, `),
			[]string{
				`t.yaml:15: ` + envKey + `.health.expect_status: must be an HTTP status (100-599), not 42`,
				`t.yaml:15: ` + envKey + `.health.retries: must be at least 1, not 0`,
				`t.yaml:15: ` + envKey + `.health.interval: must be longer than 0s`,
			}},

		{"bad identities", replace(`identities: ["shell:alice"]`, `identities: ["shell:alice", "irc:alice", "shell:", "telegram:12 34", alice]`),
			[]string{
				`t.yaml:3: users.alice.identities[1]: identity "irc:alice" names unknown platform "irc" (known: shell, telegram, slack)`,
				`t.yaml:3: users.alice.identities[2]: identity "shell:" has an empty id`,
				`t.yaml:3: users.alice.identities[3]: identity "telegram:12 34" must not contain spaces`,
				`t.yaml:3: users.alice.identities[4]: identity "alice" must be PLATFORM:ID, e.g. telegram:123456`,
			}},
		{"duplicate identity across users", replace("roles:\n", "  bob:\n    identities: [\"telegram:5\", \"shell:alice\"]\nroles:\n"),
			[]string{`t.yaml:6: users.bob.identities[1]: identity "shell:alice" already belongs to user "alice"; one identity maps to one user`}},
		{"duplicate identity in one user", replace(`identities: ["shell:alice"]`, `identities: ["shell:alice", "shell:alice"]`),
			[]string{`t.yaml:3: users.alice.identities[1]: identity "shell:alice" is listed twice`}},
		{"user with unknown role", replace("roles: [admin]", "roles: [admin, ops]"),
			[]string{`t.yaml:4: users.alice.roles[1]: unknown role "ops" (known: admin)`}},
		{"approver role unknown", base + "        approval:\n          required: true\n          approver_roles: [admin, boss]\n",
			[]string{`t.yaml:18: ` + envKey + `.approval.approver_roles[1]: unknown role "boss" (known: admin)`}},

		{"shell user without shell identity", replace(`identities: ["shell:alice"]`, `identities: ["telegram:1"]`) + "chat:\n  shell: {enabled: true, user: alice}\n",
			[]string{`t.yaml:17: chat.shell.user: user "alice" has no shell: identity`}},
		{"shell user unknown", base + "chat:\n  shell:\n    enabled: true\n    user: zed\n",
			[]string{`t.yaml:19: chat.shell.user: unknown user "zed" (known: alice)`}},
		{"shell enabled without user", base + "chat:\n  shell:\n    enabled: true\n",
			[]string{`t.yaml:17: chat.shell.user: is required when the shell is enabled`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, tc.yaml, nil)
			lines := strings.Split(es.Error(), "\n")
			for _, want := range tc.want {
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, want) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error starting with\n  %s\ngot:\n  %s", want, strings.Join(lines, "\n  "))
				}
			}
		})
	}
}

func TestPermissions(t *testing.T) {
	// A second app and env so APP/ENV and ENV scopes can be told apart.
	cfg := base + "  shop:\n    envs:\n      production:\n        driver: local\n        path: ./shop\n        fetch: {copy: ./shop-src}\n        health: {command: [\"true\"]}\n"
	for _, tc := range []struct {
		perm string
		err  string // "" = valid
	}{
		{"*", ""},
		{"deploy", ""},
		{"deploy:*", ""},
		{"deploy:staging", ""},
		{"rollback:production", ""},
		{"logs:demo/staging", ""},
		{"status:shop/production", ""},
		{"approve:production", ""},
		{"cancel:*", ""},
		{"audit", ""},
		{"lock", ""},
		{"lock:force", ""},
		{"audit:read", ""},
		{"dance:staging", `permission "dance:staging" has unknown verb "dance" (known: approve, audit, backup, cancel, deploy, lock, logs, restore, rollback, start, status, stop, view)`},
		{"Deploy", `has unknown verb "Deploy"`},
		{"", `has unknown verb ""`},
		{"deploy:", `permission "deploy:" has an empty scope`},
		{"deploy:prod", `permission "deploy:prod" names env "prod", which no app has`},
		{"deploy:demo/production", `permission "deploy:demo/production" names env "production", which app "demo" does not have`},
		{"deploy:blog/staging", `permission "deploy:blog/staging" names unknown app "blog"`},
		{"deploy:demo/", `names env "", which app "demo" does not have`},
		{"audit:write", `permission "audit:write" names env "write", which no app has`},
	} {
		t.Run(tc.perm, func(t *testing.T) {
			yaml := strings.Replace(cfg, `permissions: ["*"]`, `permissions: ["*", "`+tc.perm+`"]`, 1)
			c, err := Parse([]byte(yaml), "t.yaml", nil)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got := c.Roles["admin"].Permissions[1]; got != tc.perm {
					t.Errorf("permission = %q", got)
				}
				return
			}
			want := "t.yaml:7: roles.admin.permissions[1]: " + tc.err
			if err == nil || !strings.Contains(err.Error(), "t.yaml:7: roles.admin.permissions[1]: ") || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want %s", err, want)
			}
		})
	}
}

func TestParseCollectsAllErrorsInFileOrder(t *testing.T) {
	yaml := strings.Replace(replace("roles: [admin]", "roles: [nobody]"), "        health:", "        helth:", 1) + "        keep_releases: x\n"
	es := parseErrors(t, yaml, nil)
	var got []string
	for _, e := range es {
		got = append(got, e.Key)
	}
	want := []string{
		"users.alice.roles[0]",
		envKey + ".health", // missing because of the typo: reported where the env is
		envKey + ".helth",
		envKey + ".keep_releases",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("error keys = %q, want %q\n%v", got, want, es)
	}
	for i := 1; i < len(es); i++ {
		if es[i-1].Line > es[i].Line {
			t.Errorf("errors out of line order: %v", es)
		}
	}
	var one *Error
	if !errors.As(error(es), &one) || one.File != "t.yaml" {
		t.Errorf("errors.As(*Error) = %+v", one)
	}
}

func TestDecodeErrorIsNotRepeatedByValidation(t *testing.T) {
	// path: [a] fails to decode; "path is required" would say it again.
	yaml := replace("path: ./var/demo", "path: [a]")
	es := parseErrors(t, yaml, nil)
	if len(es) != 1 || es[0].Error() != "t.yaml:13: "+envKey+".path: must be a single value, not a list" {
		t.Errorf("errors = %v", es)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Key: "bot.x", Msg: "unknown key"}, "a.yaml:3: bot.x: unknown key"},
		{Error{File: "a.yaml", Line: 3, Msg: "YAML syntax: bad"}, "a.yaml:3: YAML syntax: bad"},
		{Error{File: "a.yaml", Msg: "empty"}, "a.yaml: empty"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	es := Errors{{File: "a", Line: 1, Key: "k", Msg: "m"}, {File: "a", Line: 2, Key: "j", Msg: "n"}}
	if got := es.Error(); got != "a:1: k: m\na:2: j: n" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	// Each level merges the previous one ten times: 10^9 mappings if walked.
	var b strings.Builder
	b.WriteString("x0: &a0 {description: d}\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + "\n  <<: [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("apps:\n  demo: *a9\n")
	es := parseErrors(t, b.String(), nil)
	if !strings.Contains(es.Error(), "document too large") {
		t.Errorf("errors = %v", es)
	}
}
