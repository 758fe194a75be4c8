package backup

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/shipbot/shipbot/internal/deploy"
)

var _ deploy.RestoreStager = (*Runner)(nil)

// describe sums up a manifest for a step's detail.
func describe(m *deploy.DBManifest) string {
	if m == nil {
		return "no manifest"
	}
	var rows int64
	for _, n := range m.Rows {
		rows += n
	}
	return fmt.Sprintf("%d tables, %d rows%s", len(m.Rows), rows, objectsText(m.Objects))
}

func objectsText(o map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(o) {
		if o[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", o[k], k))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}

// describe sums up a loaded copy, saying whether it was held against a
// manifest.
func (l loaded) describe(m *deploy.DBManifest) string {
	var rows int64
	for _, c := range l.counts {
		rows += c.rows
	}
	d := fmt.Sprintf("%d tables, %d rows%s", len(l.counts), rows, objectsText(l.objects))
	if m == nil {
		return d + " (no manifest recorded with this backup to compare with)"
	}
	return d + ", as recorded"
}

// loadScratch loads dump f of db into a new scratch database, holding it
// to the manifest. The scratch database is dropped unless keep and the load
// passed.
func (s *session) loadScratch(ctx context.Context, cred string, f deploy.BackupFile, db Database, dumpPath string, keep bool) (string, loaded, error) {
	scratch := scratchName("drill")
	props := s.createProps(ctx, cred, f.Manifest, db)
	var got loaded
	var err error
	if db.Engine == Postgres {
		if err = s.pgCreate(ctx, cred, db, scratch, props); err != nil {
			return "", loaded{}, err
		}
		s.p.Output("scratch database " + scratch + " created")
		if err = s.pgLoad(ctx, cred, db, scratch, dumpPath); err == nil {
			got, err = s.pgInspect(ctx, cred, db, scratch)
		}
	} else {
		if err = s.myCreate(ctx, cred, scratch, props); err != nil {
			return "", loaded{}, err
		}
		s.p.Output("scratch database " + scratch + " created")
		if err = s.myLoad(ctx, cred, scratch, dumpPath); err == nil {
			got, err = s.myInspect(ctx, cred, scratch)
		}
	}
	if err != nil {
		err = fmt.Errorf("loading %s into scratch database %s failed, so nothing live was touched: %w", f.Name, scratch, err)
	} else {
		err = check(f.Manifest, got)
	}
	if err != nil || !keep {
		if derr := s.dropScratch(ctx, cred, db, scratch); derr != nil {
			err = errors.Join(err, derr)
		} else {
			s.p.Output("scratch database " + scratch + " dropped")
		}
	}
	if err != nil {
		return "", loaded{}, err
	}
	if !keep {
		return "", got, nil
	}
	return scratch, got, nil
}

// createProps are the database-level properties a scratch database is
// created with: the manifest's, or for a backup taken before manifests
// were recorded, the live database's (what a restore into it kept).
func (s *session) createProps(ctx context.Context, cred string, m *deploy.DBManifest, db Database) *deploy.DBManifest {
	if m != nil && (m.Charset != "" || m.Owner != "") {
		return m
	}
	var lines []string
	var err error
	if db.Engine == Postgres {
		lines, err = s.psql(ctx, cred, db, db.Database, pgObjectsQuery)
	} else {
		lines, err = s.mysql(ctx, cred, myObjectsQuery(db.Database))
	}
	if err != nil {
		// The live database may be gone; the server's defaults then.
		return nil
	}
	f := facts(lines)
	return &deploy.DBManifest{Charset: f["charset"], Collation: f["collation"] + f["collate"], Owner: f["owner"],
		Encoding: f["encoding"], Ctype: f["ctype"], ACL: f["acl"]}
}

func (s *session) dropScratch(ctx context.Context, cred string, db Database, scratch string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	var err error
	if db.Engine == Postgres {
		err = s.pgDrop(cctx, cred, db, scratch)
	} else {
		_, err = s.mysql(cctx, cred, "DROP DATABASE IF EXISTS "+myIdent(scratch))
	}
	if err != nil {
		return fmt.Errorf("dropping scratch database %s: %w", scratch, err)
	}
	return nil
}

// drill loads f into a scratch database, checks it against the manifest
// and drops it.
func (s *session) drill(ctx context.Context, dir string, f deploy.BackupFile, db Database) (loaded, error) {
	var got loaded
	err := s.withCredentials(ctx, db, func(cred string) error {
		var err error
		_, got, err = s.loadScratch(ctx, cred, f, db, path.Join(dir, f.Name), false)
		return err
	})
	return got, err
}

// Restore implements deploy.Backuper: stage, then apply, in one call.
// The engine uses StageRestore so it can take its safety backup between.
func (r *Runner) Restore(ctx context.Context, b deploy.Backup, dbOnly bool, p deploy.Progress) (deploy.Result, error) {
	st, err := r.StageRestore(ctx, b, deploy.RestoreOptions{DBOnly: dbOnly}, p)
	if err != nil {
		return deploy.Result{}, err
	}
	defer st.Discard(context.WithoutCancel(ctx))
	return st.Apply(ctx, p)
}

// part is one staged part of a restore.
type part struct {
	f  deploy.BackupFile
	db Database
	// files: where the archive was unpacked.
	staging string
	// PostgreSQL: the loaded scratch database, renamed into place.
	scratch string
}

// staged is a restore whose parts are checked and loaded aside.
type staged struct {
	s     *session
	b     deploy.Backup
	parts []*part

	mu        sync.Mutex
	discarded bool
}

// StageRestore implements deploy.RestoreStager.
func (r *Runner) StageRestore(ctx context.Context, b deploy.Backup, opts deploy.RestoreOptions, p deploy.Progress) (deploy.StagedRestore, error) {
	s, err := r.open(ctx, p)
	if err != nil {
		return nil, err
	}
	st := &staged{s: s, b: b}
	var files []deploy.BackupFile
	for _, f := range b.Files {
		switch {
		case !opts.Wants(f):
		case f.Kind == "files" || f.Kind == MySQL || f.Kind == Postgres:
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		st.Discard(ctx)
		return nil, errors.New("the backup holds nothing to restore")
	}
	// Never restore from a damaged backup; checked before the engine takes
	// its safety backup.
	if err := s.step("verify checksums", func() (string, error) {
		return fmt.Sprintf("%d files match", len(files)), s.checkSums(ctx, b, files)
	}); err != nil {
		st.Discard(ctx)
		return nil, err
	}
	for _, f := range files {
		pt := &part{f: f}
		st.parts = append(st.parts, pt)
		var err error
		if f.Kind == "files" {
			err = s.step("unpack files", func() (string, error) {
				return f.Source, st.unpackFiles(ctx, pt)
			})
		} else {
			db, ok := r.database(f.Source)
			if !ok {
				err = fmt.Errorf("database %q of this backup is no longer configured; cannot restore it", f.Source)
			} else {
				pt.db = db
				err = s.step("load "+db.Name, func() (string, error) { return st.loadDB(ctx, pt) })
			}
		}
		if err != nil {
			st.Discard(ctx)
			return nil, err
		}
	}
	return st, nil
}

func (st *staged) unpackFiles(ctx context.Context, pt *part) error {
	s := st.s
	pt.staging = path.Join(s.r.Spec.Dir, "."+st.b.ID+".restore")
	if err := s.host.Run(ctx, "", []string{"rm", "-rf", "--", pt.staging}, nil); err != nil {
		return explain(err)
	}
	if err := s.run(ctx, "mkdir", "-m", "0700", "--", pt.staging); err != nil {
		return err
	}
	if err := s.run(ctx, "tar", "-xzf", path.Join(st.b.Location, pt.f.Name), "-C", pt.staging); err != nil {
		return fmt.Errorf("the archive does not unpack: %w", err)
	}
	for _, p := range strings.Fields(pt.f.Source) {
		if _, err := s.capture(ctx, "test", "-e", path.Join(pt.staging, p)); err != nil {
			return fmt.Errorf("the archive lacks %s", p)
		}
	}
	return nil
}

func (st *staged) loadDB(ctx context.Context, pt *part) (string, error) {
	s := st.s
	var detail string
	err := s.withCredentials(ctx, pt.db, func(cred string) error {
		// PostgreSQL always swaps the loaded copy in; MySQL can when the
		// database holds tables only (see renameMy).
		keep := pt.db.Engine == Postgres || tablesOnly(pt.f.Manifest)
		scratch, got, err := s.loadScratch(ctx, cred, pt.f, pt.db, path.Join(st.b.Location, pt.f.Name), keep)
		if err != nil {
			return err
		}
		pt.scratch = scratch
		detail = got.describe(pt.f.Manifest) + " in a scratch database"
		return nil
	})
	return detail, err
}

// Apply implements deploy.StagedRestore.
func (st *staged) Apply(ctx context.Context, p deploy.Progress) (deploy.Result, error) {
	s := st.s
	if p != nil {
		s.p = p
	}
	var touched []string
	for _, pt := range st.parts {
		name := "restore files"
		if pt.f.Kind != "files" {
			name = "restore " + pt.db.Name
		}
		changed := false
		err := s.step(name, func() (string, error) {
			switch pt.f.Kind {
			case "files":
				return pt.f.Source, st.swapFiles(ctx, pt, &changed)
			case Postgres:
				return pt.db.Engine + " " + pt.db.Database, st.swapPG(ctx, pt, &changed)
			default:
				return pt.db.Engine + " " + pt.db.Database, st.reloadMy(ctx, pt, &changed)
			}
		})
		if changed {
			touched = append(touched, pt.f.Name)
		}
		if err != nil {
			return deploy.Result{}, &deploy.ApplyError{Part: pt.f.Name, Touched: touched, Err: err}
		}
	}
	if s.r.Restart != nil {
		if err := s.r.Restart(ctx, s.p); err != nil {
			return deploy.Result{}, &deploy.RestartError{Err: err}
		}
	}
	return deploy.Result{Message: fmt.Sprintf("%d parts restored", len(st.parts))}, nil
}

// swapFiles moves each live path aside and the unpacked one in with two
// renames, so a path is never half old and half new, and files created
// since the backup do not linger.
func (st *staged) swapFiles(ctx context.Context, pt *part, changed *bool) error {
	s := st.s
	for _, p := range strings.Fields(pt.f.Source) {
		staged := path.Join(pt.staging, p)
		old := p + ".shipbot-old"
		if err := s.run(ctx, "rm", "-rf", "--", old); err != nil {
			return err
		}
		// The live path may not exist (deleted since): then only move in.
		if _, err := s.capture(ctx, "test", "-e", p); err == nil {
			*changed = true
			if err := s.run(ctx, "mv", "-T", "--", p, old); err != nil {
				return err
			}
		}
		*changed = true
		if err := s.run(ctx, "mv", "-T", "--", staged, p); err != nil {
			return err
		}
		if err := s.run(ctx, "rm", "-rf", "--", old); err != nil {
			return err
		}
	}
	return nil
}

// swapPG renames the loaded scratch database into the live one's place
// and drops the live one, which the safety backup holds.
func (st *staged) swapPG(ctx context.Context, pt *part, changed *bool) error {
	s := st.s
	return s.withCredentials(ctx, pt.db, func(cred string) error {
		old := scratchName("old")
		if err := s.pgSwap(ctx, cred, pt.db, pt.scratch, old); err != nil {
			return err
		}
		*changed = true
		pt.scratch = ""
		s.p.Output("database " + pt.db.Database + " replaced by the loaded copy; the replaced one, renamed " + old + ", is dropped")
		if err := s.pgDrop(ctx, cred, pt.db, old); err != nil { // IF EXISTS: there may have been no live one
			// The restore itself is complete; only space is left taken.
			s.p.Output(fmt.Sprintf("the replaced database was kept as %s: dropping it failed: %v", old, err))
		}
		return nil
	})
}

// tablesOnly reports whether a MySQL dump's manifest records no views,
// triggers, routines or events: its loaded copy can then be moved in by
// renaming tables.
func tablesOnly(m *deploy.DBManifest) bool {
	if m == nil {
		return false
	}
	for _, k := range myKinds {
		if m.Objects[k] != 0 {
			return false
		}
	}
	return true
}

// myLockWait bounds how long a DROP or RENAME waits for a metadata lock a
// long transaction holds, instead of the server's default of a year.
const myLockWait = "SET SESSION lock_wait_timeout = 120; "

// reloadMy puts a MySQL dump in place of the live database. MySQL cannot
// rename a database; when both the dump and the live database hold tables
// only, one atomic RENAME TABLE moves the live tables aside and the loaded
// ones in (renameMy). Otherwise the live database is dropped, recreated and
// loaded from the dump that just loaded without an error into a scratch
// database on the same server with the same user and client. Either way the
// result is held to the manifest.
func (st *staged) reloadMy(ctx context.Context, pt *part, changed *bool) error {
	s := st.s
	return s.withCredentials(ctx, pt.db, func(cred string) error {
		props := s.createProps(ctx, cred, pt.f.Manifest, pt.db)
		if pt.scratch != "" {
			done, err := st.renameMy(ctx, cred, pt, props, changed)
			if done || err != nil {
				return err
			}
		}
		if _, err := s.mysql(ctx, cred, myLockWait+"DROP DATABASE IF EXISTS "+myIdent(pt.db.Database)); err != nil {
			return fmt.Errorf("emptying the live database for the reload failed: %w", serverError(err))
		}
		*changed = true
		if err := s.myCreate(ctx, cred, pt.db.Database, props); err != nil {
			return err
		}
		if err := s.myLoad(ctx, cred, pt.db.Database, path.Join(st.b.Location, pt.f.Name)); err != nil {
			return err
		}
		got, err := s.myShape(ctx, cred, pt.db.Database)
		if err != nil {
			return err
		}
		return checkShape(pt.f.Manifest, got)
	})
}

// renameMy swaps the loaded scratch database's tables for the live ones
// with one RENAME TABLE statement, which MariaDB and MySQL apply all or
// not at all (foreign keys follow their tables). It does nothing, returning
// false, when the live database holds views, triggers, routines or events:
// a trigger cannot move to another database, and those objects would
// outlive the restore.
func (st *staged) renameMy(ctx context.Context, cred string, pt *part, props *deploy.DBManifest, changed *bool) (bool, error) {
	s := st.s
	live, scratch := pt.db.Database, pt.scratch
	if pt.f.Manifest == nil {
		// Without a manifest nothing could tell an empty result from a
		// restored one.
		return false, nil
	}
	lines, err := s.mysql(ctx, cred, myObjectsQuery(live))
	if err != nil {
		return true, err
	}
	f := facts(lines)
	for _, k := range myKinds {
		if f[k] != "0" && f[k] != "" {
			return false, nil
		}
	}
	lines, err = s.mysql(ctx, cred, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ("+
		myLit(live)+", "+myLit(scratch)+") AND TABLE_TYPE <> 'VIEW' ORDER BY 1, 2")
	if err != nil {
		return false, err
	}
	old := scratchName("drill")
	// Renames apply left to right: every live table leaves before a loaded
	// one takes its name.
	var out, in []string
	for _, l := range lines {
		schema, table, ok := strings.Cut(l, "\t")
		switch {
		case !ok:
		case schema == live:
			out = append(out, myIdent(live)+"."+myIdent(table)+" TO "+myIdent(old)+"."+myIdent(table))
		case schema == scratch:
			in = append(in, myIdent(scratch)+"."+myIdent(table)+" TO "+myIdent(live)+"."+myIdent(table))
		}
	}
	renames := append(out, in...)
	stmt := "CREATE DATABASE " + myIdent(old) + "; CREATE DATABASE IF NOT EXISTS " + myIdent(live) + "; "
	if len(renames) > 0 {
		stmt += myLockWait + "RENAME TABLE " + strings.Join(renames, ", ")
	}
	if len(stmt) > 100<<10 {
		// One argument of a command line is at most 128 KiB on Linux, and
		// the rename must be one statement to be all or nothing.
		return false, nil
	}
	if _, err := s.mysql(ctx, cred, stmt); err != nil {
		_ = s.dropScratch(ctx, cred, pt.db, old)
		return true, fmt.Errorf("moving the loaded tables in with one RENAME TABLE failed, so none moved: %w", serverError(err))
	}
	*changed = true
	s.p.Output("database " + old + " created to hold the replaced tables")
	alter := "ALTER DATABASE " + myIdent(live)
	if props != nil && props.Charset != "" {
		alter += " CHARACTER SET " + myLit(props.Charset)
	}
	if props != nil && props.Collation != "" {
		alter += " COLLATE " + myLit(props.Collation)
	}
	if alter != "ALTER DATABASE "+myIdent(live) {
		if _, err := s.mysql(ctx, cred, alter); err != nil {
			return true, err
		}
	}
	got, err := s.myShape(ctx, cred, live)
	if err != nil {
		return true, err
	}
	if err := checkShape(pt.f.Manifest, got); err != nil {
		return true, err
	}
	s.p.Output("database " + live + " replaced by the loaded copy")
	for _, db := range []string{old, scratch} {
		if err := s.dropScratch(ctx, cred, pt.db, db); err != nil {
			s.p.Output(fmt.Sprintf("the restore is complete, but %v", err))
		}
	}
	pt.scratch = ""
	return true, nil
}

// serverError keeps the server's message of a failed client call, without
// the statement the client echoes before it.
func serverError(err error) error {
	if i := strings.Index(err.Error(), "ERROR "); i >= 0 {
		return errors.New(err.Error()[i:])
	}
	return err
}

// Discard implements deploy.StagedRestore.
func (st *staged) Discard(ctx context.Context) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.discarded {
		return
	}
	st.discarded = true
	s := st.s
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	for _, pt := range st.parts {
		if pt.staging != "" {
			_ = s.host.Run(cctx, "", []string{"rm", "-rf", "--", pt.staging}, nil)
		}
		if pt.scratch != "" {
			scratch := pt.scratch
			_ = s.withCredentials(cctx, pt.db, func(cred string) error { return s.dropScratch(cctx, cred, pt.db, scratch) })
		}
	}
	_ = s.host.Close()
}
