-- The HTTP API and auto-deploy (issue 18).
-- api_keys: an Idempotency-Key names the first job a token's request made,
-- so CI's retry gets that job back, across restarts. job_id 0: the first
-- request is still being answered.
CREATE TABLE api_keys (
    token   TEXT NOT NULL,
    key     TEXT NOT NULL,
    job_id  INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    PRIMARY KEY (token, key)
);
-- auto_deploys: one row per (rule, green pipeline); the primary key is what
-- keeps a redelivered webhook from deploying twice.
CREATE TABLE auto_deploys (
    id       INTEGER PRIMARY KEY,
    rule     TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    source   TEXT NOT NULL,
    run_id   TEXT NOT NULL,
    run_order INTEGER NOT NULL,
    sha      TEXT NOT NULL,
    state    TEXT NOT NULL,
    job_id   INTEGER NOT NULL DEFAULT 0,
    note     TEXT NOT NULL DEFAULT '',
    created  TEXT NOT NULL,
    UNIQUE (rule, pipeline)
);
CREATE INDEX auto_deploys_open ON auto_deploys (state);
