-- Process groups the local driver started for a job's steps, kept while
-- they run, so that a start after a crash can stop what the dead process
-- left running (issue 16). token is the random SHIPBOT_STEP value in the
-- group's environment that tells it from a group that reused the id.
CREATE TABLE step_processes (
    token   TEXT    PRIMARY KEY,
    job_id  INTEGER NOT NULL,
    pgid    INTEGER NOT NULL,
    started TEXT    NOT NULL
);

-- An interrupted deploy or rollback: whether current still pointed at its
-- from_release at restart ('', 'never', 'switched'), and who released its
-- lock. takes_over: the interrupted job whose lock a rollback started from
-- its card takes over when queued.
ALTER TABLE jobs ADD COLUMN switch_state TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lock_released_by TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN takes_over INTEGER NOT NULL DEFAULT 0;

-- Buttons shipbot posted: the chat carries only the random id; what the
-- button does (data) is bound to the chat and message it went out on, so
-- button data replayed on another card or chat is refused.
CREATE TABLE buttons (
    id      TEXT PRIMARY KEY,
    data    TEXT NOT NULL,
    chat    TEXT NOT NULL,
    message TEXT NOT NULL, -- '' until the message is posted
    created TEXT NOT NULL
);
CREATE INDEX buttons_message ON buttons (chat, message, data);
-- JSON array of the roles an approver needs, shown on the approval card.
ALTER TABLE jobs ADD COLUMN approver_roles TEXT NOT NULL DEFAULT '';
