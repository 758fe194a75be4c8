-- Manual locks may expire (issue 17): when, where the lock was taken (its
-- reminder and expiry notice go there), and whether the holder was reminded.
-- Existing locks keep no expiry.
ALTER TABLE locks ADD COLUMN expires TEXT NOT NULL DEFAULT '';
ALTER TABLE locks ADD COLUMN chat TEXT NOT NULL DEFAULT '';
ALTER TABLE locks ADD COLUMN reminded INTEGER NOT NULL DEFAULT 0;
