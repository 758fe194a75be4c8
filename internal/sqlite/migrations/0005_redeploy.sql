-- /deploy --redeploy: rebuild the same source without fetching new code
-- (Dokploy's *.redeploy). Stored so an approved or resumed job keeps it.
ALTER TABLE jobs ADD COLUMN redeploy INTEGER NOT NULL DEFAULT 0;
