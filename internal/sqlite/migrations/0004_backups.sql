-- Backups: the engine's record of each backup (the files live on the
-- target). Checksums here are what /backup verify compares against, so a
-- corrupted or swapped file on the target is caught.
CREATE TABLE backups (
    app      TEXT NOT NULL,
    env      TEXT NOT NULL,
    id       TEXT NOT NULL,
    job_id   INTEGER NOT NULL,
    by_user  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    created  TEXT NOT NULL,
    state    TEXT NOT NULL,
    location TEXT NOT NULL,
    files    TEXT NOT NULL, -- JSON array of deploy.BackupFile
    error    TEXT NOT NULL,
    verified TEXT NOT NULL,
    drill    TEXT NOT NULL,
    PRIMARY KEY (app, env, id)
) WITHOUT ROWID;

-- A deploy's pre-deploy backup, a restore's safety backup, a --with-db
-- rollback's backup; and on releases, the backup taken before each.
ALTER TABLE jobs ADD COLUMN backup_id TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN backup_id TEXT NOT NULL DEFAULT '';
