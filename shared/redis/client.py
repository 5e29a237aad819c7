"""``RedisPort`` and its two adapters: redis-py over TCP and the Upstash REST SDK.

Both count every network call in ``round_trips`` (a NOSCRIPT fallback counts twice) and
translate library errors at this boundary: an unreachable or timed-out Redis becomes
``ServiceUnavailable`` (paid limits fail closed: nothing is admitted), an error answered by
Redis itself (a script bug, a wrong type) becomes ``InternalError``.

Each adapter imports its library when it is built, never at import: an instance uses one
backend (Upstash in production, TCP in development), and cold starts pay for every
import (redis-py's ``__init__`` loads its asyncio client; upstash-redis loads httpx).
The error translators import their library too, which the adapter has already loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from shared.config import ConfigError, Settings
from shared.errors import InternalError, ServiceUnavailable
from shared.redis.scripts import (
    UPSTASH_SHEBANG,
    Script,
    ScriptRegistry,
    default_registry,
    run_script,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisPort", "TcpRedis", "UpstashRedis", "redis_from_settings"]

Arg = str | int


class RedisPort(Protocol):
    """What enforcement needs from Redis. Every method is one round trip (NOSCRIPT: two)."""

    @property
    def round_trips(self) -> int: ...

    def run(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run the registered script ``name``; its reply holds numbers and strings only."""
        ...

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, *, px_ms: int | None = None) -> None: ...

    def set_nx(self, key: str, value: str, *, px_ms: int) -> bool:
        """``SET key value NX PX px_ms``: True when this call created the key."""
        ...

    def delete(self, *keys: str) -> int: ...

    def ping(self) -> bool: ...

    def script_flush(self) -> None:
        """Drop every cached script on the server (data stays); used by recovery tests."""
        ...


