package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// withCredentials uploads db's credentials to a 0600 file in the backup
// dir, runs fn with its path and removes the file, whatever happens. The
// password reaches the host through the upload's stdin, never an argv.
func (s *session) withCredentials(ctx context.Context, db Database, fn func(file string) error) error {
	up, ok := s.host.(release.Uploader)
	if !ok {
		return fmt.Errorf("host %s cannot receive a credentials file", s.host.Name())
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	file := path.Join(s.r.Spec.Dir, ".cred-"+db.Name+"-"+hex.EncodeToString(rnd[:]))
	var content string
	if db.Engine == Postgres {
		content = pgPassLine(db)
	} else {
		content = myOptionFile(db)
	}
	if err := up.Upload(ctx, strings.NewReader(content), file, 0o600); err != nil {
		return fmt.Errorf("writing the credentials file: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = s.host.Run(cctx, "", []string{"rm", "-f", "--", file}, nil)
	}()
	return fn(file)
}

// myOptionFile is a [client] option file; values are quoted so '#' and
// spaces in a password survive.
func myOptionFile(db Database) string {
	var b strings.Builder
	b.WriteString("[client]\n")
	fmt.Fprintf(&b, "user=%s\n", myQuote(db.User))
	fmt.Fprintf(&b, "password=%s\n", myQuote(db.Password.Reveal()))
	if db.Host != "" {
		fmt.Fprintf(&b, "host=%s\n", myQuote(db.Host))
		// A host makes the client use TCP even for localhost.
		b.WriteString("protocol=tcp\n")
	}
	if db.Port != 0 {
		fmt.Fprintf(&b, "port=%d\n", db.Port)
	}
	return b.String()
}

func myQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// pgPassLine is one ~/.pgpass line matching any database on the server,
// so the drill's scratch database is covered too.
func pgPassLine(db Database) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	host, port := db.Host, "*"
	if host == "" {
		host = "*"
	}
	if db.Port != 0 {
		port = strconv.Itoa(db.Port)
	}
	return fmt.Sprintf("%s:%s:*:%s:%s\n", esc.Replace(host), port, esc.Replace(db.User), esc.Replace(db.Password.Reveal()))
}

// pgConn are the connection flags of every PostgreSQL client call.
func pgConn(db Database, database string) []string {
	var a []string
	if db.Host != "" {
		a = append(a, "-h", db.Host)
	}
	if db.Port != 0 {
		a = append(a, "-p", strconv.Itoa(db.Port))
	}
	if db.User != "" {
		a = append(a, "-U", db.User)
	}
	// --no-password: fail rather than wait for a prompt no one answers.
	return append(a, "--no-password", "-d", database)
}

// pgEnv runs a PostgreSQL client with the passfile; env(1) sets only the
// passfile's path, which is not secret.
func pgEnv(cred string, argv ...string) []string {
	return append([]string{"env", "PGPASSFILE=" + cred}, argv...)
}

func myClient(cred string, argv ...string) []string {
	// --defaults-extra-file must be the first option.
	return append([]string{"mysql", "--defaults-extra-file=" + cred}, argv...)
}

// myIdent quotes a MySQL identifier.
func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// pgIdent quotes a PostgreSQL identifier.
func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (s *session) dump(ctx context.Context, dir string, db Database) error {
	return s.withCredentials(ctx, db, func(cred string) error {
		switch db.Engine {
		case Postgres:
			out := path.Join(dir, dumpName(db))
			return s.run(ctx, pgEnv(cred, append(append([]string{"pg_dump", "-Fc"}, pgConn(db, db.Database)...), "-f", out)...)...)
		default:
			sql := path.Join(dir, "db-"+db.Name+".sql")
			err := s.run(ctx, "mysqldump", "--defaults-extra-file="+cred, "--single-transaction", "--routines",
				"--triggers", "--events", "--result-file="+sql, "--", db.Database)
			if err != nil {
				return err
			}
			return s.run(ctx, "gzip", "-n", "--", sql)
		}
	})
}

// unpacked makes the plain SQL of a gzipped MySQL dump for the client's
// source command, removing it afterwards.
func (s *session) unpacked(ctx context.Context, dir string, f deploy.BackupFile, fn func(sql string) error) error {
	gz := path.Join(dir, f.Name)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	// Inside the backup's own 0700 directory: the plain dump holds every row.
	sql := path.Join(dir, ".restore-"+hex.EncodeToString(rnd[:])+".sql")
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = s.host.Run(cctx, "", []string{"rm", "-f", "--", sql}, nil)
	}()
	// gzip writes to stdout only through a shell redirect; copy the archive
	// and decompress the copy in place instead.
	if err := s.run(ctx, "cp", "--", gz, sql+".gz"); err != nil {
		return err
	}
	if err := s.run(ctx, "gzip", "-d", "--", sql+".gz"); err != nil {
		return err
	}
	return fn(sql)
}

// mySource loads a SQL file into database with the client's source command.
func (s *session) mySource(ctx context.Context, cred, database, sql string) error {
	if strings.ContainsAny(sql, " \t\n;'\"\\") {
		return fmt.Errorf("path %q cannot be sourced", sql)
	}
	return s.run(ctx, myClient(cred, "--batch", "--database="+database, "--execute=source "+sql)...)
}

