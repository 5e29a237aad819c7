-- Credits: one-off generations outside the monthly pool, bought (a pack) or granted by
-- support (a grant). A credit's units never reset; they expire at expires_at. What is
-- left is derived, never stored: units - removed_units - the credit's charged generations
-- (generations.credit_id, not failed), so a refunded generation gives its unit back to
-- the credit that paid for it, exactly as a refunded pool unit goes back to the month.

CREATE TABLE IF NOT EXISTS credits (
    id                       uuid PRIMARY KEY,
    -- No foreign key (as usage_ledger): the record outlives a deleted account, forfeited.
    owner_id                 text NOT NULL CHECK (char_length(owner_id) BETWEEN 1 AND 128),
    source                   text NOT NULL CHECK (source IN ('pack', 'grant')),
    pack                     text NULL CHECK (char_length(pack) BETWEEN 1 AND 32),
    units                    integer NOT NULL CHECK (units > 0),
    -- Taken away unused: a Stripe refund, a reversed grant, a deleted account.
    removed_units            integer NOT NULL DEFAULT 0
        CHECK (removed_units >= 0 AND removed_units <= units),
    expires_at               timestamptz NOT NULL,
    -- A pack's Stripe payment: one credit per Checkout Session, however often Stripe
    -- delivers its events.
    stripe_checkout_session  text NULL CHECK (char_length(stripe_checkout_session) BETWEEN 1 AND 255),
    stripe_payment_intent    text NULL CHECK (char_length(stripe_payment_intent) BETWEEN 1 AND 255),
    created_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credits_pack_has_name CHECK ((source = 'pack') = (pack IS NOT NULL)),
    CONSTRAINT credits_stripe_checkout_session_key UNIQUE (stripe_checkout_session),
    CONSTRAINT credits_stripe_payment_intent_key UNIQUE (stripe_payment_intent)
);
COMMENT ON TABLE credits IS
    'Generation packs and support grants: one-off units used after the monthly pool, oldest-expiring first.';
CREATE INDEX IF NOT EXISTS credits_owner_expires_idx ON credits (owner_id, expires_at);

-- Every change to a credit: who did it, when and why (the grants' audit trail too).
CREATE TABLE IF NOT EXISTS credit_events (
    id         bigserial PRIMARY KEY,
    credit_id  uuid NOT NULL REFERENCES credits (id) ON DELETE CASCADE,
    action     text NOT NULL
        CHECK (action IN ('purchased', 'granted', 'refunded', 'reversed', 'forfeited')),
    units      integer NOT NULL,
    actor      text NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 255),
    reason     text NULL CHECK (char_length(reason) <= 500),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE credit_events IS
    'Audit of credits: purchases, grants (admin and reason), refunds, reversals, forfeits.';
CREATE INDEX IF NOT EXISTS credit_events_credit_idx ON credit_events (credit_id, created_at);

-- A Stripe refund that arrived before the payment's credit (out of order): applied when
-- the credit is granted. amount_refunded is Stripe's cumulative figure.
CREATE TABLE IF NOT EXISTS stripe_pack_refunds (
    stripe_payment_intent text PRIMARY KEY
        CHECK (char_length(stripe_payment_intent) BETWEEN 1 AND 255),
    amount_refunded       bigint NOT NULL CHECK (amount_refunded >= 0),
    amount                bigint NOT NULL CHECK (amount > 0),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stripe_pack_refunds IS
    'Latest refunded amount per pack payment, kept even before its credit exists.';

-- Which source paid a generation: NULL = the monthly pool, else the credit.
ALTER TABLE generations ADD COLUMN IF NOT EXISTS credit_id uuid NULL;
CREATE INDEX IF NOT EXISTS generations_credit_idx ON generations (credit_id)
    WHERE credit_id IS NOT NULL;

-- The ledger records which source paid each generation: 'pool', 'pack' or 'grant', and
-- the credit. Filled from the generation when the row is inserted, whoever inserts it.
ALTER TABLE usage_ledger ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'pool'
    CHECK (source IN ('pool', 'pack', 'grant'));
ALTER TABLE usage_ledger ADD COLUMN IF NOT EXISTS credit_id uuid NULL;

CREATE OR REPLACE FUNCTION reel_ledger_source() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.credit_id IS NULL THEN
        SELECT g.credit_id INTO NEW.credit_id FROM generations g WHERE g.id = NEW.generation_id;
    END IF;
    IF NEW.credit_id IS NOT NULL THEN
        SELECT c.source INTO NEW.source FROM credits c WHERE c.id = NEW.credit_id;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS usage_ledger_source ON usage_ledger;
CREATE TRIGGER usage_ledger_source BEFORE INSERT ON usage_ledger
    FOR EACH ROW EXECUTE FUNCTION reel_ledger_source();

-- The cost report can group by the source that paid: the daily rollup keeps it apart.
ALTER TABLE usage_daily ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'pool'
    CHECK (source IN ('pool', 'pack', 'grant'));
ALTER TABLE usage_daily DROP CONSTRAINT IF EXISTS usage_daily_pkey;
ALTER TABLE usage_daily ADD CONSTRAINT usage_daily_pkey
    PRIMARY KEY (day, user_id, plan, model, source);

-- Usage notices: the monthly pool reaching 80% / 100%, the credits falling to the low
-- mark. Decided by the admission that crossed the threshold and written here by the same
-- statement that inserts its generation (the outbox); at most one per threshold and
-- period (a month, or for credits_low the credit that paid the crossing unit).
CREATE TABLE IF NOT EXISTS notices (
    id            uuid PRIMARY KEY,
    owner_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind ~ '^(pool_[0-9]{1,3}|credits_low)$'),
    period        text NOT NULL CHECK (char_length(period) BETWEEN 1 AND 64),
    generation_id uuid NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    read_at       timestamptz NULL,
    -- The operator webhook: handed to QStash (which retries) once, then this is set.
    published_at  timestamptz NULL,
    CONSTRAINT notices_once_per_period UNIQUE (owner_id, kind, period)
);
COMMENT ON TABLE notices IS
    'Usage notices (outbox): one per threshold and period, read/unread, published once.';
CREATE INDEX IF NOT EXISTS notices_owner_created_idx ON notices (owner_id, created_at DESC);
CREATE INDEX IF NOT EXISTS notices_unpublished_idx ON notices (created_at)
    WHERE published_at IS NULL;
