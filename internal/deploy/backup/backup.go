// Package backup backs up and restores an env on its host: a tar.gz of the
// configured paths and a dump of each configured database (mysqldump
// --single-transaction, pg_dump -Fc), with sizes, SHA-256 checksums and a
// manifest of what each database held; a restore drill into a scratch
// database; and restore, which loads and checks every part aside before
// anything live changes (stage.go). It runs over the same release.Host as
// the release runner, so the local and SSH drivers share it.
//
// Database passwords never appear on a command line: they go into an option
// file (MySQL/MariaDB) or a passfile (PostgreSQL) uploaded with mode 0600 and
// removed as soon as the command ends.
package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shipbot/shipbot/internal/audit"
	"github.com/shipbot/shipbot/internal/deploy"
	"github.com/shipbot/shipbot/internal/deploy/release"
)

// Database engines.
const (
	MySQL    = "mysql"
	MariaDB  = "mariadb"
	Postgres = "postgres"
)

// Database is one database to dump.
type Database struct {
	Name     string // label, unique in the env: the dump is db-NAME.*
	Engine   string // mysql, mariadb or postgres
	Host     string // "" = the client's default (socket)
	Port     int    // 0 = the client's default
	User     string
	Password audit.Secret
	Database string
}

// Spec is an env's backup configuration.
type Spec struct {
	// Dir holds one directory per backup on the host.
	Dir string
	// Paths are absolute paths archived into files.tar.gz.
	Paths     []string
	Databases []Database
	// Timeout bounds one command (a dump, a restore); 0 means one hour.
	Timeout time.Duration
}

// Runner does an env's backups on its host.
type Runner struct {
	Spec Spec
	// Host opens the machine the backups live on (the first host of the env).
	Host release.Opener
	// Restart restarts and health-checks the app after a restore; nil skips it.
	Restart func(ctx context.Context, p deploy.Progress) error
}

var _ deploy.Backuper = (*Runner)(nil)

// File names inside a backup's directory.
const (
	filesArchive = "files.tar.gz"
	manifestName = "manifest.json"
)

func dumpName(db Database) string {
	if db.Engine == Postgres {
		return "db-" + db.Name + ".dump"
	}
	return "db-" + db.Name + ".sql.gz"
}

func (r *Runner) timeout() time.Duration {
	if r.Spec.Timeout > 0 {
		return r.Spec.Timeout
	}
	return time.Hour
}

// session is one opened host for one operation.
type session struct {
	r    *Runner
	host release.Host
	p    deploy.Progress
}

func (r *Runner) open(ctx context.Context, p deploy.Progress) (*session, error) {
	if p == nil {
		p = nopProgress{}
	}
	h, err := r.Host.Open(ctx)
	if err != nil {
		return nil, err
	}
	return &session{r: r, host: h, p: p}, nil
}

type nopProgress struct{}

func (nopProgress) Step(string, deploy.StepState, string) {}
func (nopProgress) Output(string)                         {}

// run runs argv, streaming its output to the job.
func (s *session) run(ctx context.Context, argv ...string) error {
	ctx, cancel := context.WithTimeout(ctx, s.r.timeout())
	defer cancel()
	return explain(s.host.Run(ctx, "", argv, s.p.Output))
}

// explain names the tool that failed and adds its last output lines: an
// *ExitError alone reads "env: exit status 1" for every PostgreSQL client.
func explain(err error) error {
	var ee *release.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	out := strings.Join(strings.Fields(strings.ReplaceAll(ee.Output, "\n", " / ")), " ")
	if out == "" {
		return fmt.Errorf("%s: exit status %d", tool(ee.Argv), ee.Code)
	}
	return fmt.Errorf("%s failed (exit status %d): %s", tool(ee.Argv), ee.Code, out)
}

// tool is the program argv runs, looking through env(1).
func tool(argv []string) string {
	for i, a := range argv {
		if i == 0 && a == "env" || i > 0 && argv[0] == "env" && strings.Contains(a, "=") {
			continue
		}
		return a
	}
	return "?"
}

// capture runs argv and returns its output lines without showing them.
func (s *session) capture(ctx context.Context, argv ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.r.timeout())
	defer cancel()
	var mu sync.Mutex
	var lines []string
	err := s.host.Run(ctx, "", argv, func(l string) {
		mu.Lock()
		lines = append(lines, l)
		mu.Unlock()
	})
	if err != nil {
		var ee *release.ExitError
		if errors.As(err, &ee) && len(lines) > 0 {
			return lines, fmt.Errorf("%s failed (exit status %d): %s", tool(ee.Argv), ee.Code, lastLines(lines, 4))
		}
	}
	return lines, err
}

