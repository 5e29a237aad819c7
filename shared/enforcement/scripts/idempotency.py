"""The four ``lua/idem_*.lua`` scripts over one idempotency record (``lib/idempotency.lua``),
for endpoints without admission: claim (``idem_begin``), read (``idem_peek``), store the
first response (``idem_complete``), forget a pending key (``idem_drop``). They share one
KEYS layout and one reply; each has its ARGV here, with the builders, the parser and what
the state means at the boundary (``enforce_idempotency``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.enforcement.scripts.common import ScriptSlots, parse_stored, wire
from shared.enforcement.values import StoredResponse
from shared.errors import Conflict, IdempotencyKeyReused
from shared.redis.keys import Keys

__all__ = [
    "BEGIN",
    "COMPLETE",
    "DROP",
    "PEEK",
    "SCRIPTS",
    "IdemBeginArgs",
    "IdemCompleteArgs",
    "IdemDropArgs",
    "IdemKeys",
    "IdemPeekArgs",
    "IdempotencyKind",
    "IdempotencyState",
    "enforce_idempotency",
    "idem_begin_args",
    "idem_complete_args",
    "idem_drop_args",
    "idem_keys",
    "idem_peek_args",
    "parse_flag",
    "parse_idempotency",
]


@dataclass(frozen=True, slots=True)
class IdemKeys:
    """KEYS of all four idempotency scripts."""

    idempotency_record: str


@dataclass(frozen=True, slots=True)
class IdemBeginArgs:
    request_fingerprint: str
    record_ttl_s: str


@dataclass(frozen=True, slots=True)
class IdemPeekArgs:
    request_fingerprint: str


@dataclass(frozen=True, slots=True)
class IdemCompleteArgs:
    request_fingerprint: str
    http_status: str
    body: str
    headers_json: str
    record_ttl_s: str


@dataclass(frozen=True, slots=True)
class IdemDropArgs:
    request_fingerprint: str


BEGIN = ScriptSlots("idem_begin", IdemKeys, IdemBeginArgs)
PEEK = ScriptSlots("idem_peek", IdemKeys, IdemPeekArgs)
COMPLETE = ScriptSlots("idem_complete", IdemKeys, IdemCompleteArgs)
DROP = ScriptSlots("idem_drop", IdemKeys, IdemDropArgs)
SCRIPTS = (BEGIN, PEEK, COMPLETE, DROP)


def idem_keys(keys: Keys, user_id: str, scope: str, idem_key: str) -> list[str]:
    """KEYS of every ``idem_*.lua``."""
    return wire(IdemKeys(idempotency_record=keys.idem(user_id, scope, idem_key)))


def idem_begin_args(fingerprint: str, record_ttl_s: int) -> list[str]:
    """ARGV of ``idem_begin.lua``."""
    return wire(IdemBeginArgs(request_fingerprint=fingerprint, record_ttl_s=str(record_ttl_s)))


def idem_peek_args(fingerprint: str) -> list[str]:
    """ARGV of ``idem_peek.lua``."""
    return wire(IdemPeekArgs(request_fingerprint=fingerprint))


def idem_complete_args(fingerprint: str, response: StoredResponse, record_ttl_s: int) -> list[str]:
    """ARGV of ``idem_complete.lua``: the response byte-for-byte, headers as sorted JSON."""
    slots = IdemCompleteArgs(
        request_fingerprint=fingerprint,
        http_status=str(response.status),
        body=response.body,
        headers_json=json.dumps(response.headers, separators=(",", ":"), sort_keys=True),
        record_ttl_s=str(record_ttl_s),
    )
    return wire(slots)


def idem_drop_args(fingerprint: str) -> list[str]:
    """ARGV of ``idem_drop.lua``."""
    return wire(IdemDropArgs(request_fingerprint=fingerprint))


class IdempotencyKind(StrEnum):
    NEW = "new"
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    KEY_REUSED = "key_reused"


@dataclass(frozen=True, slots=True)
class IdempotencyState:
    """The state of an Idempotency-Key; ``replay`` is set for ``REPLAY``."""

    kind: IdempotencyKind
    replay: StoredResponse | None = None


def parse_idempotency(reply: Sequence[Any]) -> IdempotencyState:
    """The typed reply of ``idem_begin.lua`` and ``idem_peek.lua``."""
    kind = IdempotencyKind(str(reply[0]))
    replay = parse_stored(reply) if kind is IdempotencyKind.REPLAY else None
    return IdempotencyState(kind, replay)


def parse_flag(reply: Any) -> bool:
    """The 1 / 0 reply of ``idem_complete.lua`` (stored) and ``idem_drop.lua`` (dropped)."""
    return bool(int(reply))


def enforce_idempotency(state: IdempotencyState) -> StoredResponse | None:
    """``None`` to proceed (a new key), the stored response to replay; else raises 409/422."""
    if state.kind is IdempotencyKind.NEW:
        return None
    if state.kind is IdempotencyKind.REPLAY and state.replay is not None:
        return state.replay
    if state.kind is IdempotencyKind.IN_PROGRESS:
        raise Conflict()  # its code is IDEMPOTENCY_IN_PROGRESS
    raise IdempotencyKeyReused()
