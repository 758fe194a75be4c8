package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
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
// so the scratch databases are covered too.
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

// pgMaintenanceDB is where database-wide statements run (CREATE, RENAME
// and DROP DATABASE cannot run connected to the database they change).
const pgMaintenanceDB = "postgres"

// psql runs SQL statements, each -c on its own, stopping at the first error.
func (s *session) psql(ctx context.Context, cred string, db Database, database string, stmts ...string) ([]string, error) {
	argv := append([]string{"psql"}, pgConn(db, database)...)
	argv = append(argv, "-X", "-A", "-t", "-q", "-F", "\t", "-v", "ON_ERROR_STOP=1")
	for _, st := range stmts {
		argv = append(argv, "-c", st)
	}
	lines, err := s.capture(ctx, pgEnv(cred, argv...)...)
	if err != nil && database == pgMaintenanceDB && noMaintenanceDB.MatchString(err.Error()) {
		// Some servers lack "postgres" or keep users out of it; template1
		// always exists and takes connections.
		return s.psql(ctx, cred, db, "template1", stmts...)
	}
	return lines, err
}

// psqlDo runs a DO block quoted with $shipbot$ on the maintenance
// database. Names may hold '$', so a body that would end the quote early
// is refused rather than run.
func (s *session) psqlDo(ctx context.Context, cred string, db Database, block string) ([]string, error) {
	body := strings.TrimSuffix(strings.TrimPrefix(block, "DO $shipbot$"), "$shipbot$")
	if strings.Contains(body, "$shipbot$") {
		return nil, errors.New("a database or role name contains $shipbot$; shipbot cannot quote it")
	}
	return s.psql(ctx, cred, db, pgMaintenanceDB, block)
}

var noMaintenanceDB = regexp.MustCompile(`database "postgres" does not exist|permission denied for database "?postgres|pg_hba\.conf.*database "postgres"`)

// maxPacket is the client packet limit of every MySQL dump and load: a
// row's INSERT may be twice its stored size once escaped. The server's own
// max_allowed_packet still bounds what it accepts; a load it refuses fails
// in the scratch database, before anything live changes.
const maxPacket = "--max-allowed-packet=1G"

func myClient(cred string, argv ...string) []string {
	// --defaults-extra-file must be the first option.
	return append([]string{"mysql", "--defaults-extra-file=" + cred, maxPacket}, argv...)
}

// mysql runs one batch of statements and returns the rows.
func (s *session) mysql(ctx context.Context, cred, sql string) ([]string, error) {
	return s.capture(ctx, myClient(cred, "--batch", "--skip-column-names", "--execute="+sql)...)
}

