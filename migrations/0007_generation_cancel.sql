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
