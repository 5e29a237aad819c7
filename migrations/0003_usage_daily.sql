-- Operator reporting (SPEC §10): the daily rollup of the usage ledger.
--
-- A day is the UTC calendar day of usage_ledger.created_at (when the provider cost was
-- incurred). The rollup recomputes whole days (DELETE + INSERT under an advisory lock),
-- so re-running a day yields the same rows; see shared/services/reporting.py.

CREATE TABLE IF NOT EXISTS usage_daily (
    day               date NOT NULL,
    -- No foreign key: the report outlives accounts (the ledger keeps deleted users' rows
    -- under a pseudonym, and a recomputed day follows it).
    user_id           text NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 128),
    plan              text NOT NULL CHECK (plan IN ('basic', 'standard', 'pro')),
    model             text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 128),
    generations       integer NOT NULL CHECK (generations >= 1),
    failed            integer NOT NULL CHECK (failed BETWEEN 0 AND generations),
    prompt_tokens     bigint NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens bigint NOT NULL CHECK (completion_tokens >= 0),
    cost_micro_usd    bigint NOT NULL CHECK (cost_micro_usd >= 0),
    computed_at       timestamptz NOT NULL,
    CONSTRAINT usage_daily_pkey PRIMARY KEY (day, user_id, plan, model)
);
COMMENT ON TABLE usage_daily IS
    'Usage ledger summed per UTC day, user, plan and model (generations, failed, tokens, cost).';
-- Anomaly checks read one user's trailing days.
CREATE INDEX IF NOT EXISTS usage_daily_user_day_idx ON usage_daily (user_id, day);

CREATE TABLE IF NOT EXISTS usage_rollup_state (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Every day up to and including this one has been rolled up, contiguously from the
    -- ledger's first day; the cost report reads later days from the ledger itself.
    rolled_through date NOT NULL,
    updated_at     timestamptz NOT NULL
);
COMMENT ON TABLE usage_rollup_state IS
    'The rollup watermark: days <= rolled_through are complete in usage_daily.';

-- The rollup and the cost report select ledger rows by time.
CREATE INDEX IF NOT EXISTS usage_ledger_created_idx ON usage_ledger (created_at);
