-- shipbot schema 1. Times are UTC RFC 3339 text with exactly nine fractional
-- digits, so text order is time order; '' means unset.

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    time       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    identity   TEXT    NOT NULL,
    chat       TEXT    NOT NULL,
    command    TEXT    NOT NULL,
    args       TEXT    NOT NULL, -- JSON array of strings
    app        TEXT    NOT NULL,
    env        TEXT    NOT NULL,
    decision   TEXT    NOT NULL,
    job_id     INTEGER NOT NULL,
    intent_seq INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
-- At most one outcome closes an intent. Outcomes that name no intent
-- (intent_seq 0, e.g. a job recovered before its intent seq was stored) are
-- left out so that several of them never block recovery.
CREATE UNIQUE INDEX audit_one_outcome ON audit (intent_seq) WHERE kind = 'outcome' AND intent_seq > 0;
CREATE INDEX audit_app_env ON audit (app, env, seq);
CREATE INDEX audit_actor ON audit (actor, seq);

-- The head of the chain, rewritten in the transaction of every append: a
-- removed last row (or a removed everything) no longer matches it.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

-- shipbot never changes or removes an audit row. Anyone holding the file can
-- drop these triggers; the hash chain is what catches that.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    app          TEXT    NOT NULL,
    env          TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    ref          TEXT    NOT NULL,
    release      TEXT    NOT NULL,
    from_release TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    req_user     TEXT    NOT NULL,
    req_identity TEXT    NOT NULL,
    req_chat     TEXT    NOT NULL,
    approval_id  TEXT    NOT NULL,
    approved_by  TEXT    NOT NULL,
    card_ref     TEXT    NOT NULL,
    intent_seq   INTEGER NOT NULL,
    steps        TEXT    NOT NULL, -- JSON array of deploy.Step
    output       TEXT    NOT NULL, -- JSON array of lines
    created      TEXT    NOT NULL,
    started      TEXT    NOT NULL,
    ended        TEXT    NOT NULL
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_app_env ON jobs (app, env);

CREATE TABLE approvals (
    id           TEXT    PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs (id),
    app          TEXT    NOT NULL,
    env          TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    requested_by TEXT    NOT NULL,
    roles        TEXT    NOT NULL, -- JSON array of role names
    state        TEXT    NOT NULL,
    decided_by   TEXT    NOT NULL,
    created      TEXT    NOT NULL,
    expires      TEXT    NOT NULL,
    decided      TEXT    NOT NULL
);
CREATE INDEX approvals_state ON approvals (state);

CREATE TABLE locks (
    app    TEXT    NOT NULL,
    env    TEXT    NOT NULL,
    owner  TEXT    NOT NULL,
    reason TEXT    NOT NULL,
    job_id INTEGER NOT NULL, -- 0: a manual lock
    since  TEXT    NOT NULL,
    PRIMARY KEY (app, env)
);

CREATE TABLE releases (
    app     TEXT    NOT NULL,
    env     TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    ref     TEXT    NOT NULL,
    job_id  INTEGER NOT NULL,
    by_user TEXT    NOT NULL,
    created TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    PRIMARY KEY (app, env, id)
);