// myIdent quotes a MySQL identifier.
func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// myLit quotes a MySQL string literal.
func myLit(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// pgIdent quotes a PostgreSQL identifier.
func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// pgLit quotes a PostgreSQL string literal (standard_conforming_strings).
func pgLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// dump writes db's dump into dir and returns its manifest.
func (s *session) dump(ctx context.Context, dir string, db Database) (*deploy.DBManifest, error) {
	var m *deploy.DBManifest
	err := s.withCredentials(ctx, db, func(cred string) error {
		switch db.Engine {
		case Postgres:
			out := path.Join(dir, dumpName(db))
			if err := s.run(ctx, pgEnv(cred, append(append([]string{"pg_dump", "-Fc"}, pgConn(db, db.Database)...), "-f", out)...)...); err != nil {
				return err
			}
			var err error
			m, err = s.pgManifest(ctx, cred, db, out)
			return err
		default:
			sql := path.Join(dir, "db-"+db.Name+".sql")
			err := s.run(ctx, "mysqldump", "--defaults-extra-file="+cred, maxPacket, "--single-transaction", "--routines",
				"--triggers", "--events", "--result-file="+sql, "--", db.Database)
			if err != nil {
				return err
			}
			if m, err = s.myManifest(ctx, cred, db.Database, sql); err != nil {
				return err
			}
			return s.run(ctx, "gzip", "-n", "--", sql)
		}
	})
	return m, err
}

// Row counts come from the dump itself, not from the live tables: the dump
// is a snapshot, and tables written to while it ran hold other counts.

// myRowsAwk counts the rows of mysqldump's INSERT statements per table.
// A row never spans lines (newlines inside values are escaped). MariaDB's
// mysqldump writes "VALUES" alone at the end of the statement's first line
// and then one row per line, each ending "),", the last ");": those lines
// are counted, not parsed. MySQL's writes every row on the statement's
// line: there escaped backslashes and quotes go first, then every string
// literal, so the "),(" left between two rows is never inside a value.
const myRowsAwk = `ins == 0 && index($0, "INSERT INTO ` + "`" + `") == 1 {
  rest = substr($0, 14)
  i = index(rest, "` + "`" + ` VALUES")
  if (i == 0) next
  t = substr(rest, 1, i - 1)
  gsub(/` + "``" + `/, "` + "`" + `", t)
  line = substr(rest, i + 8)
  n[t] += 0
  if (line ~ /^[ \t\r]*$/) { ins = 2; next }
  ins = 1
}
ins == 2 {
  n[t]++
  if ($0 ~ /;\r?$/) ins = 0
  next
}
ins == 1 {
  gsub(/\\\\/, "", line)
  gsub(/\\'/, "", line)
  gsub(/'[^']*'/, "", line)
  n[t] += gsub(/\),\(/, "", line) + 1
  ins = 0
}
END { for (t in n) printf "%s\t%d\n", t, n[t] }`

// pgRowsAwk counts the data lines of each COPY block of pg_restore's SQL
// output (COPY's text format escapes newlines inside values).
const pgRowsAwk = `$0 == "shipbot:pg_restore-failed" { bad = 1; next }
copy == 0 && index($0, "COPY ") == 1 { t = substr($0, 6); sub(/ (\(.*\) )?FROM stdin;$/, "", t); n[t] += 0; copy = 1; next }
copy == 1 && $0 == "\\." { copy = 0; next }
copy == 1 { n[t]++ }
END { if (bad) exit 1; for (t in n) printf "%s\t%d\n", t, n[t] }`

// pgRowsScript pipes the dump's data through pgRowsAwk. The script is a
// constant: the dump's path and the program arrive as positional
// parameters, never inside the script text.
const pgRowsScript = `( pg_restore -a -f - -- "$1" || echo shipbot:pg_restore-failed ) | LC_ALL=C awk "$2"`

// myObjectsQuery counts a database's non-table objects and reads its
// default charset and collation, as one row per fact.
func myObjectsQuery(database string) string {
	l := myLit(database)
	return `SELECT 'views', COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ` + l + `
UNION ALL SELECT 'triggers', COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ` + l + `
UNION ALL SELECT 'routines', COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ` + l + `
UNION ALL SELECT 'events', COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ` + l + `
UNION ALL SELECT 'charset', DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ` + l + `
UNION ALL SELECT 'collation', DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ` + l + `
UNION ALL SELECT CONCAT('table:', TABLE_NAME), 0 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ` + l + ` AND TABLE_TYPE = 'BASE TABLE'`
}

// facts reads "key\tvalue" lines.
func facts(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			out[k] = v
		}
	}
	return out
}

// objectsOf parses a facts map: tables ("table:NAME") and object counts.
func objectsOf(f map[string]string, kinds []string) (tables []string, objects map[string]int, err error) {
	objects = map[string]int{}
	for k := range f {
		if t, ok := strings.CutPrefix(k, "table:"); ok {
			tables = append(tables, t)
		}
	}
	for _, k := range kinds {
		n, err := strconv.Atoi(f[k])
		if err != nil {
			return nil, nil, fmt.Errorf("counting %s: unexpected %q", k, f[k])
		}
		objects[k] = n
	}
	sort.Strings(tables)
	return tables, objects, nil
}

var myKinds = []string{"views", "triggers", "routines", "events"}

func (s *session) myManifest(ctx context.Context, cred, database, sql string) (*deploy.DBManifest, error) {
	lines, err := s.mysql(ctx, cred, myObjectsQuery(database))
	if err != nil {
		return nil, fmt.Errorf("reading what the database holds: %w", err)
	}
	f := facts(lines)
	tables, objects, err := objectsOf(f, myKinds)
	if err != nil {
		return nil, err
	}
	m := &deploy.DBManifest{Rows: map[string]int64{}, Objects: objects, Charset: f["charset"], Collation: f["collation"]}
	for _, t := range tables {
		m.Rows[t] = 0
	}
	counted, err := s.capture(ctx, "env", "LC_ALL=C", "awk", myRowsAwk, sql)
	if err != nil {
		return nil, fmt.Errorf("counting the dump's rows: %w", err)
	}
	counts, err := parseCounts(counted)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		m.Rows[c.table] = c.rows
	}
	return m, nil
}

