-- 0002_lifecycle: soft delete, asset ETags, draft search, and a ledger that outlives
-- the rows it accounts for (SPEC §9).
--
-- Live reads keep their speed at 100k+ rows: every index a live read walks becomes a
-- partial index `WHERE deleted_at IS NULL` (queries repeat that predicate literally so
-- the planner can use them), so deleted rows cost neither index size nor scan time.
-- Deleted rows get their own small partial indexes (the `?deleted=true` listing and the
-- 30-day purge). Runs in one transaction (shared.db.migrate): no CONCURRENTLY.

-- ---------------------------------------------------------------------------------------
-- Drafts: soft delete (its generations and variants disappear with it: reads join the
-- draft, so one column is the single source of truth) and search over title + brief.
ALTER TABLE drafts ADD COLUMN IF NOT EXISTS deleted_at timestamptz NULL;
ALTER TABLE drafts ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, coalesce(title, '') || ' ' || brief)
) STORED;
COMMENT ON COLUMN drafts.deleted_at IS
    'Soft delete (DELETE /v1/drafts/{id}); purged by the sweep 30 days later.';

-- GET /v1/drafts: newest first, keyset on (created_at, id), optionally by platform.
CREATE INDEX IF NOT EXISTS drafts_live_owner_created_idx
    ON drafts (owner_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS drafts_live_owner_platform_created_idx
    ON drafts (owner_id, platform, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS drafts_live_search_gin_idx
    ON drafts USING gin (search) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS drafts_deleted_at_idx
    ON drafts (deleted_at) WHERE deleted_at IS NOT NULL;
-- drafts_owner_created_idx (all rows) stays: the export and account deletion read every
-- draft of an owner, deleted or not.

-- ---------------------------------------------------------------------------------------
-- Assets: soft delete + restore, and a version for ETag / If-Match.
ALTER TABLE assets ADD COLUMN IF NOT EXISTS deleted_at timestamptz NULL;
ALTER TABLE assets ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 1;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conname = 'assets_version_check' AND conrelid = 'assets'::regclass
    ) THEN
        ALTER TABLE assets ADD CONSTRAINT assets_version_check CHECK (version >= 1);
    END IF;
END
$$;
COMMENT ON COLUMN assets.deleted_at IS
    'Soft delete; restorable for 30 days, then purged by the sweep.';
COMMENT ON COLUMN assets.version IS
    'Bumped on every update and restore; the ETag of /v1/library/assets/{id}.';

-- The listing indexes of 0000, now live-only (same shapes, same order).
DROP INDEX IF EXISTS assets_owner_created_idx;
DROP INDEX IF EXISTS assets_owner_platform_created_idx;
DROP INDEX IF EXISTS assets_owner_status_created_idx;
DROP INDEX IF EXISTS assets_tags_gin_idx;
DROP INDEX IF EXISTS assets_search_gin_idx;
CREATE INDEX IF NOT EXISTS assets_live_owner_created_idx
    ON assets (owner_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS assets_live_owner_platform_created_idx
    ON assets (owner_id, platform, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS assets_live_owner_status_created_idx
    ON assets (owner_id, status, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS assets_live_tags_gin_idx
    ON assets USING gin (tags) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS assets_live_search_gin_idx
    ON assets USING gin (search) WHERE deleted_at IS NULL;
-- `?deleted=true` (same keyset order) and the purge.
CREATE INDEX IF NOT EXISTS assets_deleted_owner_created_idx
    ON assets (owner_id, created_at DESC, id DESC) WHERE deleted_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS assets_deleted_at_idx
    ON assets (deleted_at) WHERE deleted_at IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- The usage ledger is accounting: its rows stay when a draft is purged (generations
-- cascade away) and when an account is deleted (owner_id is then replaced by a
-- non-reversible pseudonym that matches no user). So it references nothing.
ALTER TABLE usage_ledger DROP CONSTRAINT IF EXISTS usage_ledger_generation_id_fkey;
ALTER TABLE usage_ledger DROP CONSTRAINT IF EXISTS usage_ledger_owner_id_fkey;
-- Bounded by the users key it no longer references (a user id, or 'deleted:' + 32 hex).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conname = 'usage_ledger_owner_id_check' AND conrelid = 'usage_ledger'::regclass
    ) THEN
        ALTER TABLE usage_ledger ADD CONSTRAINT usage_ledger_owner_id_check
            CHECK (char_length(owner_id) BETWEEN 1 AND 128);
    END IF;
END
$$;
COMMENT ON TABLE usage_ledger IS
    'Tokens and provider cost per finished generation (exactly one row each). No foreign '
    'keys: rows outlive purged drafts, and a deleted account''s rows are pseudonymised.';
