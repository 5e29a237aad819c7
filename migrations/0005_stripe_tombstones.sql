-- Stripe ids of deleted accounts (SPEC §9): a webhook that arrives after DELETE /v1/me
-- must never bring the user back or grant a plan again, yet everything that could tell
-- it was the deleted user (the user row, the subscription's event-time guard) is gone.
-- The ids are Stripe's (cus_…, sub_…); no user id is kept. A later account under the
-- same sub buys under a new customer, so these rows never block it.

CREATE TABLE IF NOT EXISTS stripe_tombstones (
    stripe_id  text PRIMARY KEY CHECK (char_length(stripe_id) BETWEEN 1 AND 255),
    kind       text NOT NULL CHECK (kind IN ('customer', 'subscription')),
    buried_at  timestamptz NOT NULL
);
COMMENT ON TABLE stripe_tombstones IS
    'Stripe customer and subscription ids of deleted accounts: their webhooks change nothing.';
