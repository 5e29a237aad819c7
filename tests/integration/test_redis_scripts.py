"""The script registry and both adapters on real Redis: NOSCRIPT recovery, wire shapes,
error translation and the raw scripts' contracts (TTLs, semaphore expiry)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
import redis
from upstash_redis.errors import UpstashError

from devtools.upstash_rest import UpstashRestServer, make_port
from shared.config import ConfigError, Settings
from shared.errors import InternalError, ServiceUnavailable
from shared.queue.signing import RedisTokenLedger
from shared.redis import (
    Keys,
    RedisPort,
    ScriptRegistry,
    TcpRedis,
    UpstashRedis,
    default_registry,
    redis_from_settings,
)
from shared.redis.scripts import LUA_DIR, UPSTASH_SHEBANG, is_noscript

SCRIPTS = sorted(p.stem for p in LUA_DIR.glob("*.lua"))


@pytest.fixture
def keys(run_prefix: str) -> Keys:
    return Keys(f"{run_prefix}:{uuid.uuid4().hex[:6]}")


_REF = re.compile(r"\b(KEYS|ARGV)\[(\d+)(\.\.n)?\]")


def _header_and_code(raw: str) -> tuple[str, str]:
    """The leading comment block, and the code below it with every comment removed."""
    lines = raw.splitlines()
    n = next(i for i, line in enumerate(lines) if not line.startswith("--"))
    code = "\n".join(line.split("--", 1)[0] for line in lines[n:])
    return "\n".join(lines[:n]), code


def _refs(text: str) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {"KEYS": set(), "ARGV": set()}
    for kind, index, _ in _REF.findall(text):
        found[kind].add(int(index))
    return found


def test_every_script_composes_with_a_header_and_no_leftover_includes() -> None:
    registry = ScriptRegistry()
    for name in SCRIPTS:
        raw = (LUA_DIR / f"{name}.lua").read_text()
        source = registry.get(name).source
        assert source.startswith(f"-- {name}.lua"), name
        assert "--#include" not in source, name
        for fragment in re.findall(r"^--#include (\w+)$", raw, re.MULTILINE):
            body = (LUA_DIR / "lib" / f"{fragment}.lua").read_text()
            assert body.strip() in source, (name, fragment)  # expanded, not just deleted
        # The header documents exactly the KEYS and ARGV the code reads, numbered 1..n:
        # a slot added, removed or renumbered without its header line fails here.
        header, code = _header_and_code(raw)
        documented, used = _refs(header), _refs(code)
        for kind in ("KEYS", "ARGV"):
            assert documented[kind] == set(range(1, len(documented[kind]) + 1)), (name, kind)
            if f"{kind}[{max(documented[kind], default=0)}..n]" in header:
                assert used[kind] <= documented[kind], (name, kind)
                assert f"#{kind}" in code, (name, kind)
            else:
                assert used[kind] == documented[kind], (name, kind)
    assert registry.get("admission") is registry.get("admission")
    assert default_registry() is default_registry()


def test_fragments_expand_once(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.lua").write_text("--#include b\nlocal a = 1\n")
    (tmp_path / "lib" / "b.lua").write_text("local b = 2\n")
    (tmp_path / "s.lua").write_text("--#include a\n--#include b\nreturn a + b\n")
    source = ScriptRegistry(tmp_path).get("s").source
    assert source.count("local b = 2") == 1
    assert source.count("local a = 1") == 1


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_loads_on_this_redis(name: str, redis_url: str) -> None:
    port = TcpRedis.from_url(redis_url)
    sha = port._client.script_load(default_registry().get(name).source)
    assert sha == default_registry().get(name).sha


def test_noscript_recovery_after_script_flush_on_a_fresh_client(redis_url: str, keys: Keys) -> None:
    # SCRIPT FLUSH drops cached scripts, never data; any other client recovers the same way.
    port = TcpRedis.from_url(redis_url)
    port.script_flush()
    fresh = TcpRedis.from_url(redis_url)
    assert fresh.run("cooldown", [keys.regen_cooldown("u", "d")], [0, 1000]) == [1, 0]
    assert fresh.round_trips == 2  # EVALSHA → NOSCRIPT, then EVAL
    assert fresh.run("cooldown", [keys.regen_cooldown("u", "d")], [0, 1000])[0] == 0
    assert fresh.round_trips == 3


def test_noscript_recovery_through_the_rest_endpoint(
    rest_server: UpstashRestServer, redis_url: str, keys: Keys
) -> None:
    port = make_port("upstash", redis_url, rest_server)
    key = keys.regen_cooldown("u", "rest")
    port.run("cooldown", [key], [0, 1000])
    trips = port.round_trips
    port.run("cooldown", [key], [0, 1000])
    assert port.round_trips == trips + 1
    rest_server.forget_scripts()  # what a SCRIPT FLUSH looks like to this endpoint's clients
    assert port.run("cooldown", [key], [0, 1000])[0] == 0
    assert port.round_trips == trips + 3


@pytest.mark.parametrize(
    ("exc", "noscript"),
    [
        (redis.exceptions.NoScriptError("No matching script."), True),
        (redis.exceptions.ResponseError("NOSCRIPT No matching script."), False),
        (UpstashError("NOSCRIPT No matching script. Please use EVAL."), True),
        (UpstashError("No matching script. Please use EVAL."), True),
        (UpstashError("WRONGTYPE Operation against a key"), False),
        (RuntimeError("NOSCRIPT"), False),
    ],
)
def test_noscript_is_told_apart_by_the_library_that_raised_it(
    exc: Exception, noscript: bool
) -> None:
    # Matched on the exception's module, so neither library is imported to ask.
    assert is_noscript(exc) is noscript


def test_upstash_scripts_carry_the_key_locking_shebang(
    rest_server: UpstashRestServer, redis_url: str
) -> None:
    port = make_port("upstash", redis_url, rest_server)
    script = port._script("admission")
    assert script.source.startswith(UPSTASH_SHEBANG)
    assert script.sha != default_registry().get("admission").sha
    assert not default_registry().get("admission").source.startswith("#!")


def test_rest_endpoint_wire_format(rest_server: UpstashRestServer, keys: Keys) -> None:
    import httpx

    key = keys.gen_used("u", "202611")
    auth = {"Authorization": f"Bearer {rest_server.token}"}
    b64 = {**auth, "Upstash-Encoding": "base64"}
    with httpx.Client(base_url=rest_server.url) as http:
        assert http.post("/", json=["SET", key, "hi"]).status_code == 401
        assert http.post("/", json=["SET", key, "hi"], headers=b64).json() == {"result": "OK"}
        assert http.post("/", json=["GET", key], headers=b64).json() == {"result": "aGk="}
        assert http.post("/", json=["GET", key], headers=auth).json() == {"result": "hi"}
        missing = http.post("/", json=["EVALSHA", "0" * 40, 0], headers=auth)
        assert missing.status_code == 400
        assert missing.json()["error"].startswith("NOSCRIPT")
        batch = [["INCR", key + "n"], ["GET", key], ["INCR", key]]
        piped = http.post("/pipeline", json=batch, headers=b64).json()
        assert piped[0] == {"result": 1}
        assert piped[1] == {"result": "aGk="}
        assert "error" in piped[2]
        tx = http.post("/multi-exec", json=[["INCR", key + "n"], ["GET", key]], headers=b64)
        assert tx.json() == [{"result": 2}, {"result": "aGk="}]
        http.post("/", json=["DEL", key, key + "n"], headers=auth)


def test_counter_ttl_on_first_increment_and_limit(
    port: RedisPort, keys: Keys, redis_url: str
) -> None:
    import redis

    key = keys.gen_hour("u", "2026112717")
    expireat = 4_102_444_800  # 2100-01-01
    assert port.run("counter_with_limit", [key], [2, 1, expireat, ""]) == ["need_seed", 0, 2]
    assert port.get(key) is None  # a refusal to decide writes nothing
    assert port.run("counter_with_limit", [key], [2, 1, expireat, 0]) == ["ok", 1, 2]
    ttl_s = redis.Redis.from_url(redis_url).ttl(key)  # EXPIRETIME needs Redis 7; TTL is 6.2
    assert abs(ttl_s - (expireat - time.time())) < 5
    assert port.run("counter_with_limit", [key], [2, 1, expireat, ""]) == ["ok", 2, 2]
    assert port.run("counter_with_limit", [key], [2, 1, expireat, ""]) == ["refused", 2, 2]
    assert port.run("counter_with_limit", [key], [-1, 5, expireat, ""]) == ["ok", 7, -1]
    assert port.get(key) == "7"
    port.delete(key)


def test_semaphore_limit_and_expiry(port: RedisPort, keys: Keys) -> None:
    key = keys.user_leases("u")
    assert port.run("semaphore_acquire", [key], [0, "a", 2, 1000])[0] == 1
    assert port.run("semaphore_acquire", [key], [0, "b", 2, 1000])[0] == 1
    refused = port.run("semaphore_acquire", [key], [0, "c", 2, 1000])
    assert refused[0] == 0
    assert refused[1] == 2
    assert 0 < refused[2] <= 1000
    assert port.run("semaphore_acquire", [key], [1001, "c", 2, 1000])[:2] == [1, 1]
    assert port.run("semaphore_release", [keys.lease("c"), key], ["c"]) == 1
    assert port.run("semaphore_release", [keys.lease("c"), key], ["c"]) == 0


def test_cooldown_blocks_until_expiry(port: RedisPort, keys: Keys) -> None:
    key = keys.regen_cooldown("u", "d")
    assert port.run("cooldown", [key], [0, 20_000]) == [1, 0]
    blocked = port.run("cooldown", [key], [0, 20_000])
    assert blocked[0] == 0
    assert 19_000 < blocked[1] <= 20_000
    assert port.run("cooldown", [key], [20_001, 20_000]) == [1, 0]


def test_a_zero_cooldown_starts_nothing(port: RedisPort, keys: Keys) -> None:
    # A plan without a cooldown (the wrapper for a user without a plan) writes no marker.
    key = keys.regen_cooldown("u", "none")
    assert port.run("cooldown", [key], [0, 0]) == [1, 0]
    assert port.get(key) is None
    assert port.run("cooldown", [key], [0, 0]) == [1, 0]


def test_get_set_delete_ping(port: RedisPort, keys: Keys) -> None:
    key = keys.refund_marker(uuid.uuid4().hex)
    assert port.ping() is True
    assert port.get(key) is None
    port.set(key, "ü", px_ms=10_000)
    assert port.get(key) == "ü"
    assert port.delete(key) == 1


def test_qstash_tokens_are_remembered_once_for_their_life(
    port: RedisPort, keys: Keys, redis_url: str
) -> None:
    """SET NX PX on both adapters, through the ledger the worker's verifier uses."""
    ledger = RedisTokenLedger(port, keys)
    jti = f"jwt_{uuid.uuid4().hex}"
    before = port.round_trips
    assert ledger.first_use(jti, 300) is True
    assert port.round_trips - before == 1
    assert ledger.first_use(jti, 300) is False
    assert ledger.first_use(jti + "x", 300) is True
    raw = redis.Redis.from_url(redis_url)
    try:
        assert 299_000 < raw.pttl(keys.qstash_token(jti)) <= 300_000
    finally:
        raw.close()


