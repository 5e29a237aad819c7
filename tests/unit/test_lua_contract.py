"""What the Lua scripts and the Python calling them must agree on, read from ``lua/``:
each script's header lists its KEYS and ARGV in the field order of the dataclasses in
its module under ``shared/enforcement/scripts/`` (``SCRIPT_SLOTS``); every refusal code
the scripts return is a ``RefusalCode``; every hash field a script writes is read by some
script; every limit a script reads from its plan is in the plan table, by name. Each
scanner is tested on a snippet, so it cannot pass vacuously."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from shared.enforcement.scripts import SCRIPT_SLOTS
from shared.enforcement.scripts.admission import RefusalCode, plan_table, read_plan_table
from shared.enforcement.scripts.common import wire
from shared.enforcement.scripts.semaphore_release import SemaphoreReleaseKeys

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


# -- KEYS / ARGV against the dataclasses ----------------------------------------------------

# ``KEYS[2..n]`` is a variadic slot: the script's last, one tuple field in the dataclass.
_SLOT = re.compile(r"\b(KEYS|ARGV)\[(\d+)(?:\.\.n)?\]")


def header_slots(source: str) -> dict[str, list[str]]:
    """``{"KEYS": [name of KEYS[1], …], "ARGV": […]}`` from a script's leading comment.

    A slot's name is its description up to the first ``, : ( | = {`` (several slots may
    share a line), snake_cased: ``ARGV[15] lease TTL, ms`` is ``lease_ttl``.
    """
    found: dict[str, dict[int, str]] = {"KEYS": {}, "ARGV": {}}
    for line in source.splitlines():
        if not line.startswith("--"):
            break
        parts = _SLOT.split(line)
        for kind, index, text in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
            name = re.split(r"[,:(|={]", text)[0].strip()
            found[kind][int(index)] = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return {kind: [slots[i] for i in sorted(slots)] for kind, slots in found.items()}


def mismatches(slots: list[str], field_names: list[str]) -> list[tuple[int, str, str]]:
    """(slot number, header name, field) wherever field *i* does not begin with slot *i*."""
    bad = [
        (i + 1, slot, name)
        for i, (slot, name) in enumerate(zip(slots, field_names, strict=False))
        if not name.startswith(slot)
    ]
    if len(slots) != len(field_names):
        bad.append((max(len(slots), len(field_names)), "<count>", str(len(field_names))))
    return bad


def test_every_script_has_its_dataclasses() -> None:
    scripts = {p.stem for p in LUA_DIR.glob("*.lua")}
    assert scripts, "no script found in lua/"
    assert scripts == set(SCRIPT_SLOTS)


@pytest.mark.parametrize("script", sorted(SCRIPT_SLOTS))
def test_script_header_lists_its_dataclass_fields_in_order(script: str) -> None:
    header = header_slots((LUA_DIR / f"{script}.lua").read_text())
    for kind, cls in zip(("KEYS", "ARGV"), SCRIPT_SLOTS[script], strict=True):
        assert mismatches(header[kind], [f.name for f in fields(cls)]) == [], (script, kind)


def test_the_header_scanner_catches_a_moved_or_missing_slot() -> None:
    source = (
        "-- x.lua\n"
        "-- KEYS[1] lease record, hash        KEYS[2] user semaphore\n"
        "-- ARGV[1] time offset, ms (tests move it)\n"
        '-- ARGV[2] fence: claim number | ""\n'
        "local x = 1 -- KEYS[9] after the header is not part of it\n"
    )
    header = header_slots(source)
    assert header == {"KEYS": ["lease_record", "user_semaphore"], "ARGV": ["time_offset", "fence"]}
    assert mismatches(header["ARGV"], ["time_offset_ms", "fence"]) == []
    assert mismatches(header["ARGV"], ["fence", "time_offset_ms"]) != []
    assert mismatches(header["KEYS"], ["lease_record"]) != []


def test_the_header_scanner_reads_a_variadic_slot() -> None:
    source = "-- KEYS[1]    lease record, hash\n-- KEYS[2..n] semaphores, zsets\n"
    assert header_slots(source)["KEYS"] == ["lease_record", "semaphores"]


def test_wire_spreads_a_variadic_slot_in_place() -> None:
    keys = SemaphoreReleaseKeys(lease_record="l", semaphores=("u", "p"))
    assert wire(keys) == ["l", "u", "p"]


# -- the plan table, by name -----------------------------------------------------------------

# ``plan.<field>`` in a script that decodes the table (``lib/plans.lua``).
_PLAN_FIELD = re.compile(r"\bplan\.([a-z_]+)")


def plan_fields(source: str) -> set[str]:
    """Every limit a script reads from its plan (``plan.monthly`` …)."""
    return set(_PLAN_FIELD.findall(source))


def test_every_plan_limit_the_scripts_read_is_in_the_plan_table() -> None:
    table = read_plan_table(plan_table())
    read = plan_fields(_all_lua())
    assert read, "the scanner found no plan.<field> read at all"
    for name, limits in table.items():
        assert read <= set(limits), (name, read - set(limits))
        assert set(limits) <= read, (name, "passed but never read", set(limits) - read)


def test_the_plan_field_scanner_finds_a_limit_nobody_passes() -> None:
    source = "if hour + 1 > plan.hourly then\nlocal x = plan.new_limit + plans.y\n"
    assert plan_fields(source) == {"hourly", "new_limit"}
