package config

import (
	"strings"
	"testing"
	"time"
)

const backupBlock = `        backup_before_deploy: true
        backup:
          dir: /var/backups/demo
          paths: [/srv/demo/shared/uploads]
          keep: 7
          schedule: "0 3 * * *"
          drill_schedule: "@weekly"
          databases:
            - name: main
              engine: mariadb
              host: 127.0.0.1
              port: 3306
              user: demo
              password: ${DB_PASSWORD}
              database: demo
`

func TestBackupConfig(t *testing.T) {
	c, err := Parse([]byte(base+backupBlock), "t.yaml", envOf(map[string]string{"DB_PASSWORD": "s3cret-pw"}))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Apps["demo"].Envs["staging"]
	b := e.Backup
	if b == nil || !e.BackupBeforeDeploy || b.Dir != "/var/backups/demo" || b.KeepDays != 30 || b.Keep != 7 ||
		b.Timeout.Duration != time.Hour || b.Schedule != "0 3 * * *" || len(b.Databases) != 1 {
		t.Fatalf("backup = %+v", b)
	}
	if db := b.Databases[0]; db.Password.Reveal() != "s3cret-pw" || db.Engine != "mariadb" || db.Port != 3306 {
		t.Errorf("database = %+v", db)
	}
	pol := c.BackupPolicy("demo", "staging")
	if pol.MaxAge != 30*24*time.Hour || pol.Keep != 7 || !pol.BeforeDeploy {
		t.Errorf("policy = %+v", pol)
	}
	if !hasSecret(c, "s3cret-pw") {
		t.Error("the database password is not among the secrets the redactor hides")
	}
}

func TestInvalidBackupConfigs(t *testing.T) {
	env := map[string]string{"DB_PASSWORD": "x"}
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"before deploy without backup", "        backup_before_deploy: true\n", envKey + ".backup_before_deploy: needs a backup: block"},
		{"dir escaping the working dir", strings.Replace(backupBlock, "/var/backups/demo", "../backups", 1), envKey + ".backup.dir: must be an absolute path"},
		{"path overlaps dir", strings.Replace(backupBlock, "/srv/demo/shared/uploads", "/var/backups", 1), "overlaps the backup dir"},
		{"bad engine", strings.Replace(backupBlock, "engine: mariadb", "engine: oracle", 1), `unknown engine "oracle"`},
		{"bad cron", strings.Replace(backupBlock, `"0 3 * * *"`, `"every night"`, 1), envKey + ".backup.schedule: is not a cron spec"},
		{"bad database name", strings.Replace(backupBlock, "database: demo", "database: \"demo; drop\"", 1), envKey + ".backup.databases[0].database: is required"},
		{"unknown key", strings.Replace(backupBlock, "keep: 7", "keep_count: 7", 1), envKey + ".backup.keep_count: unknown key"},
		{"dir with a space", strings.Replace(backupBlock, "/var/backups/demo", "/var/my backups", 1), envKey + `.backup.dir: "/var/my backups" must not contain spaces`},
		{"nothing to back up", "        backup: {dir: /var/backups/demo}\n", envKey + ".backup: needs paths or databases"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := parseErrors(t, base+tc.edit, env)
			if !strings.Contains(es.Error(), tc.want) {
				t.Errorf("errors:\n%v\nwant %q", es, tc.want)
			}
		})
	}
}

func TestLocalBackupMayUseRelativePaths(t *testing.T) {
	rel := strings.Replace(strings.Replace(backupBlock, "/var/backups/demo", "./var/backups/demo", 1), "/srv/demo/shared/uploads", "./var/demo/shared", 1)
	if _, err := Parse([]byte(base+rel), "t.yaml", envOf(map[string]string{"DB_PASSWORD": "x"})); err != nil {
		t.Fatalf("relative backup paths on the local driver: %v", err)
	}
}

// hasSecret reports whether v is among the values the redactor hides.
func hasSecret(c *Config, v string) bool {
	for _, s := range c.Secrets() {
		if s.Reveal() == v {
			return true
		}
	}
	return false
}
