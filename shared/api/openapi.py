"""OpenAPI 3.1 generated from the route table and the pydantic models (never by hand).

``python -m shared.api.openapi`` prints it; ``make openapi`` writes ``openapi.json``;
a test fails when the committed file is stale. The builder is
``shared.api.openapi_document`` (the route table serves its document with it).
"""

from __future__ import annotations

import json
from typing import Any

from shared.api.openapi_document import openapi_document
from shared.api.routes import ROUTES

__all__ = ["build_openapi"]


def build_openapi() -> dict[str, Any]:
    """The whole document as a dict (deterministic: sorted keys when dumped)."""
    return openapi_document(ROUTES)


def render() -> str:
    return json.dumps(build_openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
