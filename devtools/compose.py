"""The development composition: a ``Container`` with development's stand-ins passed in.

Production code never imports ``devtools`` (``tests/unit/test_layers.py``): the
composition root ``shared.bootstrap`` builds production's adapters only. Whatever the
settings leave to development, this module supplies, as factories built on first use
(nothing starts at construction):

- no ``DATABASE_URL``: the embedded Postgres (``devtools.devservers``);
- no ``REDIS_URL`` nor Upstash: the embedded Redis;
- ``QUEUE_BACKEND=local`` (development's default): ``LocalQueue``, delivering to the
  worker's own URL with QStash's signatures and retries;
- ``AI_PROVIDER=offline`` (the default without ``AI_API_KEY``): ``OfflineWriter``.

Everything the settings do configure is production's own adapter, and production
settings get exactly production's container. ``make dev`` / ``make demo``
(``devtools.local_server``), the tests, the benchmarks and the rehearsal build their
containers here.

    python -m devtools.compose MODULE [ARG ...]

runs a production command line (``shared.db.migrate``, ``shared.ops.costs``,
``shared.ops.rollup``) in this composition: in development with nothing configured,
``DATABASE_URL`` names the embedded Postgres (``make migrate`` runs ``shared.db.migrate``
so; with ``make dev`` running it is the same server).
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Callable, Sequence
from typing import Any

from devtools.devservers import embedded_postgres_url, embedded_redis_url
from devtools.local_queue import LocalQueue
from devtools.offline_writer import OfflineWriter
from shared.ai import factory as ai_factory
from shared.ai.types import LLMPort
from shared.bootstrap import Container, set_container
from shared.clock import Clock
from shared.config import Settings, get_settings, reset_settings_cache
from shared.queue import factory as queue_factory
from shared.queue.base import QueuePort
from shared.redis import client as redis_client
from shared.redis.client import RedisPort, TcpRedis

__all__ = [
    "database_url",
    "dev_container",
    "dev_factories",
    "llm_from_settings",
    "main",
    "queue_from_settings",
    "redis_from_settings",
]


def _redis_configured(settings: Settings) -> bool:
    upstash = settings.upstash_redis_rest_url and settings.upstash_redis_rest_token
    return bool(upstash or settings.redis_url)


def database_url(settings: Settings) -> str:
    """``DATABASE_URL``, or in development the embedded Postgres (started on first call)."""
    if settings.is_development and not settings.database_url:
        return embedded_postgres_url(settings.local_data_dir)
    return Container(settings).database_url  # production's rule, and its error


def redis_from_settings(settings: Settings) -> RedisPort:
    """Production's Redis adapter when one is configured, else (development) embedded Redis."""
    if _redis_configured(settings) or not settings.is_development:
        return redis_client.redis_from_settings(settings)
    return TcpRedis.from_url(embedded_redis_url(settings.local_data_dir))


def queue_from_settings(settings: Settings) -> QueuePort:
    """``LocalQueue`` for development's ``local`` backend, else production's queue.

    Callers keep one per instance (the container); a ``LocalQueue`` owns threads."""
    if settings.effective_queue_backend == "local" and settings.is_development:
        return LocalQueue(
            worker_url=settings.effective_worker_url,
            signing_key=settings.effective_signing_keys[0],
            retries=settings.qstash_retries,
            timeout_s=queue_factory.delivery_timeout(settings),
        )
    return queue_factory.queue_from_settings(settings)


def llm_from_settings(settings: Settings) -> LLMPort:
    """``OfflineWriter`` for development's ``offline`` provider, else production's client."""
    if settings.effective_ai_provider == "offline" and settings.is_development:
        return OfflineWriter()
    return ai_factory.llm_from_settings(settings)


def dev_factories(settings: Settings) -> dict[str, Callable[[Container], Any]]:
    """What the settings leave to development, as ``Container`` factories (none for
    production settings)."""
    if not settings.is_development:
        return {}
    found: dict[str, Callable[[Container], Any]] = {}
    if not settings.database_url:
        found["database_url"] = lambda c: database_url(c.settings)
    if not _redis_configured(settings):
        found["redis"] = lambda c: redis_from_settings(c.settings)
    if settings.effective_queue_backend == "local":
        found["queue"] = lambda c: queue_from_settings(c.settings)
    if settings.effective_ai_provider == "offline":
        # The whole provider: the offline writer gets no fallback (as before).
        found["llm"] = lambda c: OfflineWriter()
    return found


def dev_container(settings: Settings, *, clock: Clock | None = None, **overrides: Any) -> Container:
    """A ``Container`` for ``settings`` with development's stand-ins where the settings
    leave them to development; ``overrides`` (built adapters) win over both."""
    return Container(settings, clock=clock, factories=dev_factories(settings), **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devtools.compose MODULE [ARG ...]``: run ``MODULE`` as ``__main__`` with
    the embedded Postgres in ``DATABASE_URL`` when development leaves it unset, and the
    development container installed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: python -m devtools.compose MODULE [ARG ...]", file=sys.stderr)
        return 2
    settings = get_settings()
    if settings.is_development and not settings.database_url:
        os.environ["DATABASE_URL"] = database_url(settings)
        reset_settings_cache()
        settings = get_settings()
    set_container(dev_container(settings))
    sys.argv = [args[0], *args[1:]]
    try:
        runpy.run_module(args[0], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        set_container(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
