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
-- text search parser treats it as a separator). Only live assets have terms: the triggers
-- below add them on insert and on restore, and remove them on soft delete, on hard
-- delete (account deletion) and before rewriting them when the text or tags change.
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
    -- the asset's platform (never changed by an update), so a page filtered by platform
    -- skips other platforms' entries in the index, without reading their assets
    platform   text NOT NULL CHECK (char_length(platform) BETWEEN 1 AND 32),
    CONSTRAINT asset_terms_pkey PRIMARY KEY (owner_id, term, created_at, asset_id)
        INCLUDE (platform)
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

-- One asset inserted, edited, soft-deleted or restored (the API writes one row at a time).
-- An edit of a live asset writes only the difference: a new title leaves the several
-- hundred terms of its script alone.
CREATE OR REPLACE FUNCTION reel_asset_terms_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- the same live asset under the same key (OLD is NULL on INSERT: not an edit)
    edit boolean := TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL AND NEW.deleted_at IS NULL
        AND NEW.owner_id = OLD.owner_id AND NEW.created_at = OLD.created_at
        AND NEW.platform = OLD.platform;
BEGIN
    IF edit AND NEW.search = OLD.search AND NEW.tags = OLD.tags THEN
        RETURN NULL;  -- a PATCH of the status alone: same terms
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN
        DELETE FROM asset_terms
        WHERE owner_id = OLD.owner_id AND created_at = OLD.created_at AND asset_id = OLD.id
            AND term IN (SELECT reel_asset_terms(OLD)
                         EXCEPT SELECT reel_asset_terms(NEW) WHERE edit);
    END IF;
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO asset_terms (owner_id, term, created_at, asset_id, platform)
        SELECT NEW.owner_id, x.t, NEW.created_at, NEW.id, NEW.platform
        FROM (SELECT reel_asset_terms(NEW) EXCEPT SELECT reel_asset_terms(OLD) WHERE edit)
            AS x (t)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS assets_terms_sync ON assets;
CREATE TRIGGER assets_terms_sync
    AFTER INSERT OR UPDATE OF deleted_at, title, hook, script, caption, tags, owner_id, created_at,
        platform
    ON assets FOR EACH ROW EXECUTE FUNCTION reel_asset_terms_sync();

-- Live assets deleted for good: one statement sees them all. A few (a test, an operator)
-- are removed term by term through the primary key; many (an account deleted, every
-- asset of its owner cascading at once) by one pass over their owners' ranges, which
-- is ~5x faster than a probe per term at 100k assets.
CREATE OR REPLACE FUNCTION reel_asset_terms_forget() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM gone WHERE deleted_at IS NULL) <= 1000 THEN
        DELETE FROM asset_terms t
        USING gone AS g, LATERAL reel_asset_terms(g) AS x (term)
        WHERE g.deleted_at IS NULL AND t.owner_id = g.owner_id AND t.term = x.term
            AND t.created_at = g.created_at AND t.asset_id = g.id;
    ELSE
        DELETE FROM asset_terms t
        USING (SELECT owner_id, created_at, id FROM gone WHERE deleted_at IS NULL) AS g
        WHERE t.owner_id = g.owner_id AND t.created_at = g.created_at AND t.asset_id = g.id;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS assets_terms_forget ON assets;
CREATE TRIGGER assets_terms_forget
    AFTER DELETE ON assets REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION reel_asset_terms_forget();

-- Assets saved before this migration.
INSERT INTO asset_terms (owner_id, term, created_at, asset_id, platform)
SELECT a.owner_id, t, a.created_at, a.id, a.platform
FROM assets AS a, reel_asset_terms(a) AS t
WHERE a.deleted_at IS NULL
ON CONFLICT DO NOTHING;