func lastLines(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// step runs fn as a named step of the job's checklist.
func (s *session) step(name string, fn func() (string, error)) error {
	s.p.Step(name, deploy.StepRunning, "")
	detail, err := fn()
	if err != nil {
		s.p.Step(name, deploy.StepFailed, err.Error())
		return fmt.Errorf("%s: %w", name, err)
	}
	s.p.Step(name, deploy.StepDone, detail)
	return nil
}

func (s *session) backupDir(id string) (string, error) {
	if !deploy.ValidName(id) {
		return "", fmt.Errorf("backup id %q is not valid", id)
	}
	return path.Join(s.r.Spec.Dir, id), nil
}

// Backup implements deploy.Backuper.
func (r *Runner) Backup(ctx context.Context, req deploy.BackupRequest, p deploy.Progress) (deploy.BackupResult, error) {
	s, err := r.open(ctx, p)
	if err != nil {
		return deploy.BackupResult{}, err
	}
	defer s.host.Close()
	dir, err := s.backupDir(req.ID)
	if err != nil {
		return deploy.BackupResult{}, err
	}
	// The backups hold every row of the databases: only the owner reads them.
	if err := s.run(ctx, "mkdir", "-p", "-m", "0700", "--", r.Spec.Dir); err != nil {
		return deploy.BackupResult{}, err
	}
	// Plain mkdir: a backup never lands in a directory another one left.
	if err := s.run(ctx, "mkdir", "-m", "0700", "--", dir); err != nil {
		return deploy.BackupResult{}, err
	}
	res, err := s.backup(ctx, dir)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := s.host.Run(cctx, "", []string{"rm", "-rf", "--", dir}, nil); rerr != nil {
			err = fmt.Errorf("%w; removing the partial backup %s also failed: %v", err, dir, rerr)
		}
		return deploy.BackupResult{}, err
	}
	return res, nil
}

func (s *session) backup(ctx context.Context, dir string) (deploy.BackupResult, error) {
	var files []deploy.BackupFile
	if len(s.r.Spec.Paths) > 0 {
		err := s.step("archive", func() (string, error) {
			argv := []string{"tar", "-czf", path.Join(dir, filesArchive), "-C", "/", "--"}
			for _, p := range s.r.Spec.Paths {
				argv = append(argv, strings.TrimPrefix(p, "/"))
			}
			return strings.Join(s.r.Spec.Paths, ", "), s.run(ctx, argv...)
		})
		if err != nil {
			return deploy.BackupResult{}, err
		}
		files = append(files, deploy.BackupFile{Name: filesArchive, Kind: "files", Source: strings.Join(s.r.Spec.Paths, " ")})
	}
	for _, db := range s.r.Spec.Databases {
		var m *deploy.DBManifest
		err := s.step("dump "+db.Name, func() (string, error) {
			var err error
			m, err = s.dump(ctx, dir, db)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s %s: %s", db.Engine, db.Database, describe(m)), nil
		})
		if err != nil {
			return deploy.BackupResult{}, err
		}
		files = append(files, deploy.BackupFile{Name: dumpName(db), Kind: kind(db.Engine), Source: db.Name, Manifest: m})
	}
	err := s.step("checksum", func() (string, error) {
		sums, sizes, err := s.measure(ctx, dir, files)
		if err != nil {
			return "", err
		}
		var total int64
		for i := range files {
			files[i].SHA256, files[i].Size = sums[files[i].Name], sizes[files[i].Name]
			total += files[i].Size
		}
		return fmt.Sprintf("%d files, %s", len(files), deploy.FormatSize(total)), nil
	})
	if err != nil {
		return deploy.BackupResult{}, err
	}
	if err := s.writeManifest(ctx, dir, files); err != nil {
		return deploy.BackupResult{}, err
	}
	return deploy.BackupResult{Location: dir, Files: files}, nil
}

func kind(engine string) string {
	if engine == Postgres {
		return Postgres
	}
	return MySQL
}

// measure reads the SHA-256 and size of files on the host.
func (s *session) measure(ctx context.Context, dir string, files []deploy.BackupFile) (map[string]string, map[string]int64, error) {
	sums, sizes := map[string]string{}, map[string]int64{}
	if len(files) == 0 {
		return sums, sizes, nil
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, path.Join(dir, f.Name))
	}
	lines, err := s.capture(ctx, append([]string{"sha256sum", "--"}, paths...)...)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range lines {
		sum, p, ok := strings.Cut(l, "  ")
		if ok && len(sum) == 64 {
			sums[path.Base(p)] = sum
		}
	}
	lines, err = s.capture(ctx, append([]string{"stat", "-c", "%s %n", "--"}, paths...)...)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range lines {
		n, p, ok := strings.Cut(l, " ")
		if v, err := strconv.ParseInt(n, 10, 64); ok && err == nil {
			sizes[path.Base(p)] = v
		}
	}
	for _, f := range files {
		if sums[f.Name] == "" {
			return nil, nil, fmt.Errorf("no checksum for %s", f.Name)
		}
	}
	return sums, sizes, nil
}

