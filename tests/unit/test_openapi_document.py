"""The OpenAPI document says what validation enforces, and passes Redocly's rules
(issue 11 item 15). ``make lint`` runs Redocly itself; these checks need no Node."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel

from shared.api import models as m
from shared.api.http import ApiRequest
from shared.api.openapi import build_openapi
from shared.errors import ValidationFailed

DOC = build_openapi()
ID = "0b9c6c1e-4a55-4c5e-9a43-8c7a3d3c0a11"
RAW = {"hook": "h", "script": "s", "caption": "c", "hashtags": ["#a"]}


def _request_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"components": DOC["components"], "$ref": f"#/components/schemas/{model.__name__}"}


def _strings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "string" and "enum" not in node and "const" not in node:
            yield node
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_what_redocly_flagged_is_fixed() -> None:
    assert DOC["servers"]
    assert all(s["url"] for s in DOC["servers"])
    assert DOC["info"]["license"]["name"]
    assert DOC["info"]["license"].get("identifier") or DOC["info"]["license"].get("url")
    text = json.dumps(DOC["paths"]) + json.dumps(DOC["components"]["schemas"])
    unused = [n for n in DOC["components"]["schemas"] if f"#/components/schemas/{n}" not in text]
    assert unused == []


NESTED = {m.CreateAssetRequest: "AssetContent", m.AssetPatchRequest: "AssetContentPatch"}


@pytest.mark.parametrize(
    "model",
    [m.CreateRequest, m.RegenerateRequest, m.DraftPatchRequest, m.CreateAssetRequest,
     m.AssetPatchRequest],
)  # fmt: skip
def test_every_request_string_refuses_nul_in_the_document(model: type[BaseModel]) -> None:
    schema = DOC["components"]["schemas"]
    names = {model.__name__, *([NESTED[model]] if model in NESTED else [])}
    strings = [s for name in names for s in _strings(schema[name])]
    assert strings
    for s in strings:
        assert "pattern" in s, s
        assert re.search(s["pattern"], "a\x00b") is None, s


CASES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (m.CreateRequest, {"brief": "b", "platform": "tiktok"}),
    (m.CreateRequest, {"brief": "b", "platform": "tiktok", "variants": 2.0}),
    (m.CreateRequest, {"brief": "b", "platform": "tiktok", "variants": 2.5}),
    (m.CreateRequest, {"brief": "b", "platform": "tiktok", "variants": True}),
    (m.CreateRequest, {"brief": "b", "platform": "tiktok", "variants": "2"}),
    (m.CreateRequest, {"brief": "   ", "platform": "tiktok"}),
    (m.CreateRequest, {"brief": "\x1c", "platform": "tiktok"}),
    (m.CreateRequest, {"brief": "b\x00", "platform": "tiktok"}),
    (m.CreateRequest, {"brief": "b", "platform": "tiktok", "tone": "a\x00"}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "targeted", "variant_id": ID}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "targeted"}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "targeted", "variant_id": ID, "variants": 2}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "targeted", "variant_id": ID,
                           "fields": ["hook", "hook"]}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "full", "variants": 2}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "full", "variant_id": None, "fields": None}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "full", "fields": ["hook"]}),
    (m.RegenerateRequest, {"draft_id": ID, "mode": "full", "variant_id": ID}),
    (m.DraftPatchRequest, {}),
    (m.DraftPatchRequest, {"title": None}),
    (m.DraftPatchRequest, {"brief": None}),
    (m.DraftPatchRequest, {"platform": None}),
    (m.DraftPatchRequest, {"duration_seconds": 30.0}),
    (m.CreateAssetRequest, {"draft_id": ID, "variant_id": ID}),
    (m.CreateAssetRequest, {"draft_id": ID}),
    (m.CreateAssetRequest, {"draft_id": ID, "variant_id": ID, "platform": "tiktok"}),
    (m.CreateAssetRequest, {"draft_id": ID, "variant_id": ID, "raw": RAW}),
    (m.CreateAssetRequest, {"raw": RAW, "platform": "tiktok", "title": "t"}),
    (m.CreateAssetRequest, {"raw": RAW, "platform": "tiktok"}),
    (m.CreateAssetRequest, {"raw": RAW, "title": "t"}),
    (m.CreateAssetRequest, {"raw": {**RAW, "hook": "\x00"}, "platform": "tiktok", "title": "t"}),
    (m.CreateAssetRequest, {}),
    (m.AssetPatchRequest, {}),
    (m.AssetPatchRequest, {"title": None}),
    (m.AssetPatchRequest, {"title": "t\x00"}),
    (m.AssetPatchRequest, {"content": {}}),
    (m.AssetPatchRequest, {"content": {"hook": None}}),
    (m.AssetPatchRequest, {"content": {"hook": "h"}, "tags": ["a"]}),
]  # fmt: skip


@pytest.mark.parametrize(("model", "body"), CASES)
def test_the_document_accepts_exactly_what_validation_accepts(
    model: type[BaseModel], body: dict[str, Any]
) -> None:
    documented = jsonschema_rs.validator_for(_request_schema(model)).is_valid(body)
    request = ApiRequest("POST", "/", {}, {}, json.dumps(body).encode(), "r", {}, None, "x")
    try:
        request.parse(model)
        accepted = True
    except ValidationFailed:
        accepted = False
    assert documented == accepted, f"document says {documented}, the API says {accepted}"