// pgObjectsQuery counts what a PostgreSQL database holds outside the
// system schemas, and reads the database's own properties.
const pgObjectsQuery = `WITH rel AS (
  SELECT c.relkind, c.relname, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema')
SELECT 'views', count(*)::text FROM rel WHERE relkind = 'v'
UNION ALL SELECT 'matviews', count(*)::text FROM rel WHERE relkind = 'm'
UNION ALL SELECT 'sequences', count(*)::text FROM rel WHERE relkind = 'S'
UNION ALL SELECT 'indexes', count(*)::text FROM rel WHERE relkind IN ('i', 'I')
UNION ALL SELECT 'routines', count(*)::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
UNION ALL SELECT 'triggers', count(*)::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE NOT t.tgisinternal AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
UNION ALL SELECT 'table:' || quote_ident(nspname) || '.' || quote_ident(relname), '0' FROM rel WHERE relkind IN ('r', 'p')
UNION ALL SELECT 'owner', pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()
UNION ALL SELECT 'encoding', pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()
UNION ALL SELECT 'collate', datcollate FROM pg_database WHERE datname = current_database()
UNION ALL SELECT 'ctype', datctype FROM pg_database WHERE datname = current_database()
UNION ALL SELECT 'acl', coalesce(datacl::text, '') FROM pg_database WHERE datname = current_database()`

var pgKinds = []string{"views", "matviews", "sequences", "indexes", "routines", "triggers"}

// pgCountQuery counts the rows of every table in one statement; ONLY, as
// each table's COPY in a dump holds only its own rows.
const pgCountQuery = `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
ORDER BY 1`

func (s *session) pgManifest(ctx context.Context, cred string, db Database, dump string) (*deploy.DBManifest, error) {
	lines, err := s.psql(ctx, cred, db, db.Database, pgObjectsQuery)
	if err != nil {
		return nil, fmt.Errorf("reading what the database holds: %w", err)
	}
	f := facts(lines)
	tables, objects, err := objectsOf(f, pgKinds)
	if err != nil {
		return nil, err
	}
	m := &deploy.DBManifest{Rows: map[string]int64{}, Objects: objects, Owner: f["owner"], Encoding: f["encoding"],
		Collation: f["collate"], Ctype: f["ctype"], ACL: f["acl"]}
	for _, t := range tables {
		m.Rows[t] = 0
	}
	counted, err := s.capture(ctx, "sh", "-c", pgRowsScript, "sh", dump, pgRowsAwk)
	if err != nil {
		return nil, fmt.Errorf("counting the dump's rows: %w", err)
	}
	counts, err := parseCounts(counted)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		m.Rows[c.table] = c.rows
	}
	return m, nil
}

// loaded is what a scratch database holds after a load.
type loaded struct {
	counts  []tableCount
	objects map[string]int
}

// myLoadScript feeds a gzipped dump to the client on stdin. Without
// --force the client stops at the first failed statement and exits
// non-zero, MariaDB's and MySQL's alike. A dump gzip cannot read becomes a
// statement that fails. The script is a constant: paths and the database
// name arrive as positional parameters.
const myLoadScript = `{ gzip -dc -- "$1" || echo "shipbot:dump-unreadable;"; } | mysql --defaults-extra-file="$2" ` + maxPacket + ` --batch --database="$3"`

// myLineScript prints one line of a gzipped dump, for naming the failed
// statement when the client did not print it.
const myLineScript = `gzip -dc -- "$1" | sed -n "$2{p;q}"`

// myLoad loads a gzipped dump into database, stopping at the first error;
// the error names the statement.
func (s *session) myLoad(ctx context.Context, cred, database, gz string) error {
	out := newTail(40)
	tctx, cancel := context.WithTimeout(ctx, s.r.timeout())
	defer cancel()
	err := s.host.Run(tctx, "", []string{"sh", "-c", myLoadScript, "sh", gz, cred, database}, out.add)
	if err == nil {
		return nil
	}
	lines := out.lines()
	if !printedStatement(lines) {
		for _, l := range lines {
			if m := myErrorLine.FindStringSubmatch(l); m != nil {
				if stmt, serr := s.capture(ctx, "sh", "-c", myLineScript, "sh", gz, m[1]); serr == nil && len(stmt) > 0 {
					lines = append(lines, "--------------", stmt[0], "--------------")
				}
				break
			}
		}
	}
	return loadError(err, lines)
}

func printedStatement(lines []string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, "--------------") {
			return true
		}
	}
	return false
}

