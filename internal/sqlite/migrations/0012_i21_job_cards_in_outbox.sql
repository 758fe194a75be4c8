-- Job cards go through the outbox (issue 21): topic 'job:<id>' is now the
-- card in the requester's chat, so the routed notices that used that topic
-- move to 'notice:job:<id>'. A card posted before this version keeps being
-- edited: its message, kept until now in jobs.card_ref as "CHANNEL ID",
-- becomes the ref of the card's outbox row (version 0: nothing to send
-- until the job changes). Only jobs whose card can still change need one.
UPDATE outbox SET topic = 'notice:' || topic WHERE topic LIKE 'job:%';

INSERT INTO outbox (topic, channel, message, version, delivered, ref, next_attempt, queued)
SELECT 'job:' || id, req_chat, '{}', 0, 0,
       json_object('chat', substr(card_ref, 1, instr(card_ref, ' ') - 1), 'id', substr(card_ref, instr(card_ref, ' ') + 1)),
       0, 0
FROM jobs
WHERE card_ref LIKE '% %' AND req_chat <> ''
  AND state IN ('awaiting_approval', 'queued', 'running', 'interrupted');

ALTER TABLE jobs DROP COLUMN card_ref;

-- A closed card's last edit: when its message is gone there is nothing to
-- close, and nothing is posted in its place.
ALTER TABLE outbox ADD COLUMN edit_only INTEGER NOT NULL DEFAULT 0;

-- The engine creates a job, then stores the fields that need its id (the
-- release it makes); the job's card and notices are written with that
-- second write, so the chat first sees the job complete. 0 until then.
ALTER TABLE jobs ADD COLUMN reported INTEGER NOT NULL DEFAULT 1;
