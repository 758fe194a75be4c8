package config

import (
	"path"
	"regexp"
	"strings"

	"github.com/robfig/cron/v3"
	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
)

// Backup is an env's backup configuration.
type Backup struct {
	Dir       string   // absolute directory on the (first) host holding one directory per backup
	Paths     []string // absolute paths archived into files.tar.gz
	Databases []Database
	KeepDays  int // backups older than this are pruned; default 30, 0 keeps all
	Keep      int // at most this many are kept; 0 = no count limit
	Timeout   Duration
	// Schedule and DrillSchedule are cron specs ("0 3 * * *", "@daily");
	// empty means none.
	Schedule      string
	DrillSchedule string
}

// Database is one database a backup dumps.
type Database struct {
	Name     string // label, unique in the env
	Engine   string // mysql, mariadb or postgres
	Host     string
	Port     int
	User     string
	Password audit.Secret // write ${VAR}
	Database string
}

// dbNamePattern is what a database name may be: it is quoted in SQL, but
// an odd name is far more likely a typo than a real database.
var dbNamePattern = regexp.MustCompile(`^[A-Za-z0-9_$-]{1,63}$`)

// validateBackup checks a backup block. The local driver may use paths
// relative to the bot's working directory, like its other paths.
func (b Backup) validate(d *decoder, key string, local bool) {
	if d.brokenUnder(key) {
		return
	}
	absolute := func(k, p string) bool {
		rel := strings.TrimPrefix(p, "./")
		switch {
		case local && !strings.HasPrefix(p, "/") && rel != "" && path.Clean(rel) == rel && rel != "." && !strings.HasPrefix(rel, "../"):
			return true
		case !strings.HasPrefix(p, "/"):
			d.fail(d.lineOf(k), k, "must be an absolute path, not %q", p)
		case path.Clean(p) != p || p == "/":
			d.fail(d.lineOf(k), k, "%q must be clean and not /", p)
		case strings.Contains(p, "{{"):
			d.fail(d.lineOf(k), k, "templates ({{...}}) are not expanded here")
		default:
			return true
		}
		return false
	}
	if b.Dir == "" {
		d.fail(d.lineOf(key), key+".dir", "is required (where backups are kept on the host)")
	} else if absolute(key+".dir", b.Dir) && strings.ContainsAny(b.Dir, " \t\n;'\"\\") {
		// The MySQL client's source command takes the dump's path unquoted.
		d.fail(d.lineOf(key+".dir"), key+".dir", "%q must not contain spaces, quotes, ';' or '\\'", b.Dir)
	}
	if len(b.Paths) == 0 && len(b.Databases) == 0 {
		d.fail(d.lineOf(key), key, "needs paths or databases to back up")
	}
	for i, p := range b.Paths {
		k := index(key+".paths", i)
		dir, p := strings.TrimPrefix(b.Dir, "./"), strings.TrimPrefix(p, "./")
		if absolute(k, p) && dir != "" && (p == dir || strings.HasPrefix(dir+"/", p+"/") || strings.HasPrefix(p+"/", dir+"/")) {
			d.fail(d.lineOf(k), k, "%q overlaps the backup dir %q; a backup would archive its own backups", p, b.Dir)
		}
		if strings.ContainsAny(p, " \t\n") {
			d.fail(d.lineOf(k), k, "%q must not contain whitespace", p)
		}
	}
	seen := map[string]bool{}
	for i, db := range b.Databases {
		k := index(key+".databases", i)
		switch {
		case !deploy.ValidName(db.Name):
			d.fail(d.lineOf(k+".name"), k+".name", "is required and must match %s", deploy.NamePattern)
		case seen[db.Name]:
			d.fail(d.lineOf(k+".name"), k+".name", "%q is used twice", db.Name)
		}
		seen[db.Name] = true
		switch db.Engine {
		case "mysql", "mariadb", "postgres":
		case "":
			d.fail(d.lineOf(k), k+".engine", "is required (mysql, mariadb or postgres)")
		default:
			d.fail(d.lineOf(k+".engine"), k+".engine", "unknown engine %q (known: mysql, mariadb, postgres)", db.Engine)
		}
		if !dbNamePattern.MatchString(db.Database) {
			d.fail(d.lineOf(k), k+".database", "is required: letters, digits, _ $ - (got %q)", db.Database)
		}
		if db.User == "" || strings.ContainsAny(db.User, " \t\n:") {
			d.fail(d.lineOf(k), k+".user", "is required and must not contain spaces or ':'")
		}
		if db.Port < 0 || db.Port > 65535 {
			d.fail(d.lineOf(k+".port"), k+".port", "must be a port number")
		}
		if strings.HasPrefix(db.Host, "-") || strings.ContainsAny(db.Host, " \t\n") {
			d.fail(d.lineOf(k+".host"), k+".host", "%q is not a host name", db.Host)
		}
	}
	if b.KeepDays < 0 {
		d.fail(d.lineOf(key+".keep_days"), key+".keep_days", "must be 0 (keep all) or more")
	}
	if b.Keep < 0 {
		d.fail(d.lineOf(key+".keep"), key+".keep", "must be 0 (no limit) or more")
	}
	d.positive(key+".timeout", b.Timeout)
	for _, s := range []struct{ k, spec string }{{key + ".schedule", b.Schedule}, {key + ".drill_schedule", b.DrillSchedule}} {
		if s.spec == "" {
			continue
		}
		if _, err := cron.ParseStandard(s.spec); err != nil {
			d.fail(d.lineOf(s.k), s.k, "is not a cron spec (\"0 3 * * *\", \"@daily\"): %v", err)
		}
	}
}
