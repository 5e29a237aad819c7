"""What the Lua scripts must keep true that no single script shows, read from ``lua/``:
every refusal code they return is a ``RefusalCode``, and every hash field a script writes
is read by some script (no field is written and never read). Each scanner is tested on a
snippet, so it cannot pass vacuously."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.enforcement import RefusalCode

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"

# Hash fields are named by string literals in HSET (field, value pairs) and HGET/HMGET.
_CALL = re.compile(r"redis\.call\(\s*'(HSET|HGET|HMGET)'\s*,")
_LITERAL = re.compile(r"^'([^']*)'$")


def _arguments(source: str, start: int) -> list[str]:
    """The top-level, comma-separated arguments of the call whose '(' precedes ``start``."""
    depth, current, args = 0, "", []
    for ch in source[start:]:
        if ch == "(" or ch == "{":
            depth += 1
        elif ch == ")" or ch == "}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += ch
    args.append(current.strip())
    return args


def hash_fields(source: str) -> tuple[set[str], set[str]]:
    """(fields written by HSET, fields read by HGET/HMGET) in ``source``; literals only."""
    written: set[str] = set()
    read: set[str] = set()
    for match in _CALL.finditer(source):
        args = _arguments(source, match.end())[1:]  # after the key
        names = args[0::2] if match.group(1) == "HSET" else args
        literals = {m.group(1) for a in names if (m := _LITERAL.match(a))}
        (written if match.group(1) == "HSET" else read).update(literals)
    return written, read


# A refusal is {'refused', CODE, …} (admission) or {'busy', CODE, …} (lease refresh).
_REFUSAL = re.compile(r"\{\s*'(?:refused|busy)'\s*,\s*'([A-Z_]+)'")


def _all_lua() -> str:
    return "\n".join(p.read_text() for p in sorted(LUA_DIR.rglob("*.lua")))


def refusal_codes(source: str) -> set[str]:
    """Every code a script returns in a refusal reply."""
    return set(_REFUSAL.findall(source))


def test_every_refusal_code_the_scripts_return_is_a_refusal_code() -> None:
    assert refusal_codes(_all_lua()) == {code.value for code in RefusalCode}


def test_the_refusal_scanner_reads_both_reply_shapes() -> None:
    source = (
        "return {'refused', 'COOLDOWN_ACTIVE', plan.cooldown_ms, 0, until_ms - now}\n"
        "return {'busy', 'PROVIDER_BUSY', cap, provider_in_use}\n"
        "return {'admitted', plan_name}\n"
    )
    assert refusal_codes(source) == {"COOLDOWN_ACTIVE", "PROVIDER_BUSY"}


def test_every_written_hash_field_is_read() -> None:
    written, read = hash_fields(_all_lua())
    assert written, "the scanner found no HSET at all"
    assert written - read == set()


def test_the_scanner_reads_multi_line_hset_and_hmget() -> None:
    source = (
        "redis.call('HSET', KEYS[1], 'a', x, 'b', is_full and KEYS[6] or '',\n"
        "  'c', tonumber(ARGV[2]))\n"
        "local rec = redis.call('HMGET', key, 'a', 'b')\n"
        "local v = redis.call('HGET', KEYS[1], 'c')\n"
    )
    assert hash_fields(source) == ({"a", "b", "c"}, {"a", "b", "c"})


@pytest.mark.parametrize("extra", ["'orphan', 1", "'orphan', KEYS[2]"])
def test_the_scanner_finds_a_field_nobody_reads(extra: str) -> None:
    written, read = hash_fields(
        f"redis.call('HSET', k, 'a', 1, {extra})\nredis.call('HGET', k, 'a')"
    )
    assert written - read == {"orphan"}
