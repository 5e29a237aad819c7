"""The error codes the server can answer, collected from the code (not from a list kept by
hand), for the checks that a client or a document names each of them.

``server_codes``: the codes an HTTP error body can carry. ``job_codes``: the codes a
generation that ended ``failed`` or ``cancelled`` carries in its own ``error.code``.
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.ai import errors as ai_errors
from shared.db import generations
from shared.enforcement.scripts.admission import RefusalCode

__all__ = ["job_codes", "server_codes"]

ROOT = Path(__file__).resolve().parents[2]
_SPELLED = re.compile(r'(?:default_code\s*=|\bcode=)\s*"([A-Z][A-Z_]+)"')
# The worker ends a job with `_fail(deps, gen, "CODE", …)` or raises `ProviderError("CODE", …)`.
_JOB_SPELLED = re.compile(r'(?:ProviderError\(|\bdeps, gen, )\s*"([A-Z][A-Z_]+)"')


def server_codes() -> set[str]:
    """Every error code the server can put in a body: the refusal codes of the Lua
    scripts and each code spelled in shared/ (`default_code = "…"`, `code="…"`)."""
    codes = {code.value for code in RefusalCode}
    for path in (ROOT / "shared").rglob("*.py"):
        codes |= set(_SPELLED.findall(path.read_text()))
    return codes - {"ABORTED"}  # a log event's field, never an error body


def job_codes() -> set[str]:
    """Every ``error.code`` of a finished generation: the AI client's codes, the cancel and
    undone-admission codes, and each code the worker spells when it ends a job."""
    codes = {name for name in ai_errors.__all__ if name.startswith("PROVIDER_")}
    codes |= {generations.CANCELLED, generations.ENQUEUE_FAILED}
    for path in (ROOT / "shared" / "services").rglob("*.py"):
        codes |= set(_JOB_SPELLED.findall(path.read_text()))
    return codes