// pgLoad restores a custom-format dump into database, owners and grants
// included, stopping at the first error.
func (s *session) pgLoad(ctx context.Context, cred string, db Database, database, dump string) error {
	out := newTail(40)
	tctx, cancel := context.WithTimeout(ctx, s.r.timeout())
	defer cancel()
	argv := pgEnv(cred, append(append([]string{"pg_restore", "--exit-on-error"}, pgConn(db, database)...), dump)...)
	if err := s.host.Run(tctx, "", argv, out.add); err != nil {
		return loadError(err, out.lines())
	}
	return nil
}

var (
	myErrorLine   = regexp.MustCompile(`^ERROR \d+ \(\w+\) at line (\d+)`)
	pgMissingRole = regexp.MustCompile(`role "([^"]+)" does not exist`)
	pgNotMember   = regexp.MustCompile(`must be (a )?member of role|must be able to SET ROLE|must be owner of`)
	// A sourced file's path (a temporary copy) means nothing to a reader.
	myInFile = regexp.MustCompile(` in file: '[^']*'`)
	myPacket = regexp.MustCompile(`^ERROR (1153|2006|2013) `)
)

// loadError turns a failed load's output into the error a person needs:
// the server's message and the statement that failed.
func loadError(err error, lines []string) error {
	var ee *release.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	var msg, stmt []string
	for i, l := range lines {
		switch {
		case myErrorLine.MatchString(l):
			msg = append(msg, l)
		case strings.HasPrefix(l, "--------------") && i+1 < len(lines) && stmt == nil && !strings.HasPrefix(lines[i+1], "--------------"):
			// The MariaDB client prints the failed statement between two rules.
			stmt = append(stmt, clip(lines[i+1], 200))
		case strings.Contains(l, "error:") || strings.HasPrefix(strings.TrimSpace(l), "ERROR:"):
			msg = append(msg, strings.TrimPrefix(l, "pg_restore: "))
		case strings.HasPrefix(l, "Command was:"):
			stmt = append(stmt, clip(strings.TrimSpace(strings.TrimPrefix(l, "Command was:")), 200))
		}
	}
	if len(msg) == 0 {
		msg = []string{lastLines(lines, 3)}
	}
	text := myInFile.ReplaceAllString(strings.Join(msg, " / "), "")
	if myPacket.MatchString(text) {
		text += " (the statement is larger than the server's max_allowed_packet, which must be at least twice the largest row: mysqldump escapes binary bytes)"
	}
	if m := pgMissingRole.FindStringSubmatch(text); m != nil {
		text = fmt.Sprintf("role %q named in the dump does not exist on this server (create it, e.g. CREATE ROLE %s, and try again): %s",
			m[1], pgIdent(m[1]), text)
	}
	if pgNotMember.MatchString(text) {
		text += " (restoring owners and grants needs a superuser, or a user that is a member of every role owning objects in the dump)"
	}
	if len(stmt) > 0 {
		text += "; failed statement: " + strings.Join(stmt, " / ")
	}
	return errors.New(text)
}

