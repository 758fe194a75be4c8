-- Keys of inbound events already handled (Telegram update_id, Slack
-- event_id, webhook delivery ids), so a redelivery never runs twice.
CREATE TABLE seen (
    key  TEXT PRIMARY KEY,
    time TEXT NOT NULL
) WITHOUT ROWID;
