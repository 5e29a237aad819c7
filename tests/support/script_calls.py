"""Every Lua script call a ``RedisPort`` makes, as sent: a test's view of the wire (the
call still runs against the real Redis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest

from shared.redis.client import Arg, RedisPort

__all__ = ["ScriptCall", "record_script_calls"]


class ScriptCall(NamedTuple):
    name: str
    keys: list[str]
    args: list[str]


def record_script_calls(monkeypatch: pytest.MonkeyPatch, port: RedisPort) -> list[ScriptCall]:
    """The calls ``port.run`` makes from now on (undone with ``monkeypatch``)."""
    calls: list[ScriptCall] = []
    run = port.run

    def recording(name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        calls.append(ScriptCall(name, list(keys), [str(a) for a in args]))
        return run(name, keys, args)

    monkeypatch.setattr(port, "run", recording)
    return calls
