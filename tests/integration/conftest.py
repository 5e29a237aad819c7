"""Fixtures the integration tests share: Redis through both of our clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.upstash_rest import UpstashRestServer, make_port
from shared.redis import RedisPort


@pytest.fixture(scope="module")
def rest_server(redis_url: str) -> Iterator[UpstashRestServer]:
    """A local endpoint speaking Upstash's REST protocol over the run's real Redis."""
    server = UpstashRestServer(redis_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["tcp", "upstash"])
def port(
    request: pytest.FixtureRequest, redis_url: str, rest_server: UpstashRestServer
) -> RedisPort:
    """The run's Redis through redis-py (TCP) and through upstash-redis (REST)."""
    port: RedisPort = make_port(request.param, redis_url, rest_server)
    return port