// tail keeps the last n lines of a command's output.
type tail struct {
	mu sync.Mutex
	n  int
	l  []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.l = append(t.l, l)
	if len(t.l) > 2*t.n {
		t.l = append([]string(nil), t.l[len(t.l)-t.n:]...)
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.l) > t.n {
		return append([]string(nil), t.l[len(t.l)-t.n:]...)
	}
	return append([]string(nil), t.l...)
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// myInspect reads what a loaded MySQL database holds.
func (s *session) myInspect(ctx context.Context, cred, database string) (loaded, error) {
	lines, err := s.mysql(ctx, cred, myObjectsQuery(database))
	if err != nil {
		return loaded{}, err
	}
	tables, objects, err := objectsOf(facts(lines), myKinds)
	if err != nil {
		return loaded{}, err
	}
	res := loaded{objects: objects}
	// In batches: one argument of a command line is at most 128 KiB on Linux.
	for len(tables) > 0 {
		n := min(len(tables), 200)
		var parts []string
		for _, t := range tables[:n] {
			parts = append(parts, "SELECT "+myLit(t)+", COUNT(*) FROM "+myIdent(database)+"."+myIdent(t))
		}
		tables = tables[n:]
		lines, err = s.mysql(ctx, cred, strings.Join(parts, " UNION ALL "))
		if err != nil {
			return loaded{}, err
		}
		counts, err := parseCounts(lines)
		if err != nil {
			return loaded{}, err
		}
		res.counts = append(res.counts, counts...)
	}
	sort.Slice(res.counts, func(i, k int) bool { return res.counts[i].table < res.counts[k].table })
	return res, nil
}

// myShape reads a database's tables and object counts, without counting
// rows (a live database just switched, which the app already uses).
func (s *session) myShape(ctx context.Context, cred, database string) (loaded, error) {
	lines, err := s.mysql(ctx, cred, myObjectsQuery(database))
	if err != nil {
		return loaded{}, err
	}
	tables, objects, err := objectsOf(facts(lines), myKinds)
	if err != nil {
		return loaded{}, err
	}
	res := loaded{objects: objects}
	for _, t := range tables {
		res.counts = append(res.counts, tableCount{table: t})
	}
	return res, nil
}

// pgInspect reads what a loaded PostgreSQL database holds.
func (s *session) pgInspect(ctx context.Context, cred string, db Database, database string) (loaded, error) {
	lines, err := s.psql(ctx, cred, db, database, pgObjectsQuery)
	if err != nil {
		return loaded{}, err
	}
	_, objects, err := objectsOf(facts(lines), pgKinds)
	if err != nil {
		return loaded{}, err
	}
	lines, err = s.psql(ctx, cred, db, database, pgCountQuery)
	if err != nil {
		return loaded{}, err
	}
	counts, err := parseCounts(lines)
	return loaded{counts: counts, objects: objects}, err
}

// check compares a loaded copy with the manifest recorded at backup time.
// A backup taken before manifests were recorded has none: then only the
// load's own success vouches for it.
func check(m *deploy.DBManifest, got loaded) error {
	if m == nil {
		return nil
	}
	var bad []string
	have := map[string]int64{}
	for _, c := range got.counts {
		have[c.table] = c.rows
		if want, ok := m.Rows[c.table]; !ok {
			bad = append(bad, fmt.Sprintf("table %s is not in the backup", c.table))
		} else if want != c.rows {
			bad = append(bad, fmt.Sprintf("table %s: %d rows loaded, the dump holds %d", c.table, c.rows, want))
		}
	}
	for _, t := range sortedKeys(m.Rows) {
		if _, ok := have[t]; !ok {
			bad = append(bad, fmt.Sprintf("table %s is missing", t))
		}
	}
	for _, k := range sortedKeys(m.Objects) {
		if got.objects[k] != m.Objects[k] {
			bad = append(bad, fmt.Sprintf("%s: %d loaded, %d recorded", k, got.objects[k], m.Objects[k]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the loaded copy does not match the backup's manifest: %s", strings.Join(bad, "; "))
	}
	return nil
}

// checkShape holds a live database just switched to the manifest's tables
// and object counts, but not its row counts: the app is already writing.
// (The rows were checked in the scratch copy.)
func checkShape(m *deploy.DBManifest, got loaded) error {
	if m == nil {
		return nil
	}
	shape := &deploy.DBManifest{Rows: map[string]int64{}, Objects: m.Objects}
	for t := range m.Rows {
		shape.Rows[t] = 0
	}
	flat := loaded{objects: got.objects}
	for _, c := range got.counts {
		flat.counts = append(flat.counts, tableCount{table: c.table})
	}
	return check(shape, flat)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// myCreate creates database with the recorded charset and collation.
func (s *session) myCreate(ctx context.Context, cred, database string, m *deploy.DBManifest) error {
	stmt := "CREATE DATABASE " + myIdent(database)
	if m != nil && m.Charset != "" {
		stmt += " CHARACTER SET " + myLit(m.Charset)
	}
	if m != nil && m.Collation != "" {
		stmt += " COLLATE " + myLit(m.Collation)
	}
	_, err := s.mysql(ctx, cred, stmt)
	return err
}

// pgCreate creates an empty database like the recorded one: same owner,
// encoding and locale, from template0 so nothing of template1 collides
// with the dump, and with the same database-level grants.
func (s *session) pgCreate(ctx context.Context, cred string, db Database, database string, m *deploy.DBManifest) error {
	stmt := "CREATE DATABASE " + pgIdent(database)
	if m != nil && m.Encoding != "" {
		stmt += " TEMPLATE template0 ENCODING " + pgLit(m.Encoding) + " LC_COLLATE " + pgLit(m.Collation) + " LC_CTYPE " + pgLit(m.Ctype)
	}
	if m != nil && m.Owner != "" {
		stmt += " OWNER " + pgIdent(m.Owner)
	}
	if _, err := s.psql(ctx, cred, db, pgMaintenanceDB, stmt); err != nil {
		if m := pgMissingRole.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("role %q, the owner of the backed-up database, does not exist on this server (create it, e.g. CREATE ROLE %s, and try again): %w",
				m[1], pgIdent(m[1]), err)
		}
		return err
	}
	if m == nil || m.ACL == "" {
		return nil
	}
	// The server parses the recorded ACL; each entry becomes a GRANT.
	grants := `DO $shipbot$DECLARE r record; BEGIN
EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', ` + pgLit(database) + `);
FOR r IN SELECT * FROM aclexplode(` + pgLit(m.ACL) + `::aclitem[]) LOOP
  EXECUTE format('GRANT %s ON DATABASE %I TO %s%s', r.privilege_type, ` + pgLit(database) + `,
    CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.grantee)) END,
    CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
END LOOP; END$shipbot$`
	_, err := s.psqlDo(ctx, cred, db, grants)
	return err
}

// pgDrop drops database, closing its connections.
func (s *session) pgDrop(ctx context.Context, cred string, db Database, database string) error {
	_, err := s.psql(ctx, cred, db, pgMaintenanceDB, "DROP DATABASE IF EXISTS "+pgIdent(database)+" WITH (FORCE)")
	return err
}

// pgCopySettings gives the loaded database the live one's ALTER DATABASE
// ... SET and ALTER ROLE ... IN DATABASE ... SET settings (a search_path
// the app relies on, say), which live with the database and not in a dump.
// List settings are split and quoted element by element, as pg_dump's
// makeAlterConfigCommand does; other values are one literal.
func (s *session) pgCopySettings(ctx context.Context, cred string, db Database, from, to string) error {
	stmt := `DO $shipbot$DECLARE r record; n text; v text; val text; BEGIN
FOR r IN SELECT st.setrole, c.kv FROM pg_db_role_setting st, unnest(st.setconfig) AS c(kv)
    WHERE st.setdatabase = (SELECT oid FROM pg_database WHERE datname = ` + pgLit(from) + `) LOOP
  n := split_part(r.kv, '=', 1);
  v := substr(r.kv, length(n) + 2);
  IF n IN ('search_path', 'temp_tablespaces', 'local_preload_libraries', 'session_preload_libraries',
      'shared_preload_libraries', 'unix_socket_directories') THEN
    SELECT string_agg(quote_literal(btrim(btrim(e), '"')), ', ') INTO val FROM regexp_split_to_table(v, ',') AS e;
  ELSE
    val := quote_literal(v);
  END IF;
  IF r.setrole = 0 THEN
    EXECUTE format('ALTER DATABASE %I SET %I TO %s', ` + pgLit(to) + `, n, val);
  ELSE
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET %I TO %s', pg_get_userbyid(r.setrole), ` + pgLit(to) + `, n, val);
  END IF;
END LOOP; END$shipbot$`
	_, err := s.psqlDo(ctx, cred, db, stmt)
	if err != nil {
		return fmt.Errorf("copying the database's settings: %w", err)
	}
	return nil
}

// pgSwap puts the loaded database in place of the live one with two
// renames in one transaction; the live one is kept as old. A rename needs
// the database to itself: its sessions are ended first, and if a client
// reconnects in between, the rename fails and is tried again, up to 20
// times. One statement, so a crash cannot leave the live database in a
// changed state (such as refusing connections).
func (s *session) pgSwap(ctx context.Context, cred string, db Database, loaded, old string) error {
	live := db.Database
	if err := s.pgCopySettings(ctx, cred, db, live, loaded); err != nil {
		return err
	}
	swap := `DO $shipbot$DECLARE tries int := 0; BEGIN
LOOP
  PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ` + pgLit(live) + ` AND pid <> pg_backend_pid();
  BEGIN
    -- A live database dropped since the backup is simply recreated.
    IF EXISTS (SELECT 1 FROM pg_database WHERE datname = ` + pgLit(live) + `) THEN
      EXECUTE format('ALTER DATABASE %I RENAME TO %I', ` + pgLit(live) + `, ` + pgLit(old) + `);
    END IF;
    EXECUTE format('ALTER DATABASE %I RENAME TO %I', ` + pgLit(loaded) + `, ` + pgLit(live) + `);
    RETURN;
  EXCEPTION WHEN object_in_use THEN
    tries := tries + 1;
    IF tries >= 20 THEN RAISE; END IF;
    PERFORM pg_sleep(0.1);
  END;
END LOOP;
END$shipbot$`
	_, err := s.psqlDo(ctx, cred, db, swap)
	return err
}
