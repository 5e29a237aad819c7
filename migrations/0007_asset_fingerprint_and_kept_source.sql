-- 0007_asset_fingerprint_and_kept_source: a saved asset's Idempotency-Key remembers its
-- request, and an asset's `source` stays as it was when its draft is purged (SPEC §9).
--
-- request_fingerprint: the Redis record of a key can be lost (eviction, data loss); the
-- Postgres half must then tell the first request from another one sent with the same key
-- (422 IDEMPOTENCY_KEY_REUSED, as /v1/create answers), not replay the first asset. Rows
-- saved before this migration have none and are never replayed from Postgres.
ALTER TABLE assets ADD COLUMN IF NOT EXISTS request_fingerprint text NULL
    CHECK (char_length(request_fingerprint) BETWEEN 1 AND 128);

-- The source ids were foreign keys ON DELETE SET NULL: purging a deleted draft rewrote
-- every asset saved from it (source -> null) without a new version or ETag. They are
-- plain copied ids now, like the content: the asset keeps them, and GET /v1/drafts/{id}
-- of a purged draft answers 404 as for any deleted draft.
ALTER TABLE assets DROP CONSTRAINT IF EXISTS assets_source_draft_id_fkey;
ALTER TABLE assets DROP CONSTRAINT IF EXISTS assets_source_variant_id_fkey;
