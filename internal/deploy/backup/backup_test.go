package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/backup"
	"github.com/shipbot/shipbot/internal/deploy/deploytest"
	"github.com/shipbot/shipbot/internal/deploy/local"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// The machine's MariaDB (root, no password) and PostgreSQL (trust) on
// loopback; scripts/test.sh makes sure they and their clients exist.
const (
	mariaAddr = "127.0.0.1"
	mariaPort = 3306
	pgAddr    = "127.0.0.1"
	pgPort    = 5432
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sqlRun runs a client with SQL on stdin (test setup only, not the code under test).
func sqlRun(t testing.TB, stdin string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func maria(t testing.TB, sql string) string {
	return sqlRun(t, sql, "mysql", "-h", mariaAddr, "-P", fmt.Sprint(mariaPort), "-u", "root", "--batch", "--skip-column-names")
}

func pg(t testing.TB, db, sql string) string {
	return sqlRun(t, sql, "psql", "-h", pgAddr, "-p", fmt.Sprint(pgPort), "-U", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db)
}

// seedMaria makes a database and a user with a password that may only
// reach it through the option file.
func seedMaria(t testing.TB) backup.Database {
	name := "shipbot_t_" + randHex(4)
	user := "sb_" + randHex(3)
	pass := "pw#" + randHex(8) + " x"
	// Not the server's default collation: a restore must keep it.
	maria(t, fmt.Sprintf(`CREATE DATABASE %[1]s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '%[2]s'@'%%' IDENTIFIED BY '%[3]s';
GRANT ALL ON *.* TO '%[2]s'@'%%';
USE %[1]s;
CREATE TABLE tickets (id INT PRIMARY KEY AUTO_INCREMENT, title VARCHAR(100) NOT NULL, body TEXT);
CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(50));
INSERT INTO users VALUES (1, 'ann'), (2, 'bob'), (3, 'O''Brien');
INSERT INTO tickets (title, body) SELECT CONCAT('ticket ', seq), REPEAT('x', 200) FROM seq_1_to_5000;
`, name, user, pass))
	t.Cleanup(func() {
		maria(t, fmt.Sprintf("DROP DATABASE IF EXISTS %s; DROP USER IF EXISTS '%s'@'%%';", name, user))
	})
	return backup.Database{Name: "main", Engine: backup.MariaDB, Host: mariaAddr, Port: mariaPort, User: user,
		Password: audit.NewSecret(pass), Database: name}
}

func seedPG(t testing.TB) backup.Database {
	name := "shipbot_t_" + randHex(4)
	user := "sb_" + randHex(3)
	pass := "pw:" + randHex(8)
	pg(t, "test", fmt.Sprintf(`CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s';`, user, pass))
	pg(t, "test", "CREATE DATABASE "+name+" OWNER "+user)
	pg(t, name, `CREATE TABLE interviews (id serial PRIMARY KEY, candidate text NOT NULL, score int);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id int PRIMARY KEY, amount numeric(10,2));
INSERT INTO interviews (candidate, score) SELECT 'c' || g, g % 100 FROM generate_series(1, 3000) g;
INSERT INTO billing.invoices VALUES (1, 10.50), (2, 99.99);`)
	t.Cleanup(func() {
		pg(t, "test", fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE); DROP ROLE IF EXISTS %s;", name, user))
	})
	return backup.Database{Name: "pg", Engine: backup.Postgres, Host: pgAddr, Port: pgPort, User: user,
		Password: audit.NewSecret(pass), Database: name}
}

// spyHost wraps the local host: while each command runs it scans every
// process's argument list for the secrets.
type spyHost struct {
	*local.Host
	secrets []string
	leaked  atomic.Value // string
	seen    atomic.Int32 // client processes seen while scanning
}

func (h *spyHost) Open(context.Context) (release.Host, error) { return h, nil }

func (h *spyHost) Run(ctx context.Context, dir string, argv []string, out func(string)) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			h.scan()
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	err := h.Host.Run(ctx, dir, argv, out)
	close(done)
	wg.Wait()
	return err
}

func (h *spyHost) scan() {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		if bytes.Contains(b, []byte("mysqldump")) || bytes.Contains(b, []byte("pg_dump")) ||
			bytes.Contains(b, []byte("pg_restore")) {
			h.seen.Add(1)
		}
		for _, s := range h.secrets {
			if bytes.Contains(b, []byte(s)) {
				h.leaked.Store(p + ": " + strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
	}
}

func newRunner(t *testing.T, host release.Opener, paths []string, dbs ...backup.Database) *backup.Runner {
	return &backup.Runner{Spec: backup.Spec{Dir: filepath.Join(t.TempDir(), "backups"), Paths: paths, Databases: dbs,
		Timeout: 2 * time.Minute}, Host: host}
}

// tree reads every regular file under dir: relative path -> content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case info.IsDir():
			out[rel+"/"] = info.Mode().Perm().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = info.Mode().Perm().String() + " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func seedFiles(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "srv", "helpdesk", "uploads")
	for name, content := range map[string]string{"a.txt": "alpha", "sub/b.bin": "\x00\x01binary", "sub/deep/c.txt": "gamma"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mariaDump(t *testing.T, db string) string {
	return maria(t, "USE "+db+"; SELECT * FROM users ORDER BY id; SELECT id, title, MD5(body) FROM tickets ORDER BY id; SHOW TABLES;")
}

func pgDump(t *testing.T, db string) string {
	return pg(t, db, `SELECT * FROM interviews ORDER BY id; SELECT * FROM billing.invoices ORDER BY id;
SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;`)
}

func TestBackupRestoreRoundTripRealDatabases(t *testing.T) {
	my, pgdb := seedMaria(t), seedPG(t)
	files := seedFiles(t)
	host := &spyHost{Host: local.NewHost(), secrets: []string{my.Password.Reveal(), pgdb.Password.Reveal()}}
	restarted := 0
	r := newRunner(t, host, []string{files}, my, pgdb)
	r.Restart = func(ctx context.Context, p deploy.Progress) error { restarted++; return nil }
	ctx := context.Background()
	// Objects besides tables, which the manifest counts and a restore keeps.
	maria(t, "USE "+my.Database+`; CREATE VIEW open_tickets AS SELECT id, title FROM tickets;
CREATE TRIGGER tickets_bi BEFORE INSERT ON tickets FOR EACH ROW SET NEW.title = TRIM(NEW.title);
CREATE PROCEDURE ticket_count() SELECT COUNT(*) FROM tickets;`)
	pg(t, pgdb.Database, `CREATE VIEW top AS SELECT * FROM interviews WHERE score > 90;
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.score := NEW.score; RETURN NEW; END$$;
CREATE TRIGGER interviews_bump BEFORE UPDATE ON interviews FOR EACH ROW EXECUTE FUNCTION bump();`)

	wantFiles, wantMy, wantPG := tree(t, files), mariaDump(t, my.Database), pgDump(t, pgdb.Database)
	p := &deploytest.Progress{}
	res, err := r.Backup(ctx, deploy.BackupRequest{JobID: 7, App: "helpdesk", Env: "prod", ID: "20261123-100000-7"}, p)
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, p.Text())
	}
	if len(res.Files) != 3 {
		t.Fatalf("files = %+v", res.Files)
	}
	for _, f := range res.Files {
		if len(f.SHA256) != 64 || f.Size <= 0 {
			t.Errorf("file %+v lacks checksum or size", f)
		}
		st, err := os.Stat(filepath.Join(res.Location, f.Name))
		if err != nil || st.Size() != f.Size {
			t.Errorf("%s on disk: %v size %v, recorded %d", f.Name, err, st, f.Size)
		}
	}
	// Only the owner can read the backups.
	for _, d := range []string{r.Spec.Dir, res.Location} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v mode %v, want 0700", d, err, st.Mode().Perm())
		}
	}
	// No credentials file is left behind.
	left, _ := filepath.Glob(filepath.Join(r.Spec.Dir, ".cred-*"))
	if len(left) != 0 {
		t.Errorf("credential files left: %v", left)
	}
	manifest, err := os.ReadFile(filepath.Join(res.Location, "manifest.json"))
	if err != nil || !strings.Contains(string(manifest), res.Files[0].SHA256) {
		t.Errorf("manifest: %v %s", err, manifest)
	}

	// Change everything: rows, tables, objects, files. The new PostgreSQL
	// table references a backed-up one, which once made the restore fail
	// halfway; a restore leaves neither new table behind.
	maria(t, "USE "+my.Database+"; DELETE FROM tickets WHERE id > 100; UPDATE users SET name='mallory' WHERE id=1; DROP TABLE users; CREATE TABLE junk (x INT); DROP VIEW open_tickets; CREATE VIEW v_junk AS SELECT 1;")
	pg(t, pgdb.Database, `DELETE FROM interviews WHERE id % 2 = 0; UPDATE billing.invoices SET amount = 0; INSERT INTO interviews (candidate) VALUES ('late');
CREATE TABLE notes (id int PRIMARY KEY, interview int REFERENCES interviews(id)); DROP VIEW top;`)
	_ = os.WriteFile(filepath.Join(files, "a.txt"), []byte("changed"), 0o600)
	_ = os.WriteFile(filepath.Join(files, "new.txt"), []byte("written since"), 0o600)
	_ = os.RemoveAll(filepath.Join(files, "sub", "deep"))

	rec := deploy.Backup{App: "helpdesk", Env: "prod", ID: "20261123-100000-7", Location: res.Location, Files: res.Files, State: deploy.BackupOK}
	p2 := &deploytest.Progress{}
	if _, err := r.Restore(ctx, rec, false, p2); err != nil {
		t.Fatalf("restore: %v\n%s", err, p2.Text())
	}
	if restarted != 1 {
		t.Errorf("restarted %d times, want 1", restarted)
	}
	if got := tree(t, files); fmt.Sprint(got) != fmt.Sprint(wantFiles) {
		t.Errorf("files after restore:\n%v\nwant\n%v", got, wantFiles)
	}
	if got := mariaDump(t, my.Database); got != wantMy {
		t.Errorf("mariadb rows differ after restore (%d vs %d bytes)", len(got), len(wantMy))
	}
	if got := maria(t, "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+my.Database+"'"); strings.TrimSpace(got) != "utf8mb4_unicode_ci" {
		t.Errorf("mariadb collation after restore = %q, want utf8mb4_unicode_ci", got)
	}
	if got := maria(t, "SELECT CONCAT_WS(',', (SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '"+my.Database+"'), (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '"+my.Database+"'), (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '"+my.Database+"'))"); strings.TrimSpace(got) != "open_tickets,1,1" {
		t.Errorf("mariadb views, triggers, routines after restore = %q", got)
	}
	if got := pg(t, pgdb.Database, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname IN ('notes', 'top')"); strings.TrimSpace(got) != "top" {
		t.Errorf("postgres relations after restore = %q, want top back and notes gone", got)
	}
	if got := pgDump(t, pgdb.Database); got != wantPG {
		t.Errorf("postgres rows differ after restore:\n%.300s\nwant\n%.300s", got, wantPG)
	}

	// The drill: a real restore into scratch databases with table and row counts.
	p3 := &deploytest.Progress{}
	v, err := r.VerifyBackup(ctx, rec, p3)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, p3.Text())
	}
	joined := strings.Join(v.Lines, "\n")
	for _, want := range []string{"main.tickets: 5000 rows", "main.users: 3 rows", "pg.public.interviews: 3000 rows",
		"pg.billing.invoices: 2 rows", "files.tar.gz: 6 entries"} {
		if !strings.Contains(joined, want) {
			t.Errorf("drill lines lack %q:\n%s", want, joined)
		}
	}
	if !strings.Contains(v.Message, "main: 2 tables, 5003 rows, 1 routines, 1 triggers, 1 views, as recorded") ||
		!strings.Contains(v.Message, "pg: 2 tables, 3002 rows") || !strings.Contains(v.Message, "1 triggers, 1 views, as recorded") {
		t.Errorf("drill message = %q", v.Message)
	}
	// Scratch databases were dropped.
	noScratchLeft(t, p2, p3)

	// The plain SQL unpacked for the drill and the restore is gone.
	if left, _ := filepath.Glob(filepath.Join(res.Location, ".restore-*")); len(left) != 0 {
		t.Errorf("unpacked dumps left: %v", left)
	}
	// The password was in no argument list, no output, no step detail.
	if l, _ := host.leaked.Load().(string); l != "" {
		t.Fatalf("password visible in a process argument list: %s", l)
	}
	if host.seen.Load() == 0 {
		t.Fatal("the /proc scan never saw a dump or restore process; the argv check proved nothing")
	}
	for _, out := range []string{p.Text(), p2.Text(), p3.Text()} {
		for _, s := range host.secrets {
			if strings.Contains(out, s) {
				t.Fatalf("password in job output:\n%s", out)
			}
		}
	}
}