class _TripCounter:
    """A thread-safe count of network calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


class TcpRedis:
    """redis-py over ``redis://``, ``rediss://`` or ``unix://``; thread-safe (pooled)."""

    def __init__(self, client: redis.Redis, registry: ScriptRegistry | None = None) -> None:
        self._client = client
        self._registry = registry or default_registry()
        self._trips = _TripCounter()

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 2.0, max_connections: int = 32) -> TcpRedis:
        """An adapter for ``url``; connects lazily, on the first command.

        Threads share a blocking pool: beyond ``max_connections`` a caller waits up to
        ``timeout_s`` for a free connection instead of failing at once.
        """
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
            # One immediate retry covers a pooled connection the server closed while idle;
            # every script is safe to repeat (admission and refunds are keyed by lease id).
            retry=Retry(NoBackoff(), 1),
        )
        client = redis.Redis(connection_pool=pool)
        return cls(client)

    @property
    def round_trips(self) -> int:
        return self._trips.value

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        self._trips.add()
        return self._client.evalsha(sha, len(keys), *keys, *args)

    def eval(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        self._trips.add()
        return self._client.eval(source, len(keys), *keys, *args)

    def run(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run a registered script by EVALSHA (EVAL on NOSCRIPT)."""
        with _redis_errors():
            return run_script(self, self._registry.get(name), keys, [str(a) for a in args])

    def get(self, key: str) -> str | None:
        self._trips.add()
        with _redis_errors():
            value = self._client.get(key)
            return None if value is None else str(value)

    def set(self, key: str, value: str, *, px_ms: int | None = None) -> None:
        self._trips.add()
        with _redis_errors():
            self._client.set(key, value, px=px_ms)

    def set_nx(self, key: str, value: str, *, px_ms: int) -> bool:
        self._trips.add()
        with _redis_errors():
            return bool(self._client.set(key, value, nx=True, px=px_ms))

    def delete(self, *keys: str) -> int:
        self._trips.add()
        with _redis_errors():
            return int(self._client.delete(*keys))

    def ping(self) -> bool:
        self._trips.add()
        with _redis_errors():
            return bool(self._client.ping())

    def script_flush(self) -> None:
        self._trips.add()
        with _redis_errors():
            self._client.script_flush()

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()


@contextmanager
def _redis_errors() -> Iterator[None]:
    from redis import exceptions as redis_errors

    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise ServiceUnavailable("Redis is unreachable; retry shortly.") from exc
    except redis_errors.RedisError as exc:
        raise InternalError(f"Redis refused a command: {exc}") from exc


class UpstashRedis:
    """The Upstash REST SDK; every script carries the allow-key-locking shebang."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 3.0,
        rest_retries: int = 1,
        registry: ScriptRegistry | None = None,
    ) -> None:
        import httpx
        from upstash_redis import Redis

        self._client = Redis(
            url,
            token,
            rest_retries=rest_retries,
            rest_retry_interval=0.05,
            allow_telemetry=False,
        )
        # The SDK builds its httpx client with no timeout, so a hung request would hold a
        # paid decision forever; swap in a bounded one (same class, same pooling).
        self._client._http._client.close()
        self._client._http._client = httpx.Client(timeout=timeout_s)
        self._registry = registry or default_registry()
        self._scripts: dict[str, Script] = {}
        self._trips = _TripCounter()

    @property
    def round_trips(self) -> int:
        return self._trips.value

    def _script(self, name: str) -> Script:
        script = self._scripts.get(name)
        if script is None:
            script = self._registry.get(name).with_header(UPSTASH_SHEBANG)
            self._scripts[name] = script
        return script

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        self._trips.add()
        return self._client.evalsha(sha, keys=list(keys), args=list(args))

    def eval(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        self._trips.add()
        return self._client.eval(source, keys=list(keys), args=list(args))

    def run(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run a registered script by EVALSHA (EVAL on NOSCRIPT)."""
        with _upstash_errors():
            return run_script(self, self._script(name), keys, [str(a) for a in args])

    def get(self, key: str) -> str | None:
        self._trips.add()
        with _upstash_errors():
            value = self._client.get(key)
            return None if value is None else str(value)

    def set(self, key: str, value: str, *, px_ms: int | None = None) -> None:
        self._trips.add()
        with _upstash_errors():
            self._client.set(key, value, px=px_ms)

    def set_nx(self, key: str, value: str, *, px_ms: int) -> bool:
        self._trips.add()
        with _upstash_errors():
            return bool(self._client.set(key, value, nx=True, px=px_ms))

    def delete(self, *keys: str) -> int:
        self._trips.add()
        with _upstash_errors():
            return int(self._client.delete(*keys))

    def ping(self) -> bool:
        self._trips.add()
        with _upstash_errors():
            return bool(self._client.ping() == "PONG")

    def script_flush(self) -> None:
        self._trips.add()
        with _upstash_errors():
            self._client.script_flush()

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()  # type: ignore[no-untyped-call]


@contextmanager
def _upstash_errors() -> Iterator[None]:
    import httpx
    from upstash_redis.errors import UpstashError

    try:
        yield
    except UpstashError as exc:
        raise InternalError(f"Upstash refused a command: {exc}") from exc
    except (httpx.HTTPError, ValueError) as exc:
        # ValueError: a proxy or outage page that is not the REST API's JSON.
        raise ServiceUnavailable("Redis (Upstash) is unreachable; retry shortly.") from exc


def redis_from_settings(settings: Settings) -> RedisPort:
    """Upstash when its URL and token are set, else ``REDIS_URL`` (development's embedded
    Redis is passed to the container by ``devtools.compose``)."""
    if settings.upstash_redis_rest_url and settings.upstash_redis_rest_token:
        return UpstashRedis(settings.upstash_redis_rest_url, settings.upstash_redis_rest_token)
    if settings.redis_url:
        return TcpRedis.from_url(settings.redis_url)
    if settings.is_development:
        raise ConfigError(
            "REDIS_URL: not set; embedded Redis comes from devtools.compose.dev_container"
        )
    raise ConfigError("REDIS_URL: set it or UPSTASH_REDIS_REST_URL + _TOKEN in production")
