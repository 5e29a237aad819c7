"""docs/api.md, the API contract in words, names everything a client can meet: every
operation of openapi.json (read with the JSON parser, the document `make openapi`
generates from the code), every status a generation can have, every error code the server
can answer in a body and every ``error.code`` a finished generation can carry.

A new route, status or code without its paragraph in docs/api.md fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.error_codes import job_codes, server_codes

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _openapi() -> dict[str, object]:
    document: dict[str, object] = json.loads((ROOT / "openapi.json").read_text())
    return document


def _operations() -> list[tuple[str, str]]:
    paths = _openapi()["paths"]
    assert isinstance(paths, dict)
    return [
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method in METHODS
    ]


def _named(doc: str, method: str, path: str) -> bool:
    """``METHOD /path`` in the text, the path not continued (``/v1/drafts`` is not
    ``/v1/drafts/{id}``)."""
    pattern = rf"\b{method}\s+{re.escape(path)}(?![\w/{{}}-])"
    return re.search(pattern, doc) is not None


def _code_named(doc: str, code: str) -> bool:
    return f"`{code}`" in doc


def test_every_operation_of_openapi_is_in_the_api_doc() -> None:
    doc = DOC.read_text()
    operations = _operations()
    assert len(operations) > 30, operations  # the parse found the document's operations
    missing = [f"{m} {p}" for m, p in operations if not _named(doc, m, p)]
    assert not missing, f"docs/api.md does not name {missing}"


def test_every_generation_status_is_in_the_api_doc() -> None:
    schemas = _openapi()["components"]
    assert isinstance(schemas, dict)
    statuses = schemas["schemas"]["GenerationResponse"]["properties"]["status"]["enum"]
    assert "queued" in statuses
    doc = DOC.read_text()
    missing = [s for s in statuses if f'"{s}"' not in doc]
    assert not missing, f"docs/api.md does not list the generation statuses {missing}"


def test_every_error_code_the_server_answers_is_in_the_api_doc() -> None:
    codes = server_codes()
    assert {"COOLDOWN_ACTIVE", "INVALID_CURSOR", "GENERATION_FINISHED"} <= codes  # scan works
    doc = DOC.read_text()
    missing = sorted(code for code in codes if not _code_named(doc, code))
    assert not missing, f"docs/api.md does not name the error codes {missing}"


def test_every_job_error_code_is_in_the_api_doc() -> None:
    codes = job_codes()
    assert {"TIMED_OUT", "DELIVERY_FAILED", "CANCELLED", "PROVIDER_BAD_OUTPUT"} <= codes
    doc = DOC.read_text()
    missing = sorted(code for code in codes if not _code_named(doc, code))
    assert not missing, f"docs/api.md does not name the generation error codes {missing}"


def test_the_operation_check_sees_a_missing_one() -> None:
    """The matcher is not fooled by a longer path or another method."""
    doc = "**GET /v1/drafts/{id}**, **POST /v1/create**"
    assert not _named(doc, "GET", "/v1/drafts")
    assert not _named(doc, "DELETE", "/v1/drafts/{id}")
    assert _named(doc, "GET", "/v1/drafts/{id}")
    assert _named(doc, "POST", "/v1/create")