func TestVerifyDetectsCorruptedArchive(t *testing.T) {
	files := seedFiles(t)
	r := newRunner(t, local.NewHost(), []string{files})
	ctx := context.Background()
	res, err := r.Backup(ctx, deploy.BackupRequest{ID: "20261123-100000-1"}, &deploytest.Progress{})
	if err != nil {
		t.Fatal(err)
	}
	rec := deploy.Backup{ID: "20261123-100000-1", Location: res.Location, Files: res.Files, State: deploy.BackupOK}
	if _, err := r.VerifyBackup(ctx, rec, &deploytest.Progress{}); err != nil {
		t.Fatalf("intact backup failed verify: %v", err)
	}
	archive := filepath.Join(res.Location, "files.tar.gz")
	b, _ := os.ReadFile(archive)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(archive, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = r.VerifyBackup(ctx, rec, &deploytest.Progress{})
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "files.tar.gz") {
		t.Fatalf("verify of a corrupted archive = %v", err)
	}
	// Restore refuses a damaged backup before touching anything.
	_ = os.WriteFile(filepath.Join(files, "a.txt"), []byte("live"), 0o640)
	if _, err := r.Restore(ctx, rec, false, &deploytest.Progress{}); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("restore of a damaged backup = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(files, "a.txt")); string(b) != "live" {
		t.Errorf("a refused restore changed files: %q", b)
	}
}