// writeManifest leaves a description beside the files, so a backup can be
// understood (and checked with sha256sum) without shipbot's database.
func (s *session) writeManifest(ctx context.Context, dir string, files []deploy.BackupFile) error {
	up, ok := s.host.(release.Uploader)
	if !ok {
		return nil
	}
	b, err := json.MarshalIndent(struct {
		Files []deploy.BackupFile `json:"files"`
	}{files}, "", "  ")
	if err != nil {
		return err
	}
	return up.Upload(ctx, strings.NewReader(string(b)+"\n"), path.Join(dir, manifestName), 0o600)
}

// checkSums compares files of b on the host with the recorded checksums.
func (s *session) checkSums(ctx context.Context, b deploy.Backup, files []deploy.BackupFile) error {
	if len(files) == 0 {
		return errors.New("the backup record lists no files")
	}
	sums, _, err := s.measure(ctx, b.Location, files)
	if err != nil {
		return fmt.Errorf("reading the backup's files: %w", err)
	}
	var bad []string
	for _, f := range files {
		if sums[f.Name] != f.SHA256 {
			bad = append(bad, fmt.Sprintf("%s (recorded %.12s…, found %.12s…)", f.Name, f.SHA256, sums[f.Name]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("checksum mismatch, the backup is damaged: %s", strings.Join(bad, "; "))
	}
	return nil
}

// VerifyBackup implements deploy.Backuper: checksums, then a restore drill
// of every dump into a scratch database that is dropped afterwards.
func (r *Runner) VerifyBackup(ctx context.Context, b deploy.Backup, p deploy.Progress) (deploy.VerifyResult, error) {
	s, err := r.open(ctx, p)
	if err != nil {
		return deploy.VerifyResult{}, err
	}
	defer s.host.Close()
	if err := s.step("checksum", func() (string, error) {
		return fmt.Sprintf("%d files match", len(b.Files)), s.checkSums(ctx, b, b.Files)
	}); err != nil {
		return deploy.VerifyResult{}, err
	}
	var res deploy.VerifyResult
	var summary []string
	for _, f := range b.Files {
		f := f
		switch f.Kind {
		case "files":
			err = s.step("list "+f.Name, func() (string, error) {
				// Counted as they stream: an archive may hold millions of files.
				var n atomic.Int64
				tctx, cancel := context.WithTimeout(ctx, s.r.timeout())
				err := s.host.Run(tctx, "", []string{"tar", "-tzf", path.Join(b.Location, f.Name)}, func(string) { n.Add(1) })
				cancel()
				if err != nil {
					return "", fmt.Errorf("the archive does not read back: %w", err)
				}
				res.Lines = append(res.Lines, fmt.Sprintf("%s: %d entries", f.Name, n.Load()))
				summary = append(summary, fmt.Sprintf("%d archived entries", n.Load()))
				return fmt.Sprintf("%d entries", n.Load()), nil
			})
		case MySQL, Postgres:
			db, ok := r.database(f.Source)
			if !ok {
				err = fmt.Errorf("database %q of this backup is no longer configured; cannot drill it", f.Source)
				break
			}
			err = s.step("drill "+db.Name, func() (string, error) {
				got, err := s.drill(ctx, b.Location, f, db)
				if err != nil {
					return "", err
				}
				for _, c := range got.counts {
					res.Lines = append(res.Lines, fmt.Sprintf("%s.%s: %d rows", db.Name, c.table, c.rows))
				}
				d := got.describe(f.Manifest)
				summary = append(summary, db.Name+": "+d)
				return d, nil
			})
		}
		if err != nil {
			return deploy.VerifyResult{}, err
		}
	}
	res.Message = fmt.Sprintf("checksums ok; %s", strings.Join(summary, "; "))
	return res, nil
}

func (r *Runner) database(name string) (Database, bool) {
	for _, db := range r.Spec.Databases {
		if db.Name == name {
			return db, true
		}
	}
	return Database{}, false
}

type tableCount struct {
	table string
	rows  int64
}

func parseCounts(lines []string) ([]tableCount, error) {
	var out []tableCount
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		name, n, ok := strings.Cut(l, "\t")
		v, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("unexpected count line %q", l)
		}
		out = append(out, tableCount{table: name, rows: v})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].table < out[k].table })
	return out, nil
}

// scratchName is a database name no one else uses: created for a drill or
// a restore's load and dropped after ("drill"), or the live database kept
// aside during a swap ("old").
func scratchName(kind string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "shipbot_" + kind + "_" + hex.EncodeToString(b[:])
}

// DeleteBackups implements deploy.Backuper.
func (r *Runner) DeleteBackups(ctx context.Context, ids []string) error {
	s, err := r.open(ctx, nil)
	if err != nil {
		return err
	}
	defer s.host.Close()
	for _, id := range ids {
		dir, err := s.backupDir(id)
		if err != nil {
			return err
		}
		if err := s.run(ctx, "rm", "-rf", "--", dir); err != nil {
			return err
		}
	}
	return nil
}
