-- cancel_keys rows are forgotten by the scheduled sweep once last used more than the
-- retention (30 days) ago: their Redis replay records expired after a day. The sweep
-- takes the oldest first, a bounded batch at a time; this index keeps that a short read.
-- A key used again moves its created_at to the new use (ON CONFLICT ... DO UPDATE).
CREATE INDEX IF NOT EXISTS cancel_keys_created_at_idx ON cancel_keys (created_at);

COMMENT ON COLUMN cancel_keys.created_at IS
    'The key''s last use; the sweep forgets keys last used more than 30 days ago.';