func TestFailedDumpRemovesPartialBackup(t *testing.T) {
	files := seedFiles(t)
	bad := backup.Database{Name: "main", Engine: backup.MariaDB, Host: mariaAddr, Port: mariaPort, User: "root",
		Password: audit.NewSecret("wrong-" + randHex(4)), Database: "does_not_exist_" + randHex(3)}
	r := newRunner(t, local.NewHost(), []string{files}, bad)
	p := &deploytest.Progress{}
	_, err := r.Backup(context.Background(), deploy.BackupRequest{ID: "20261123-100000-2"}, p)
	if err == nil {
		t.Fatal("backup of a missing database succeeded")
	}
	if !strings.Contains(err.Error(), "dump main") {
		t.Errorf("error does not name the step: %v", err)
	}
	entries, _ := os.ReadDir(r.Spec.Dir)
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("partial backup left: %v", names)
	}
	if strings.Contains(p.Text(), bad.Password.Reveal()) || strings.Contains(err.Error(), bad.Password.Reveal()) {
		t.Error("password in output or error")
	}
}

func TestDeleteBackupsRemovesOnlyNamed(t *testing.T) {
	files := seedFiles(t)
	r := newRunner(t, local.NewHost(), []string{files})
	ctx := context.Background()
	for _, id := range []string{"a1", "a2", "a3"} {
		if _, err := r.Backup(ctx, deploy.BackupRequest{ID: id}, &deploytest.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DeleteBackups(ctx, []string{"a1", "a3"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(r.Spec.Dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "a2" {
		t.Errorf("left %v, want [a2]", names)
	}
	if err := r.DeleteBackups(ctx, []string{"../x"}); err == nil {
		t.Error("a path-like id was accepted")
	}
	if _, err := r.Backup(ctx, deploy.BackupRequest{ID: "a2"}, &deploytest.Progress{}); err == nil {
		t.Error("a backup over an existing one succeeded")
	}
	if _, err := os.Stat(filepath.Join(r.Spec.Dir, "a2", "files.tar.gz")); err != nil {
		t.Errorf("the failed second backup removed the first: %v", err)
	}
}
