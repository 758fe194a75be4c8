package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Backuper is implemented by a Driver that can back up its env: archives of
// configured paths and dumps of configured databases. The engine owns the
// records (who, when, checksums) and retention; the driver owns the files.
// What else a driver can do with its backups are capabilities of their own
// (BackupVerifier, Restorer, BackupPruner), checked by type: a driver whose
// backups live where shipbot cannot read them (Dokploy's own destination)
// is a Backuper and nothing more.
type Backuper interface {
	// Backup writes backup req.ID and returns where it is and what it holds,
	// with sizes and SHA-256 checksums. On error it removes what it wrote.
	Backup(ctx context.Context, req BackupRequest, p Progress) (BackupResult, error)
}

// BackupVerifier runs restore drills.
type BackupVerifier interface {
	// VerifyBackup recomputes the checksums of b's files, failing on any
	// difference, then restores each dump into a scratch database that it
	// creates and drops, reporting table and row counts.
	VerifyBackup(ctx context.Context, b Backup, p Progress) (VerifyResult, error)
}

// Restorer puts backups back.
type Restorer interface {
	// Restore puts b's files and databases back (only the databases when
	// dbOnly), then restarts and health-checks the app like a deploy.
	Restore(ctx context.Context, b Backup, dbOnly bool, p Progress) (Result, error)
}

// BackupPruner deletes the backups the engine's retention drops. A
// Backuper without it keeps its own retention (Dokploy's keepLatestCount);
// the records are marked pruned all the same.
type BackupPruner interface {
	// DeleteBackups removes exactly the named backups from the target.
	DeleteBackups(ctx context.Context, ids []string) error
}

// BackupsElsewhere is implemented by a Backuper whose backups shipbot
// cannot read (so it neither verifies nor restores them): the text says
// where they are and how to check or restore them, for the refusal.
type BackupsElsewhere interface {
	BackupsKeptBy() string
}

// RestoreStager is implemented by a Restorer that can prepare a restore
// completely before changing anything live: the engine then verifies every
// part, takes the safety backup, and only then applies. A Restorer without
// it restores in one step through Restore.
type RestoreStager interface {
	// StageRestore checks the checksums of b's selected parts, unpacks the
	// files beside the live paths and loads every dump into a scratch
	// database, checked against the dump's manifest. Nothing live changes;
	// on error nothing is left behind.
	StageRestore(ctx context.Context, b Backup, opts RestoreOptions, p Progress) (StagedRestore, error)
}

// RestoreOptions select what a restore puts back.
type RestoreOptions struct {
	DBOnly bool     // only the database dumps
	Parts  []string // only these files of the backup (by name); nil = all
}

// Wants reports whether the options select file f.
func (o RestoreOptions) Wants(f BackupFile) bool {
	if o.DBOnly && f.Kind == "files" {
		return false
	}
	if o.Parts == nil {
		return true
	}
	for _, p := range o.Parts {
		if p == f.Name {
			return true
		}
	}
	return false
}

// StagedRestore is a restore whose parts are all verified and loaded
// aside, waiting to replace the live ones.
type StagedRestore interface {
	// Apply replaces the live parts with the staged ones, one by one, then
	// restarts the app. A failure while a part is applied is an
	// *ApplyError naming the parts already changed.
	Apply(ctx context.Context, p Progress) (Result, error)
	// Discard removes whatever was staged and not applied. It is safe to
	// call after Apply and more than once.
	Discard(ctx context.Context)
}

// ApplyError is a staged restore that failed while changing live parts.
type ApplyError struct {
	Part    string   // the part that failed
	Touched []string // file names of the parts changed live, the failed one included if it was touched
	Err     error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("applying %s: %v", e.Part, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// RestartError is a staged restore whose parts were all applied, but whose
// app restart or health check afterwards failed.
type RestartError struct{ Err error }

func (e *RestartError) Error() string {
	return "every part was restored, but the app did not come back: " + e.Err.Error()
}

func (e *RestartError) Unwrap() error { return e.Err }

// BackupRequest asks for backup ID.
type BackupRequest struct {
	JobID    int64
	App, Env string
	ID       string
	By       string
}

// BackupResult is what a backup wrote.
type BackupResult struct {
	Location string // directory on the target
	Files    []BackupFile
}

// VerifyResult is a passed drill: one line per checked file and table.
type VerifyResult struct {
	Lines   []string
	Message string
}

// BackupFile is one file of a backup.
type BackupFile struct {
	Name   string `json:"name"`   // file name inside the backup's directory
	Kind   string `json:"kind"`   // "files", "mysql", "postgres", "dokploy"
	Source string `json:"source"` // the path list or database it holds
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Manifest describes a database dump as it was taken; a restore or a
	// drill checks the loaded copy against it. Nil for files and for
	// dumps taken before manifests were recorded.
	Manifest *DBManifest `json:"manifest,omitempty"`
}

// DBManifest is what a database held when it was dumped.
type DBManifest struct {
	// Rows is every table's row count as the dump holds it; a table
	// without rows is listed with 0.
	Rows map[string]int64 `json:"rows"`
	// Objects counts the non-table objects by kind ("views", "triggers",
	// "routines", "events"; PostgreSQL also "sequences", "indexes", ...).
	Objects map[string]int `json:"objects"`
	// Database-level properties a restore recreates: MySQL/MariaDB
	// charset and collation; PostgreSQL owner, encoding, locale and ACL.
	Charset   string `json:"charset,omitempty"`
	Collation string `json:"collation,omitempty"`
	Owner     string `json:"owner,omitempty"`
	Encoding  string `json:"encoding,omitempty"`
	Ctype     string `json:"ctype,omitempty"`
	ACL       string `json:"acl,omitempty"`
}

// BackupState is whether a backup can be restored.
type BackupState string

// Backup is the engine's record of one backup.
type Backup struct {
	App, Env string
	ID       string
	JobID    int64
	By       string
	Reason   string // manual, scheduled, pre-deploy, safety
	Created  time.Time
	State    BackupState
	Location string
	Files    []BackupFile
	Error    string
	Verified time.Time // last drill, passed or failed
	Drill    string    // its summary; a failed drill's starts with DrillFailedPrefix
}

// DrillFailedPrefix starts the Drill summary of a backup whose last drill
// failed (kept in the summary so the record needs no new column).
const DrillFailedPrefix = "FAILED: "

// DrillFailed reports whether b's last drill failed.
func (b Backup) DrillFailed() bool { return strings.HasPrefix(b.Drill, DrillFailedPrefix) }

// Size is the total size of b's files.
func (b Backup) Size() int64 {
	var n int64
	for _, f := range b.Files {
		n += f.Size
	}
	return n
}

// BackupPolicy is an env's backup configuration as the engine needs it.
type BackupPolicy struct {
	MaxAge       time.Duration // older backups are pruned; 0 keeps all
	Keep         int           // at most this many are kept; 0 = no count limit
	BeforeDeploy bool          // a deploy takes a backup first and stops if it fails
}

// BackupStore keeps backup records. The sqlite store implements it.
type BackupStore interface {
	PutBackup(ctx context.Context, b Backup) error
	Backups(ctx context.Context, app, env string) ([]Backup, error) // newest first
	Backup(ctx context.Context, app, env, id string) (*Backup, error)
}

// BackupStat sums up an env's backup records, for monitoring: the time of
// the newest good backup, and how many backups are in each state.
type BackupStat struct {
	App, Env string
	LastOK   time.Time // zero when there is none
	States   map[BackupState]int
}
