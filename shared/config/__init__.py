"""Configuration: the one place the environment is read (SPEC §6).

``load_settings()`` builds a validated, frozen ``Settings`` from environment variables.
A bad value raises ``ConfigError`` naming the variable. ``APP_ENV=production`` refuses
dev-only settings. Values that look like Secret Manager resource names
(``projects/…/secrets/…/versions/…``) are fetched once per instance; the
``google-cloud-secret-manager`` client is imported only when such a value exists.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from dataclasses import replace as dataclasses_replace
from decimal import Decimal
from typing import Any, Literal

from shared.config.envvar import ConfigError, EnvVar
from shared.config.envvar import choice_field as _choice
from shared.config.envvar import env_field as _env
from shared.config.secrets import SecretClient, default_secret_client, resolve_secrets
from shared.needs import Need
from shared.plans import PROVIDER_CONCURRENCY, Lane

__all__ = [
    "DEV_HS256_SECRET",
    "DEV_SIGNING_KEYS",
    "MIN_HS256_SECRET_BYTES",
    "ConfigError",
    "EnvVar",
    "SecretClient",
    "Settings",
    "check_configuration",
    "get_settings",
    "is_safe_transport",
    "load_settings",
    "reset_settings_cache",
    "resolve_secrets",
]

# Development-only defaults; production refuses to start without real values.
# RFC 7518 §3.2: an HS256 key shorter than the hash output weakens the MAC. Checked at
# start-up here and again by the authenticator (which a test may build by hand).
MIN_HS256_SECRET_BYTES = 32
DEV_HS256_SECRET = "dev-only-hs256-secret-not-for-production-use-0123456789"  # noqa: S105
DEV_SIGNING_KEYS = (
    "dev-current-signing-key-not-for-production-0123456789abcdef",
    "dev-next-signing-key-not-for-production-0123456789abcdef",
)


# --- Per-function needs (issue 12 item 6) ---------------------------------------------
def function_needs(app_function: str | None) -> frozenset[Need]:
    """The needs of the deployed function ``APP_FUNCTION`` names; every need when unset
    (one process serving every route: ``make dev``, the tests)."""
    if app_function is None:
        return frozenset(Need)
    from shared.registry import function_by_name

    spec = function_by_name(app_function)
    if spec is None:
        raise ConfigError(f"APP_FUNCTION: {app_function!r} is not a function of the registry")
    return spec.needs


# --- end per-function needs ------------------------------------------------------------


def is_safe_transport(url: str) -> bool:
    """True for ``https://`` URLs and for ``http://`` to a loopback address.

    Plain HTTP is refused in production because it crosses a network in clear text; a
    request to 127.0.0.0/8, ``::1`` or ``localhost`` never leaves the machine, so it is
    as private as TLS (the production rehearsal's local identity provider lives there).
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


AppEnv = Literal["development", "production"]
QueueBackend = Literal["qstash", "local"]
# Where the caller's bearer token is: Authorization, or X-Forwarded-Authorization behind a
# private function that API Gateway calls with its own ID token (terraform public_invokers).
AuthHeader = Literal["Authorization", "X-Forwarded-Authorization"]
# The AI providers (shared.ai.factory.CLIENTS) and the development writer.
AiProvider = Literal["minimax", "offline"]
DEFAULT_AI_PROVIDER: AiProvider = "minimax"
# The names SPEC §6 gives the AI settings, from before the client became provider-neutral
# (issue 24): still read, as the older name of each (used when the new one is unset).
LEGACY_NAMES: dict[str, str] = {
    "MINIMAX_API_KEY": "AI_API_KEY",
    "MINIMAX_BASE_URL": "AI_BASE_URL",
    "MINIMAX_MODEL": "AI_MODEL",
}
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed settings; each field names its environment variable (``env_vars()``).

    Build from an environment with ``Settings.from_env``; ``replace`` makes a changed
    copy. Every instance is checked against the fields' rules (``ConfigError``).
    """

    app_env: AppEnv = _choice("APP_ENV", "development", AppEnv)
    # The registry name of the deployed function this process is (set by Terraform).
    app_function: str | None = _env("APP_FUNCTION", None)
    database_url: str | None = _env("DATABASE_URL", None)
    redis_url: str | None = _env("REDIS_URL", None)
    upstash_redis_rest_url: str | None = _env("UPSTASH_REDIS_REST_URL", None)
    upstash_redis_rest_token: str | None = _env("UPSTASH_REDIS_REST_TOKEN", None)
    redis_key_prefix: str = _env("REDIS_KEY_PREFIX", "app", pattern=r"^[A-Za-z0-9_.-]{1,32}$")

    auth_jwks_url: str | None = _env("AUTH_JWKS_URL", None)
    auth_issuer: str | None = _env("AUTH_ISSUER", None)
    auth_audience: str | None = _env("AUTH_AUDIENCE", None)
    auth_hs256_secret: str | None = _env("AUTH_HS256_SECRET", None)
    auth_header: AuthHeader = _choice("AUTH_HEADER", "Authorization", AuthHeader)

    queue_backend: QueueBackend | None = _choice("QUEUE_BACKEND", None, QueueBackend)
    qstash_token: str | None = _env("QSTASH_TOKEN", None)
    qstash_url: str | None = _env("QSTASH_URL", None)
    qstash_current_signing_key: str | None = _env("QSTASH_CURRENT_SIGNING_KEY", None)
    qstash_next_signing_key: str | None = _env("QSTASH_NEXT_SIGNING_KEY", None)
    qstash_retries: int = _env("QSTASH_RETRIES", 3, kind="int", ge=0, le=20)
    worker_url: str | None = _env("WORKER_URL", None)

    # The AI provider (shared.ai.factory.CLIENTS); unset: DEFAULT_AI_PROVIDER when a key
    # is set (always in production), else the development writer. Base URL and model
    # unset: the provider's own defaults (its Wire).
    ai_provider: AiProvider | None = _choice("AI_PROVIDER", None, AiProvider)
    ai_api_key: str | None = _env("AI_API_KEY", None)
    ai_base_url: str | None = _env("AI_BASE_URL", None)
    ai_model: str | None = _env("AI_MODEL", None)
    ai_max_tokens: int = _env("AI_MAX_TOKENS", 4096, kind="int", ge=256, le=65536)
    # A second provider speaking the OpenAI chat-completions wire format, used when
    # MiniMax fails with a retryable error past its budget or while its circuit is open.
    # Unset base URL: no fallback (behaviour exactly as with MiniMax alone).
    fallback_ai_base_url: str | None = _env("FALLBACK_AI_BASE_URL", None)
    fallback_ai_model: str | None = _env("FALLBACK_AI_MODEL", None)
    fallback_ai_api_key: str | None = _env("FALLBACK_AI_API_KEY", None)
    # The provider name the ledger records for the fallback's answers.
    fallback_ai_provider: str = _env(
        "FALLBACK_AI_PROVIDER", "openai-compatible", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$"
    )
    # The fallback model's price, USD per 1M tokens (unset: the dearest known price, so it
    # never looks free).
    fallback_ai_price_in: Decimal | None = _env(
        "FALLBACK_AI_PRICE_IN", None, kind="decimal", ge=0, le=1000
    )
    fallback_ai_price_out: Decimal | None = _env(
        "FALLBACK_AI_PRICE_OUT", None, kind="decimal", ge=0, le=1000
    )
    # Seconds of the job's runtime kept for the fallback when MiniMax is tried first.
    fallback_reserve_s: int = _env("FALLBACK_RESERVE_S", 60, kind="int", ge=1, le=3600)
    # MiniMax's circuit: this many failed jobs within the window open it; after the
    # cool-down one trial job half-opens it (its trial lasts at most the job runtime).
    circuit_failures: int = _env("CIRCUIT_FAILURES", 5, kind="int", ge=1, le=1000)
    circuit_window_s: int = _env("CIRCUIT_WINDOW_S", 60, kind="int", ge=1, le=3600)
    circuit_cooldown_s: int = _env("CIRCUIT_COOLDOWN_S", 30, kind="int", ge=1, le=3600)

    cors_allowed_origins: tuple[str, ...] = _env("CORS_ALLOWED_ORIGINS", (), kind="csv")
    port: int = _env("PORT", 8080, kind="int", ge=1, le=65535)
    log_level: LogLevel = _choice("LOG_LEVEL", "INFO", LogLevel)

    cursor_secret: str | None = _env("CURSOR_SECRET", None)
    max_job_runtime_s: int = _env("MAX_JOB_RUNTIME_S", 240, kind="int", ge=5, le=3600)
    # GET /v1/generations/{id}/events closes itself (with a retry hint) after this long:
    # below the generations function's timeout (30 s), so the platform never cuts it.
    events_max_open_s: int = _env("EVENTS_MAX_OPEN_S", 25, kind="int", ge=1, le=3600)
    queue_delay_allowance_s: int = _env("QUEUE_DELAY_ALLOWANCE_S", 600, kind="int", ge=0, le=86400)
    plan_cache_ttl_s: int = _env("PLAN_CACHE_TTL_S", 600, kind="int", ge=1, le=86400)
    provider_cap_interactive: int = _env(
        "PROVIDER_CAP_INTERACTIVE", PROVIDER_CONCURRENCY[Lane.INTERACTIVE], kind="int", ge=1
    )
    provider_cap_batch: int = _env(
        "PROVIDER_CAP_BATCH", PROVIDER_CONCURRENCY[Lane.BATCH], kind="int", ge=1
    )
    local_data_dir: str = _env("LOCAL_DATA_DIR", ".local")
    # A user's day cost above this (and above 5x their trailing median) is a spend
    # anomaly (SPEC §10). Decimal: "0.10" must mean exactly 100000 micro-dollars.
    spend_alert_usd: Decimal = _env(
        "SPEND_ALERT_USD", Decimal(5), kind="decimal", ge=0, le=1_000_000
    )

    stripe_secret_key: str | None = _env("STRIPE_SECRET_KEY", None)
    stripe_webhook_secret: str | None = _env("STRIPE_WEBHOOK_SECRET", None)
    stripe_api_base: str | None = _env("STRIPE_API_BASE", None)
    stripe_price_basic: str | None = _env("STRIPE_PRICE_BASIC", None)
    stripe_price_standard: str | None = _env("STRIPE_PRICE_STANDARD", None)
    stripe_price_pro: str | None = _env("STRIPE_PRICE_PRO", None)
    stripe_price_pro_boost: str | None = _env("STRIPE_PRICE_PRO_BOOST", None)
    # Usage notices (docs/quota.md): delivered through QStash to this URL, signed with
    # the secret; unset: notices are only shown to the user (GET /v1/notices).
    notice_webhook_url: str | None = _env("NOTICE_WEBHOOK_URL", None)
    notice_webhook_secret: str | None = _env("NOTICE_WEBHOOK_SECRET", None)
    stripe_price_pack_50: str | None = _env("STRIPE_PRICE_PACK_50", None)
    stripe_price_pack_200: str | None = _env("STRIPE_PRICE_PACK_200", None)
    stripe_success_url: str = _env("STRIPE_SUCCESS_URL", "http://localhost:3000/billing/success")
    stripe_cancel_url: str = _env("STRIPE_CANCEL_URL", "http://localhost:3000/billing/cancel")

    def __post_init__(self) -> None:
        for f in fields(self):
            f.metadata["env"].check(getattr(self, f.name))

    @classmethod
    def env_vars(cls) -> dict[str, EnvVar]:
        """Field name → its environment variable (name and rules), in field order."""
        return {f.name: f.metadata["env"] for f in fields(cls)}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from the variables ``env`` sets (others ignored; defaults for the rest).

        Field by field, in order: the first bad value raises ``ConfigError`` naming it.
        """
        values = {
            name: var.parse(env[var.name])
            for name, var in cls.env_vars().items()
            if var.name in env
        }
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (field names), checked like any instance."""
        return dataclasses_replace(self, **changes)

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_development(self) -> bool:
        """The guard of every import of ``devtools`` (which deployed packages leave out)."""
        return not self.is_production

    @property
    def effective_queue_backend(self) -> QueueBackend:
        if self.queue_backend:
            return self.queue_backend
        return "qstash" if self.is_production else "local"

    @property
    def effective_ai_provider(self) -> AiProvider:
        if self.ai_provider:
            return self.ai_provider
        if self.ai_api_key or self.is_production:
            return DEFAULT_AI_PROVIDER
        return "offline"

    @property
    def fallback_configured(self) -> bool:
        """A second provider is set up (base URL, model and key all given)."""
        return bool(
            self.fallback_ai_base_url and self.fallback_ai_model and self.fallback_ai_api_key
        )

    @property
    def effective_worker_url(self) -> str:
        return (self.worker_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def lease_ttl_s(self) -> int:
        """A lease outlives the longest job plus the longest queue delay we tolerate."""
        return self.max_job_runtime_s + self.queue_delay_allowance_s

    @property
    def spend_alert_micro_usd(self) -> int:
        return int(self.spend_alert_usd * 1_000_000)

    def provider_cap(self, lane: Lane) -> int:
        return (
            self.provider_cap_interactive if lane is Lane.INTERACTIVE else self.provider_cap_batch
        )

    @property
    def effective_hs256_secret(self) -> str | None:
        """HS256 secret for dev tokens; a fixed dev default when nothing else is configured."""
        if self.auth_hs256_secret or self.is_production or self.auth_jwks_url:
            return self.auth_hs256_secret
        return DEV_HS256_SECRET

    @property
    def effective_signing_keys(self) -> tuple[str, str]:
        """QStash (current, next) signing keys; fixed dev defaults for the local queue."""
        return (
            self.qstash_current_signing_key or DEV_SIGNING_KEYS[0],
            self.qstash_next_signing_key or DEV_SIGNING_KEYS[1],
        )

    @property
    def effective_cursor_secret(self) -> str:
        # Development falls back to a fixed secret so cursors survive restarts of make dev.
        return self.cursor_secret or "dev-cursor-secret-not-for-production"


def _check_production(s: Settings) -> None:
    if not s.is_production:
        return
    if s.auth_hs256_secret:
        raise ConfigError("AUTH_HS256_SECRET: development-only; refused when APP_ENV=production")
    if s.queue_backend == "local":
        raise ConfigError("QUEUE_BACKEND: 'local' is development-only; use 'qstash' in production")
    if s.ai_provider == "offline":
        raise ConfigError(
            f"AI_PROVIDER: 'offline' is development-only; use '{DEFAULT_AI_PROVIDER}' in production"
        )
    needs = function_needs(s.app_function)
    for need in (n for n in Need if n in needs):
        problem = _missing_for(s, need)
        if problem:
            raise ConfigError(problem)


def _missing_for(s: Settings, need: Need) -> str | None:
    """What production lacks for ``need`` (the message names the variable), or None."""
    required: dict[str, object] = {}
    if need is Need.POSTGRES:
        required = {"DATABASE_URL": s.database_url}
    elif need is Need.REDIS:
        if not (s.redis_url or (s.upstash_redis_rest_url and s.upstash_redis_rest_token)):
            return (
                "REDIS_URL: set it or UPSTASH_REDIS_REST_URL + UPSTASH_REDIS_REST_TOKEN"
                " in production"
            )
    elif need is Need.AUTH:
        required = {
            "AUTH_JWKS_URL": s.auth_jwks_url,
            "AUTH_ISSUER": s.auth_issuer,
            "AUTH_AUDIENCE": s.auth_audience,
        }
    elif need is Need.QUEUE:
        required = {"QSTASH_TOKEN": s.qstash_token}
    elif need is Need.SIGNATURES:
        if not (s.qstash_current_signing_key and s.qstash_next_signing_key):
            return "QSTASH_CURRENT_SIGNING_KEY: both QStash signing keys are required in production"
    elif need is Need.AI:
        required = {"AI_API_KEY": s.ai_api_key}
    elif need is Need.CURSOR:
        required = {"CURSOR_SECRET": s.cursor_secret}
    for env_name, value in required.items():
        if not value:
            return f"{env_name}: required when APP_ENV=production"
    return None


def _check_consistency(s: Settings) -> None:
    """Settings that are each valid but cannot work together (checked in every env),
    for what this function uses (``APP_FUNCTION``; everything when unset).

    The adapters would refuse these too, but only when first built, inside a request:
    here they stop the instance at start-up instead.
    """
    needs = function_needs(s.app_function)
    if Need.QUEUE in needs and s.effective_queue_backend == "qstash":
        if not s.qstash_token:
            raise ConfigError("QSTASH_TOKEN: required when QUEUE_BACKEND=qstash")
        if not s.worker_url:
            raise ConfigError("WORKER_URL: required when QUEUE_BACKEND=qstash")
    provider = s.effective_ai_provider
    if Need.AI in needs and provider != "offline" and not s.ai_api_key:
        raise ConfigError(f"AI_API_KEY: required when AI_PROVIDER={provider}")
    partial = (s.fallback_ai_base_url, s.fallback_ai_model, s.fallback_ai_api_key)
    if any(partial) and not all(partial):
        raise ConfigError(
            "FALLBACK_AI_BASE_URL: FALLBACK_AI_BASE_URL, FALLBACK_AI_MODEL and "
            "FALLBACK_AI_API_KEY are set together or not at all"
        )
    if Need.AUTH not in needs:
        return
    if s.is_production and not is_safe_transport(s.auth_jwks_url or ""):
        raise ConfigError(
            "AUTH_JWKS_URL: an https:// (or loopback http://) URL is required in production"
        )
    secret = s.effective_hs256_secret
    if secret is not None and len(secret.encode("utf-8")) < MIN_HS256_SECRET_BYTES:
        raise ConfigError(f"AUTH_HS256_SECRET: at least {MIN_HS256_SECRET_BYTES} bytes")


def _with_legacy_names(source: dict[str, str]) -> dict[str, str]:
    """``source`` with each ``LEGACY_NAMES`` variable read as its new name; both set to
    different values is refused (which one was meant cannot be known)."""
    for old, new in LEGACY_NAMES.items():
        if old not in source:
            continue
        value = source.pop(old)
        if source.setdefault(new, value) != value:
            raise ConfigError(
                f"{old}: the older name of {new}, set to another value; set {new} only"
            )
    return source


def load_settings(
    env: Mapping[str, str] | None = None,
    secret_client_factory: Callable[[], SecretClient] = default_secret_client,
    *,
    fetch_secrets: bool = True,
) -> Settings:
    """Validated settings from ``env`` (default ``os.environ``); raises ``ConfigError``.

    ``fetch_secrets=False`` validates with Secret Manager names left in place (no I/O).
    """
    source = {k: v for k, v in (os.environ if env is None else env).items() if k.isupper()}
    source = _with_legacy_names(source)
    if fetch_secrets:
        source = resolve_secrets(source, secret_client_factory)
    settings = Settings.from_env(source)
    _check_production(settings)
    _check_consistency(settings)
    return settings


def check_configuration(env: Mapping[str, str] | None = None) -> None:
    """Validate the whole configuration at start-up, connecting to nothing.

    Each Cloud Function module calls this at import, so a bad setting stops the instance
    (and the deploy) with a ``ConfigError`` naming the variable, instead of answering a
    500 on some later request. Secret Manager names are not fetched here (the first
    request does that, once); a mounted secret is just a value and is checked.
    """
    load_settings(env, fetch_secrets=False)


_lock = threading.Lock()
_cached: Settings | None = None


def get_settings() -> Settings:
    """Settings for this instance, loaded once (thread-safe)."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = load_settings()
    return _cached


def reset_settings_cache() -> None:
    """Forget the cached settings (tests, local server restarts)."""
    global _cached
    with _lock:
        _cached = None
