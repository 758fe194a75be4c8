-- A job's target gets a column per kind (issue 21): release stays a deploy's
-- new release; a rollback's target release and the backup a backup, drill or
-- restore job acts on had shared it. Existing rows move by action.
ALTER TABLE jobs ADD COLUMN rollback_to TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN backup TEXT NOT NULL DEFAULT '';
UPDATE jobs SET rollback_to = release, release = '' WHERE action = 'rollback';
UPDATE jobs SET backup = release, release = '' WHERE action IN ('backup', 'verify', 'restore');