// drill restores f into a scratch database, counts every table's rows and
// drops the scratch database.
func (s *session) drill(ctx context.Context, dir string, f deploy.BackupFile, db Database) ([]tableCount, error) {
	scratch := scratchName()
	var counts []tableCount
	err := s.withCredentials(ctx, db, func(cred string) error {
		drop := func() error {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			if db.Engine == Postgres {
				_, err := s.capture(cctx, pgEnv(cred, append(append([]string{"psql"}, pgConn(db, db.Database)...),
					"-v", "ON_ERROR_STOP=1", "-c", "DROP DATABASE IF EXISTS "+pgIdent(scratch))...)...)
				return err
			}
			_, err := s.capture(cctx, myClient(cred, "--batch", "--execute=DROP DATABASE IF EXISTS "+myIdent(scratch))...)
			return err
		}
		var err error
		if db.Engine == Postgres {
			counts, err = s.pgDrill(ctx, cred, dir, f, db, scratch)
		} else {
			counts, err = s.myDrill(ctx, cred, dir, f, scratch)
		}
		if derr := drop(); derr != nil {
			err = errors.Join(err, fmt.Errorf("dropping scratch database %s: %w", scratch, derr))
		} else if err == nil {
			s.p.Output("scratch database " + scratch + " dropped")
		}
		return err
	})
	return counts, err
}

func (s *session) myDrill(ctx context.Context, cred, dir string, f deploy.BackupFile, scratch string) ([]tableCount, error) {
	if _, err := s.capture(ctx, myClient(cred, "--batch", "--execute=CREATE DATABASE "+myIdent(scratch))...); err != nil {
		return nil, err
	}
	s.p.Output("scratch database " + scratch + " created")
	if err := s.unpacked(ctx, dir, f, func(sql string) error { return s.mySource(ctx, cred, scratch, sql) }); err != nil {
		return nil, fmt.Errorf("restoring into %s: %w", scratch, err)
	}
	tables, err := s.capture(ctx, myClient(cred, "--batch", "--skip-column-names", "--execute=SELECT table_name FROM information_schema.tables WHERE table_schema = '"+scratch+"' AND table_type = 'BASE TABLE' ORDER BY table_name")...)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, t := range tables {
		if t = strings.TrimSpace(t); t != "" {
			lit := "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(t) + "'"
			parts = append(parts, "SELECT "+lit+", COUNT(*) FROM "+myIdent(scratch)+"."+myIdent(t))
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	lines, err := s.capture(ctx, myClient(cred, "--batch", "--skip-column-names", "--execute="+strings.Join(parts, " UNION ALL "))...)
	if err != nil {
		return nil, err
	}
	return parseCounts(lines)
}

// pgCountQuery counts the rows of every table in one statement.
const pgCountQuery = `SELECT n.nspname || '.' || c.relname,
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1`

func (s *session) pgDrill(ctx context.Context, cred, dir string, f deploy.BackupFile, db Database, scratch string) ([]tableCount, error) {
	if _, err := s.capture(ctx, pgEnv(cred, append(append([]string{"psql"}, pgConn(db, db.Database)...),
		"-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE "+pgIdent(scratch))...)...); err != nil {
		return nil, err
	}
	s.p.Output("scratch database " + scratch + " created")
	if err := s.run(ctx, pgEnv(cred, append(append([]string{"pg_restore", "--no-owner", "--no-acl", "--exit-on-error"},
		pgConn(db, scratch)...), path.Join(dir, f.Name))...)...); err != nil {
		return nil, fmt.Errorf("restoring into %s: %w", scratch, err)
	}
	lines, err := s.capture(ctx, pgEnv(cred, append(append([]string{"psql"}, pgConn(db, scratch)...),
		"-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", pgCountQuery)...)...)
	if err != nil {
		return nil, err
	}
	return parseCounts(lines)
}

// restoreDB puts a dump back into its database.
//
// PostgreSQL: pg_restore --clean --single-transaction, so the restore
// either fully happens or leaves the database as it was. MySQL has no
// transactional DDL: the database is dropped, created and loaded; the
// safety backup the engine takes first is the way back if that fails.
func (s *session) restoreDB(ctx context.Context, dir string, f deploy.BackupFile, db Database) error {
	return s.withCredentials(ctx, db, func(cred string) error {
		if db.Engine == Postgres {
			return s.run(ctx, pgEnv(cred, append(append([]string{"pg_restore", "--clean", "--if-exists", "--no-owner",
				"--no-acl", "--single-transaction", "--exit-on-error"}, pgConn(db, db.Database)...), path.Join(dir, f.Name))...)...)
		}
		return s.unpacked(ctx, dir, f, func(sql string) error {
			name := myIdent(db.Database)
			if _, err := s.capture(ctx, myClient(cred, "--batch", "--execute=DROP DATABASE IF EXISTS "+name+"; CREATE DATABASE "+name)...); err != nil {
				return err
			}
			return s.mySource(ctx, cred, db.Database, sql)
		})
	})
}
