-- Cancelling a generation (POST /v1/generations/{id}/cancel).
--
-- A queued generation is cancelled at once; a running one only asks: cancel_requested_at
-- is set and the worker, at its next fence point, ends the job `cancelled` without storing
-- variants (its final write is fenced on cancel_requested_at IS NULL). The sweeper and the failure callback end a job whose cancel was requested
-- `cancelled` too, never `failed`.
--
-- Usage accounting (shared/db/generations.py): a `cancelled` generation is refunded like a
-- failed one (monthly pool and full-regen cap); one cancelled before it started
-- (started_at IS NULL) gives its hourly unit back too, as it never ran.

ALTER TABLE generations DROP CONSTRAINT IF EXISTS generations_status_check;
ALTER TABLE generations ADD CONSTRAINT generations_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'));

-- When the owner asked to cancel a running job; NULL: never asked (or asked while it was
-- still queued, which cancelled it at once).
ALTER TABLE generations ADD COLUMN IF NOT EXISTS cancel_requested_at timestamptz NULL;
COMMENT ON COLUMN generations.cancel_requested_at IS
    'When the owner asked to cancel the running job; its worker ends it cancelled.';

-- The Idempotency-Keys of cancels. Their replay records live in Redis under the user; an
-- account deletion finds them here (PgUsers.footprint) to drop them (SPEC §9). Only the
-- last day's rows can still name a record; the rows go with the user.
CREATE TABLE IF NOT EXISTS cancel_keys (
    owner_id        text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cancel_keys_pkey PRIMARY KEY (owner_id, idempotency_key)
);
COMMENT ON TABLE cancel_keys IS
    'Idempotency-Keys used on POST /v1/generations/{id}/cancel, for the account deletion.';
