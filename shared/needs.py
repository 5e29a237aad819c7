"""What a deployed function uses (``shared.registry.FunctionSpec.needs``) and the
secrets each need mounts.

Its own module so that imports run one way: ``shared.config`` looks the running function
up in the registry to check its settings, and the registry reads these names from here,
not from ``shared.config``."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["NEED_SECRETS", "OPTIONAL_NEEDS", "Need"]


class Need(StrEnum):
    """A capability a deployed function uses (``shared.registry.FunctionSpec.needs``).

    It decides which secrets Terraform mounts into the function and which settings the
    function requires at start-up in production: each function holds and checks only
    what it uses (the health function starts without the Stripe or AI provider keys).
    """

    POSTGRES = "postgres"
    REDIS = "redis"
    AUTH = "auth"  # bearer tokens checked against the JWKS
    QUEUE = "queue"  # publishes jobs to QStash
    SIGNATURES = "signatures"  # verifies QStash signatures (the worker)
    AI = "ai"
    CURSOR = "cursor"  # signs library cursors
    # Stripe routes answer 503 until their secret is set, so these mount but never require.
    STRIPE = "stripe"
    STRIPE_WEBHOOK = "stripe_webhook"
    # Optional (OPTIONAL_NEEDS): nothing is mounted or set until the operator configures it.
    AI_FALLBACK = "ai_fallback"  # the second, OpenAI-compatible provider (FALLBACK_AI_*)
    NOTICES = "notices"  # publishes usage notices to NOTICE_WEBHOOK_URL through QStash


# The secret environment variables (Secret Manager in production) each need mounts.
NEED_SECRETS: dict[Need, tuple[str, ...]] = {
    Need.POSTGRES: ("DATABASE_URL",),
    Need.REDIS: ("UPSTASH_REDIS_REST_TOKEN",),
    Need.AUTH: (),
    Need.QUEUE: ("QSTASH_TOKEN",),
    Need.SIGNATURES: ("QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY"),
    Need.AI: ("AI_API_KEY",),
    Need.CURSOR: ("CURSOR_SECRET",),
    Need.STRIPE: ("STRIPE_SECRET_KEY",),
    Need.STRIPE_WEBHOOK: ("STRIPE_WEBHOOK_SECRET",),
    Need.AI_FALLBACK: ("FALLBACK_AI_API_KEY",),
    Need.NOTICES: ("NOTICE_WEBHOOK_SECRET", "QSTASH_TOKEN"),
}

# Needs whose secrets Terraform mounts only when the operator turns the feature on
# (terraform/variables.tf: fallback_ai_base_url, notice_webhook_url); off, the function
# runs as if it did not have them. Never required at start-up.
OPTIONAL_NEEDS: frozenset[Need] = frozenset({Need.AI_FALLBACK, Need.NOTICES})
