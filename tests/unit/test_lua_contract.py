"""What the Lua scripts and the Python that reads their replies must agree on, read from
``lua/`` itself. Each scanner is tested on a snippet, so it cannot pass vacuously."""

from __future__ import annotations

import re
from pathlib import Path

from shared.enforcement import RefusalCode

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"

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
