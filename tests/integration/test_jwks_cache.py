"""``JwksCache`` on its own against a real local JWKS endpoint: caching, rotation, rate
limits and the failure policy (the authenticator's view of them is in test_jwks.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devtools.jwks_server import JwksServer, SigningKey, jwks
from shared.api.jwks import JwksCache
from tests.support.clock import FakeClock

NOW = 1_800_000_000.0
RSA = SigningKey.rsa(kid="rsa-1")
EC = SigningKey.ec(kid="ec-1")
ROTATED = SigningKey.rsa(kid="rsa-2")


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with JwksServer(jwks([RSA, EC]), hang_s=5.0) as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def make_cache(server: JwksServer, clock: FakeClock) -> Iterator[Any]:
    made: list[JwksCache] = []

    def make(**kwargs: Any) -> JwksCache:
        options: dict[str, Any] = {"clock": clock}
        options.update(kwargs)
        cache = JwksCache(server.url, **options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def cache(make_cache: Any) -> JwksCache:
    made: JwksCache = make_cache()
    return made


def test_one_fetch_serves_every_key_of_the_set(cache: JwksCache, server: JwksServer) -> None:
    assert cache.key("rsa-1", "RS256") is not None
    assert cache.key("ec-1", "ES256") is not None
    for _ in range(20):
        assert cache.key("rsa-1", "RS256") is not None
    assert server.request_count == 1


def test_a_key_answers_only_for_its_own_algorithm(cache: JwksCache) -> None:
    assert cache.key("rsa-1", "ES256") is None
    assert cache.key("ec-1", "RS256") is None


def test_no_kid_finds_the_only_key_of_a_one_key_set(server: JwksServer, make_cache: Any) -> None:
    assert make_cache().key(None, "RS256") is None  # two keys: ambiguous
    server.set_keys([RSA])
    assert make_cache().key(None, "RS256") is not None


def test_stale_after_ttl(cache: JwksCache, server: JwksServer, clock: FakeClock) -> None:
    cache.key("rsa-1", "RS256")
    clock.now += 299
    cache.key("rsa-1", "RS256")
    assert server.request_count == 1
    clock.now += 2
    cache.key("rsa-1", "RS256")
    assert server.request_count == 2


def test_rotation_replaces_the_set_whole(
    cache: JwksCache, server: JwksServer, clock: FakeClock
) -> None:
    assert cache.key("rsa-1", "RS256") is not None
    server.set_keys([ROTATED])
    clock.now += 31
    assert cache.key("rsa-2", "RS256") is not None
    assert server.request_count == 2
    assert cache.key("rsa-1", "RS256") is None
    assert server.request_count == 2


def test_unknown_kids_refetch_at_most_once_per_interval(
    cache: JwksCache, server: JwksServer, clock: FakeClock
) -> None:
    cache.key("rsa-1", "RS256")
    for i in range(50):
        assert cache.key(f"spray-{i}", "ES256") is None
        clock.now += 0.1
    assert server.request_count == 1  # 5 s in: within the 30 s interval
    clock.now += 30
    assert cache.key("spray-x", "ES256") is None
    assert server.request_count == 2


def test_empty_cache_retries_after_a_second(
    server: JwksServer, make_cache: Any, clock: FakeClock
) -> None:
    server.set_mode("error")
    cache = make_cache()
    assert cache.key("rsa-1", "RS256") is None
    assert cache.key("rsa-1", "RS256") is None
    assert server.request_count == 1
    server.set_mode("ok")
    clock.now += 1.0
    assert cache.key("rsa-1", "RS256") is not None
    assert server.request_count == 2


@pytest.mark.parametrize("body", [b"<html>", b'{"keys": []}', b'{"keys": [{"kty": "oct"}]}'])
def test_a_broken_refresh_keeps_the_previous_keys(
    cache: JwksCache, server: JwksServer, clock: FakeClock, body: bytes
) -> None:
    assert cache.key("rsa-1", "RS256") is not None
    server.set_raw(body)
    clock.now += 400
    assert cache.key("rsa-1", "RS256") is not None
    assert server.request_count == 2


def test_an_oversized_document_is_refused(server: JwksServer, cache: JwksCache) -> None:
    document = jwks([RSA])
    document["padding"] = "x" * 300_000
    server.set_document(document)
    assert cache.key("rsa-1", "RS256") is None


def test_a_stale_known_key_does_not_wait_for_a_refresh_in_flight(
    server: JwksServer, make_cache: Any, clock: FakeClock
) -> None:
    with httpx.Client(timeout=2.0) as http:
        cache = make_cache(http=http)
        assert cache.key("rsa-1", "RS256") is not None
        clock.now += 301
        server.set_mode("hang")
        refresher = threading.Thread(target=cache.key, args=("rsa-1", "RS256"))
        refresher.start()
        deadline = time.monotonic() + 5
        while server.request_count < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.request_count == 2
        started = time.monotonic()
        assert cache.key("rsa-1", "RS256") is not None
        assert time.monotonic() - started < 0.5
        refresher.join(timeout=10)


def test_close_leaves_an_injected_client_open(server: JwksServer, clock: FakeClock) -> None:
    with httpx.Client(timeout=2.0) as http:
        cache = JwksCache(server.url, http=http, clock=clock)
        assert cache.key("rsa-1", "RS256") is not None
        cache.close()
        assert not http.is_closed


@pytest.mark.parametrize("kwargs", [{"ttl_s": 0}, {"min_refresh_interval_s": -1}])
def test_unusable_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwksCache("https://idp.example/jwks", **kwargs)
