"""The deployed Cloud Functions: one entry per function (used by the local server,
the OpenAPI generator and the Terraform invariant tests).

``module`` is the file under ``functions/``; ``entry_point`` the decorated handler;
``public`` says whether anonymous callers may invoke it at the network level (the API
functions authenticate by bearer token, the worker by QStash signature, the Stripe
webhook by ``Stripe-Signature``: all of them check in code); ``paths`` are the
path prefixes the function serves.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FUNCTIONS", "FunctionSpec", "function_for_path"]


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    module: str
    entry_point: str
    paths: tuple[str, ...]
    auth: str  # "bearer", "qstash", "stripe" or "none"
    hot: bool = False  # on the interactive path: eligible for min instances


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("create", "create", "create", ("/v1/create",), "bearer", hot=True),
    FunctionSpec("regenerate", "regenerate", "regenerate", ("/v1/regenerate",), "bearer", hot=True),
    FunctionSpec(
        "generations", "generations", "generations", ("/v1/generations/",), "bearer", hot=True
    ),
    FunctionSpec("drafts", "drafts", "drafts", ("/v1/drafts/",), "bearer"),
    FunctionSpec("library", "library", "library", ("/v1/library/assets",), "bearer"),
    FunctionSpec("usage", "usage", "usage", ("/v1/usage",), "bearer"),
    FunctionSpec("me", "me", "me", ("/v1/me/",), "bearer"),
    FunctionSpec("admin", "admin", "admin", ("/v1/admin/",), "bearer"),
    FunctionSpec("billing", "billing", "billing", ("/v1/billing/",), "bearer"),
    FunctionSpec(
        "stripe-webhook", "stripe_webhook", "stripe_webhook", ("/webhooks/stripe",), "stripe"
    ),
    FunctionSpec("health", "health", "health", ("/healthz", "/readyz", "/openapi.json"), "none"),
    FunctionSpec("worker", "worker", "worker", ("/worker/",), "qstash"),
)


def function_for_path(path: str) -> FunctionSpec | None:
    """The function that serves ``path`` (longest matching prefix), or None."""
    matches = [f for f in FUNCTIONS for p in f.paths if path == p.rstrip("/") or path.startswith(p)]
    return max(matches, key=lambda f: max(len(p) for p in f.paths), default=None)
