-- The door a request came through when it was not a person in chat ('api',
-- 'auto', 'mcp'; issue 18): on audit rows, and on jobs so that the rows a
-- job writes later (its outcome) carry it too. Existing rows stay '': their
-- hashes were sealed without it, and an empty via is left out of the
-- canonical form, so old chains still verify.
ALTER TABLE audit ADD COLUMN via TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN req_via TEXT NOT NULL DEFAULT '';
