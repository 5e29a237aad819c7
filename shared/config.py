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
import re
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.billing.plans import PROVIDER_CONCURRENCY, Lane
from shared.needs import Need

__all__ = [
    "DEV_HS256_SECRET",
    "DEV_SIGNING_KEYS",
    "MIN_HS256_SECRET_BYTES",
    "ConfigError",
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

SECRET_NAME_RE = re.compile(r"^projects/[^/]+/secrets/[^/]+/versions/[^/]+$")


class ConfigError(ValueError):
    """A configuration problem; the message names the offending variable."""


# --- Per-function needs (issue 12 item 6) ---------------------------------------------
def function_needs(app_function: str | None) -> frozenset[Need]:
    """The needs of the deployed function ``APP_FUNCTION`` names; every need when unset
    (one process serving every route: ``make dev``, the tests)."""
    if app_function is None:
        return frozenset(Need)
    from shared.api.registry import function_by_name

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


class Settings(BaseModel):
    """Typed settings. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    app_env: Literal["development", "production"] = Field("development", alias="APP_ENV")
    # The registry name of the deployed function this process is (set by Terraform).
    app_function: str | None = Field(None, alias="APP_FUNCTION")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    upstash_redis_rest_url: str | None = Field(None, alias="UPSTASH_REDIS_REST_URL")
    upstash_redis_rest_token: str | None = Field(None, alias="UPSTASH_REDIS_REST_TOKEN")
    redis_key_prefix: str = Field(
        "app", alias="REDIS_KEY_PREFIX", pattern=r"^[A-Za-z0-9_.-]{1,32}$"
    )

    auth_jwks_url: str | None = Field(None, alias="AUTH_JWKS_URL")
    auth_issuer: str | None = Field(None, alias="AUTH_ISSUER")
    auth_audience: str | None = Field(None, alias="AUTH_AUDIENCE")
    auth_hs256_secret: str | None = Field(None, alias="AUTH_HS256_SECRET")

    queue_backend: Literal["qstash", "local"] | None = Field(None, alias="QUEUE_BACKEND")
    qstash_token: str | None = Field(None, alias="QSTASH_TOKEN")
    qstash_url: str | None = Field(None, alias="QSTASH_URL")
    qstash_current_signing_key: str | None = Field(None, alias="QSTASH_CURRENT_SIGNING_KEY")
    qstash_next_signing_key: str | None = Field(None, alias="QSTASH_NEXT_SIGNING_KEY")
    qstash_retries: int = Field(3, alias="QSTASH_RETRIES", ge=0, le=20)
    worker_url: str | None = Field(None, alias="WORKER_URL")

    ai_provider: Literal["minimax", "offline"] | None = Field(None, alias="AI_PROVIDER")
    minimax_api_key: str | None = Field(None, alias="MINIMAX_API_KEY")
    minimax_base_url: str = Field("https://api.minimax.io", alias="MINIMAX_BASE_URL")
    minimax_model: str = Field("MiniMax-M2.5", alias="MINIMAX_MODEL")
    ai_max_tokens: int = Field(4096, alias="AI_MAX_TOKENS", ge=256, le=65536)

    cors_allowed_origins: tuple[str, ...] = Field((), alias="CORS_ALLOWED_ORIGINS")
    port: int = Field(8080, alias="PORT", ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")

    cursor_secret: str | None = Field(None, alias="CURSOR_SECRET")
    max_job_runtime_s: int = Field(240, alias="MAX_JOB_RUNTIME_S", ge=5, le=3600)
    queue_delay_allowance_s: int = Field(600, alias="QUEUE_DELAY_ALLOWANCE_S", ge=0, le=86400)
    plan_cache_ttl_s: int = Field(600, alias="PLAN_CACHE_TTL_S", ge=1, le=86400)
    provider_cap_interactive: int = Field(
        PROVIDER_CONCURRENCY[Lane.INTERACTIVE], alias="PROVIDER_CAP_INTERACTIVE", ge=1
    )
    provider_cap_batch: int = Field(
        PROVIDER_CONCURRENCY[Lane.BATCH], alias="PROVIDER_CAP_BATCH", ge=1
    )
    local_data_dir: str = Field(".local", alias="LOCAL_DATA_DIR")
    # A user's day cost above this (and above 5x their trailing median) is a spend
    # anomaly (SPEC §10). Decimal: "0.10" must mean exactly 100000 micro-dollars.
    spend_alert_usd: Decimal = Field(
        Decimal(5), alias="SPEND_ALERT_USD", ge=0, le=1_000_000, allow_inf_nan=False
    )

    stripe_secret_key: str | None = Field(None, alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: str | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str | None = Field(None, alias="STRIPE_API_BASE")
    stripe_price_basic: str | None = Field(None, alias="STRIPE_PRICE_BASIC")
    stripe_price_standard: str | None = Field(None, alias="STRIPE_PRICE_STANDARD")
    stripe_price_pro: str | None = Field(None, alias="STRIPE_PRICE_PRO")
    stripe_price_pro_boost: str | None = Field(None, alias="STRIPE_PRICE_PRO_BOOST")
    stripe_success_url: str = Field(
        "http://localhost:3000/billing/success", alias="STRIPE_SUCCESS_URL"
    )
    stripe_cancel_url: str = Field(
        "http://localhost:3000/billing/cancel", alias="STRIPE_CANCEL_URL"
    )

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_development(self) -> bool:
        """The guard of every import of ``devtools`` (which deployed packages leave out)."""
        return not self.is_production

    @property
    def effective_queue_backend(self) -> Literal["qstash", "local"]:
        if self.queue_backend:
            return self.queue_backend
        return "qstash" if self.is_production else "local"

    @property
    def effective_ai_provider(self) -> Literal["minimax", "offline"]:
        if self.ai_provider:
            return self.ai_provider
        return "minimax" if self.minimax_api_key or self.is_production else "offline"

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
        raise ConfigError("AI_PROVIDER: 'offline' is development-only; use 'minimax' in production")
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
        required = {"MINIMAX_API_KEY": s.minimax_api_key}
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
    if Need.AI in needs and s.effective_ai_provider == "minimax" and not s.minimax_api_key:
        raise ConfigError("MINIMAX_API_KEY: required when AI_PROVIDER=minimax")
    if Need.AUTH not in needs:
        return
    if s.is_production and not is_safe_transport(s.auth_jwks_url or ""):
        raise ConfigError(
            "AUTH_JWKS_URL: an https:// (or loopback http://) URL is required in production"
        )
    secret = s.effective_hs256_secret
    if secret is not None and len(secret.encode("utf-8")) < MIN_HS256_SECRET_BYTES:
        raise ConfigError(f"AUTH_HS256_SECRET: at least {MIN_HS256_SECRET_BYTES} bytes")


class SecretClient(Protocol):
    """The slice of ``SecretManagerServiceClient`` we use (a fake in tests)."""

    def access_secret_version(self, *, name: str) -> Any: ...


def _default_secret_client() -> SecretClient:
    # Imported here: the library takes ~0.5 s to import and most instances never need it.
    from google.cloud import secretmanager

    client: SecretClient = secretmanager.SecretManagerServiceClient()
    return client


def resolve_secrets(
    env: Mapping[str, str], client_factory: Callable[[], SecretClient] = _default_secret_client
) -> dict[str, str]:
    """Replace Secret Manager resource names with their payloads; the client is made once."""
    resolved = dict(env)
    client: SecretClient | None = None
    for key, value in env.items():
        if not SECRET_NAME_RE.match(value.strip()):
            continue
        client = client or client_factory()
        try:
            response = client.access_secret_version(name=value.strip())
            resolved[key] = response.payload.data.decode("utf-8")
        except Exception as exc:  # any client failure is a start-up config error
            raise ConfigError(f"{key}: could not read secret {value.strip()!r}: {exc}") from exc
    return resolved


def load_settings(
    env: Mapping[str, str] | None = None,
    secret_client_factory: Callable[[], SecretClient] = _default_secret_client,
    *,
    fetch_secrets: bool = True,
) -> Settings:
    """Validated settings from ``env`` (default ``os.environ``); raises ``ConfigError``.

    ``fetch_secrets=False`` validates with Secret Manager names left in place (no I/O).
    """
    source = {k: v for k, v in (os.environ if env is None else env).items() if k.isupper()}
    if fetch_secrets:
        source = resolve_secrets(source, secret_client_factory)
    try:
        settings = Settings.model_validate(source)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "config"
        raise ConfigError(f"{name}: {first['msg']}") from exc
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
