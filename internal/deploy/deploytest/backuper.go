package deploytest

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/shipbot/shipbot/internal/deploy"
)

// BackupDriver is a Driver that can also back up, keeping backups in memory.
type BackupDriver struct {
	*Driver

	mu       sync.Mutex
	backups  map[string]bool
	restored []string
	deleted  []string

	// BackupErr fails Backup; VerifyErr fails VerifyBackup; RestoreErr fails Restore.
	BackupErr, VerifyErr, RestoreErr error
	// FilesOnly makes backups hold no database dump.
	FilesOnly bool
	// StageErr fails StageRestore. ApplyErr, when it returns non-nil for a
	// staged backup id, fails that Apply.
	StageErr error
	ApplyErr func(id string) error

	stages []string
}

var (
	_ deploy.Backuper      = (*BackupDriver)(nil)
	_ deploy.RestoreStager = (*BackupDriver)(nil)
)

// StageRestore implements deploy.RestoreStager: it records "ID" (or
// "ID (db)", "ID [part,part]") and applies by recording a restore.
func (d *BackupDriver) StageRestore(ctx context.Context, b deploy.Backup, opts deploy.RestoreOptions, p deploy.Progress) (deploy.StagedRestore, error) {
	what := b.ID
	if opts.DBOnly {
		what += " (db)"
	}
	if opts.Parts != nil {
		what += " [" + strings.Join(opts.Parts, ",") + "]"
	}
	d.mu.Lock()
	d.stages = append(d.stages, what)
	d.mu.Unlock()
	if d.StageErr != nil {
		return nil, d.StageErr
	}
	if !d.Has(b.ID) {
		return nil, errors.New("backup " + b.ID + " is not on the target")
	}
	return &fakeStaged{d: d, id: b.ID, what: what}, nil
}

type fakeStaged struct {
	d        *BackupDriver
	id, what string
}

func (s *fakeStaged) Apply(ctx context.Context, p deploy.Progress) (deploy.Result, error) {
	if s.d.ApplyErr != nil {
		if err := s.d.ApplyErr(s.id); err != nil {
			return deploy.Result{}, err
		}
	}
	cur := s.d.Driver.Current()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.d.restored = append(s.d.restored, s.what)
	return deploy.Result{Release: cur}, nil
}

func (s *fakeStaged) Discard(context.Context) {}

// Stages lists the StageRestore calls, as Restored does.
func (d *BackupDriver) Stages() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.stages...)
}

// NewBackupDriver returns a BackupDriver with no releases and no backups.
func NewBackupDriver() *BackupDriver {
	return &BackupDriver{Driver: NewDriver(), backups: map[string]bool{}}
}

func (d *BackupDriver) Backup(ctx context.Context, req deploy.BackupRequest, p deploy.Progress) (deploy.BackupResult, error) {
	p.Step("archive", deploy.StepRunning, "")
	if d.BackupErr != nil {
		p.Step("archive", deploy.StepFailed, d.BackupErr.Error())
		return deploy.BackupResult{}, d.BackupErr
	}
	d.mu.Lock()
	d.backups[req.ID] = true
	d.mu.Unlock()
	p.Step("archive", deploy.StepDone, "")
	files := []deploy.BackupFile{{Name: "files.tar.gz", Kind: "files", Size: 1024, SHA256: "00"}}
	if !d.FilesOnly {
		files = append(files, deploy.BackupFile{Name: "db-main.sql.gz", Kind: "mysql", Source: "main", Size: 2048, SHA256: "11"})
	}
	return deploy.BackupResult{Location: "/backups/" + req.ID, Files: files}, nil
}

func (d *BackupDriver) VerifyBackup(ctx context.Context, b deploy.Backup, p deploy.Progress) (deploy.VerifyResult, error) {
	if d.VerifyErr != nil {
		return deploy.VerifyResult{}, d.VerifyErr
	}
	if !d.Has(b.ID) {
		return deploy.VerifyResult{}, errors.New("backup " + b.ID + " is not on the target")
	}
	return deploy.VerifyResult{Lines: []string{"files.tar.gz: checksum ok"}, Message: "1 file ok"}, nil
}

func (d *BackupDriver) Restore(ctx context.Context, b deploy.Backup, dbOnly bool, p deploy.Progress) (deploy.Result, error) {
	if d.RestoreErr != nil {
		return deploy.Result{}, d.RestoreErr
	}
	cur := d.Driver.Current()
	d.mu.Lock()
	defer d.mu.Unlock()
	what := b.ID
	if dbOnly {
		what += " (db)"
	}
	d.restored = append(d.restored, what)
	return deploy.Result{Release: cur}, nil
}

func (d *BackupDriver) DeleteBackups(ctx context.Context, ids []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		delete(d.backups, id)
		d.deleted = append(d.deleted, id)
	}
	return nil
}

// Has reports whether backup id is on the fake target.
func (d *BackupDriver) Has(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.backups[id]
}

// Restored lists the restores done, "ID" or "ID (db)".
func (d *BackupDriver) Restored() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.restored...)
}

// Deleted lists the backups DeleteBackups removed, in order.
func (d *BackupDriver) Deleted() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.deleted...)
}
