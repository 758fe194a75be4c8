-- The newest state of each CI/CD pipeline (or deploy) shipbot reports on:
-- a late or redelivered event is compared with it and cannot undo a final
-- state; deploy notices find the pipeline message of their sha here.
CREATE TABLE pipelines (
    topic   TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    sha     TEXT NOT NULL,
    status  TEXT NOT NULL,
    event   TEXT NOT NULL, -- the normalised event, JSON
    updated TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX pipelines_sha ON pipelines (project, sha);

-- The transactional outbox: one row per (topic, chat) holding the newest
-- version of that message. Rows are written in the transaction of what they
-- report; the relay sends version after version, editing ref once it exists.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    topic        TEXT NOT NULL,
    channel      TEXT NOT NULL,
    message      TEXT NOT NULL,           -- notify.Message, JSON
    version      INTEGER NOT NULL,
    delivered    INTEGER NOT NULL DEFAULT 0, -- the version last delivered
    ref          TEXT NOT NULL DEFAULT '', -- notify.Ref, JSON, once sent
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,           -- unix ms
    dead         INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    queued       INTEGER NOT NULL,           -- unix ms the version was written
    UNIQUE (topic, channel)
);
CREATE INDEX outbox_due ON outbox (next_attempt) WHERE delivered < version AND dead = 0;
