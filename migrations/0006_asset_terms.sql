-- 0006_asset_terms: the library's words and tags, each listed newest first.
--
-- GET /v1/library/assets pages newest first. A tag or a search word that few assets carry
-- (1 in 1000) has no newest-first order in a GIN index: the page either walks thousands
-- of rows of the newest-first index testing each, or reads every match through GIN and
-- sorts them. This table gives each (owner, term) its matches in page order, so such a
-- page reads ~limit index entries and ~limit rows, like the unfiltered page.
--
-- A term is a word of the asset's `search` tsvector (its lexeme: the same words the `q`
-- filter matches, by prefix) or a tag, written `#tag` (no lexeme starts with `#`: the
-- text search parser treats it as a separator). Only live assets have terms: the trigger
-- below adds them on insert and on restore, and removes them on soft delete, on hard
-- delete (purge, account deletion) and before rewriting them when the text or tags change.
-- `created_at` is copied from the asset, which never changes it.
--
-- The primary key is the only index: (owner_id, term, created_at, asset_id) read backwards
-- is one term's matches newest first, and its (owner_id, term) prefix lets a word prefix
-- enumerate the words it covers. COLLATE "C" makes the prefix range a byte range.

CREATE TABLE IF NOT EXISTS asset_terms (
    owner_id   text NOT NULL CHECK (char_length(owner_id) BETWEEN 1 AND 128),
    -- a lexeme is at most 2047 bytes (to_tsvector drops longer words); a tag is 40 chars
    term       text COLLATE "C" NOT NULL CHECK (octet_length(term) BETWEEN 1 AND 2048),
    created_at timestamptz NOT NULL,
    asset_id   uuid NOT NULL,
    CONSTRAINT asset_terms_pkey PRIMARY KEY (owner_id, term, created_at, asset_id)
);
COMMENT ON TABLE asset_terms IS
    'Search index of live assets: one row per (word or #tag, asset); kept by a trigger.';

CREATE OR REPLACE FUNCTION reel_asset_terms(a assets) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT DISTINCT t FROM (
        SELECT unnest(tsvector_to_array(a.search))
        UNION ALL
        SELECT '#' || unnest(a.tags)
    ) AS x (t)
$$;

CREATE OR REPLACE FUNCTION reel_asset_terms_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL THEN
        IF TG_OP = 'UPDATE' AND NEW.deleted_at IS NULL
            AND NEW.search = OLD.search AND NEW.tags = OLD.tags THEN
            RETURN NULL;  -- a PATCH of status or hashtags, a version bump: same terms
        END IF;
        DELETE FROM asset_terms
        WHERE owner_id = OLD.owner_id AND created_at = OLD.created_at AND asset_id = OLD.id
            AND term IN (SELECT reel_asset_terms(OLD));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
        INSERT INTO asset_terms (owner_id, term, created_at, asset_id)
        SELECT NEW.owner_id, t, NEW.created_at, NEW.id FROM reel_asset_terms(NEW) AS t
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS assets_terms_sync ON assets;
CREATE TRIGGER assets_terms_sync
    AFTER INSERT OR DELETE
        OR UPDATE OF deleted_at, title, hook, script, caption, tags, owner_id, created_at
    ON assets FOR EACH ROW EXECUTE FUNCTION reel_asset_terms_sync();

-- Assets saved before this migration.
INSERT INTO asset_terms (owner_id, term, created_at, asset_id)
SELECT a.owner_id, t, a.created_at, a.id
FROM assets AS a, reel_asset_terms(a) AS t
WHERE a.deleted_at IS NULL
ON CONFLICT DO NOTHING;