def test_unreachable_redis_fails_closed() -> None:
    tcp = TcpRedis.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)
    with pytest.raises(ServiceUnavailable):
        tcp.run("cooldown", ["k"], [0, 1])
    with pytest.raises(ServiceUnavailable):
        tcp.ping()
    rest = UpstashRedis("http://127.0.0.1:1", "t", timeout_s=0.2, rest_retries=0)
    with pytest.raises(ServiceUnavailable):
        rest.run("cooldown", ["k"], [0, 1])
    with pytest.raises(ServiceUnavailable):
        rest.get("k")


def test_redis_errors_become_internal_errors(port: RedisPort, keys: Keys) -> None:
    key = keys.user_leases("wrongtype")
    port.set(key, "not a zset")
    with pytest.raises(InternalError):
        port.run("semaphore_acquire", [key], [0, "a", 1, 1000])
    port.delete(key)


def test_wrong_token_is_an_error(rest_server: UpstashRestServer) -> None:
    port = UpstashRedis(rest_server.url, "wrong")
    with pytest.raises(InternalError):
        port.ping()


def test_redis_from_settings(redis_url: str) -> None:
    upstash = redis_from_settings(
        Settings.from_env(
            {"UPSTASH_REDIS_REST_URL": "http://127.0.0.1:1", "UPSTASH_REDIS_REST_TOKEN": "t"}
        )
    )
    assert isinstance(upstash, UpstashRedis)
    tcp = redis_from_settings(Settings.from_env({"REDIS_URL": redis_url}))
    assert isinstance(tcp, TcpRedis)
    assert tcp.ping()
    with pytest.raises(ConfigError):
        redis_from_settings(Settings.from_env({"APP_ENV": "production"}))
