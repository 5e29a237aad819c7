"""The Lua script registry: loads ``lua/*.lua`` once, expands fragments, runs by EVALSHA.

A script may include a fragment from ``lua/lib/`` with a line ``--#include name``; each
fragment is expanded at most once per script (so fragments may include each other). A
``Script`` knows its SHA1; ``run_script`` tries EVALSHA and, when the server does not know
the script (a restart, a failover, ``SCRIPT FLUSH``), falls back to EVAL — which also
caches it — so callers never see NOSCRIPT. Both NOSCRIPT spellings are recognised:
redis-py's ``NoScriptError`` and Upstash's ``UpstashError`` ("NOSCRIPT …" or
"No matching script. Please use EVAL."), told apart by the exception's module so that
neither library is imported here (an instance loads only the one its adapter uses).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "LUA_DIR",
    "UPSTASH_SHEBANG",
    "Script",
    "ScriptRegistry",
    "ScriptTransport",
    "default_registry",
    "is_noscript",
    "run_script",
]

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
UPSTASH_SHEBANG = "#!lua flags=allow-key-locking\n"
"""Upstash then locks only the declared KEYS; plain Redis rejects the flag (REFERENCE.md)."""

_INCLUDE = re.compile(r"^--#include ([A-Za-z0-9_]+)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Script:
    """One composed Lua script and the SHA1 the server will know it by."""

    name: str
    source: str
    sha: str

    @classmethod
    def of(cls, name: str, source: str) -> Script:
        """A script whose SHA1 is computed from ``source``."""
        return cls(name, source, hashlib.sha1(source.encode()).hexdigest())  # noqa: S324

    def with_header(self, header: str) -> Script:
        """The same script with ``header`` prepended (e.g. the Upstash shebang)."""
        return Script.of(self.name, header + self.source)


class ScriptRegistry:
    """Composed scripts by name, read from disk once per process (thread-safe)."""

    def __init__(self, lua_dir: Path = LUA_DIR) -> None:
        self._dir = lua_dir
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Script:
        """The script ``lua/<name>.lua`` with its fragments expanded."""
        script = self._scripts.get(name)
        if script is None:
            with self._lock:
                script = self._scripts.get(name) or Script.of(name, self.compose(name))
                self._scripts[name] = script
        return script

    def compose(self, name: str) -> str:
        """Source of ``name`` with every ``--#include`` expanded once; raises on a missing file."""
        return self._expand((self._dir / f"{name}.lua").read_text(encoding="utf-8"), set())

    def _expand(self, text: str, seen: set[str]) -> str:
        def include(match: re.Match[str]) -> str:
            fragment = match.group(1)
            if fragment in seen:
                return f"-- (fragment {fragment} already included)"
            seen.add(fragment)
            body = (self._dir / "lib" / f"{fragment}.lua").read_text(encoding="utf-8")
            return self._expand(body, seen).rstrip("\n")

        return _INCLUDE.sub(include, text)


_default: ScriptRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ScriptRegistry:
    """The process-wide registry over the repository's ``lua/`` folder."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ScriptRegistry()
        return _default


class ScriptTransport(Protocol):
    """The two calls ``run_script`` needs from a client (each one network round trip)."""

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[str]) -> Any: ...

    def eval(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any: ...


def is_noscript(exc: BaseException) -> bool:
    """True for "the server does not know this script", from redis-py or Upstash.

    Only the library that raised ``exc`` (already loaded, then) is imported.
    """
    library = type(exc).__module__.partition(".")[0]
    if library == "redis":
        from redis.exceptions import NoScriptError

        return isinstance(exc, NoScriptError)
    if library == "upstash_redis":
        from upstash_redis.errors import UpstashError

        text = str(exc)
        return isinstance(exc, UpstashError) and (
            "NOSCRIPT" in text or "No matching script" in text
        )
    return False


def run_script(
    transport: ScriptTransport, script: Script, keys: Sequence[str], args: Sequence[str]
) -> Any:
    """EVALSHA ``script``; on NOSCRIPT, EVAL it (which also caches it for the next call)."""
    try:
        return transport.evalsha(script.sha, keys, args)
    except Exception as exc:  # anything but NOSCRIPT is raised again
        if not is_noscript(exc):
            raise
    return transport.eval(script.source, keys, args)
