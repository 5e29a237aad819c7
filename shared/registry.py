"""The deployed Cloud Functions: the one source of deployment truth.

One entry per function. The local server, the OpenAPI generator, ``make package``
(``scripts/package.py``) and Terraform all read it; Terraform through
``terraform/functions.json``, generated from this module by ``make functions-json``
(``python -m shared.registry``) and kept equal to it by a test, like ``openapi.json``.
Adding a function = one entry here + one module under ``functions/``.

``module`` is the file under ``functions/``; ``entry_point`` the decorated handler;
``auth`` how callers are authenticated, always in code (``bearer`` tokens, ``qstash`` or
``stripe`` signatures, ``none`` for health), which is why every function may be public at
the network level; ``paths`` are the path prefixes it serves; ``needs`` the capabilities
it uses, from which follow the secrets it mounts and the settings it requires at start-up
(``shared.needs.NEED_SECRETS``, ``Settings.missing_for``). The rest sizes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from shared.needs import NEED_SECRETS, OPTIONAL_NEEDS, Need

__all__ = [
    "FUNCTIONS",
    "FunctionSpec",
    "deployment_manifest",
    "function_by_name",
    "function_for_path",
]

# A function's name is part of its Cloud Run service and service account ids
# ("<prefix>-<name>": 6 to 30 characters with a prefix of 3 to 14).
_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9-]{1,14}$")
_MEMORY_RE: Final = re.compile(r"^[0-9]+(Mi|Gi)$")

_P, _R, _A = Need.POSTGRES, Need.REDIS, Need.AUTH


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    module: str
    entry_point: str
    paths: tuple[str, ...]
    auth: str  # "bearer", "qstash", "stripe" or "none"
    needs: frozenset[Need]
    hot: bool = False  # on the interactive path: eligible for min instances
    memory: str = "512Mi"
    cpu: str = "1"
    timeout_s: int = 30
    # Concurrency > 1 needs >= 1 vCPU; the handlers are I/O bound (Postgres, Redis, the
    # provider) and thread-safe, so one instance serves several requests at once.
    concurrency: int = 8
    max_instances: int = 5

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"function name {self.name!r} must match {_NAME_RE.pattern}")
        if not _MEMORY_RE.match(self.memory):
            raise ValueError(f"{self.name}: memory {self.memory!r} must look like 512Mi or 1Gi")
        if self.auth not in ("bearer", "qstash", "stripe", "none"):
            raise ValueError(f"{self.name}: unknown auth {self.auth!r}")
        if (self.auth == "bearer") != (Need.AUTH in self.needs):
            raise ValueError(f"{self.name}: bearer functions, and only they, need AUTH")

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret environment variables this function always mounts, sorted."""
        needs = self.needs - OPTIONAL_NEEDS
        return tuple(sorted({s for need in needs for s in NEED_SECRETS[need]}))

    @property
    def optional_secrets(self) -> dict[str, tuple[str, ...]]:
        """Optional need => the secrets it adds when configured (``OPTIONAL_NEEDS``)."""
        return {
            need.value: tuple(sorted(NEED_SECRETS[need]))
            for need in sorted(self.needs & OPTIONAL_NEEDS)
        }


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "create",
        "create",
        "create",
        ("/v1/create",),
        "bearer",
        frozenset({_A, _P, _R, Need.QUEUE}),
        hot=True,
        max_instances=10,
    ),
    FunctionSpec(
        "regenerate",
        "regenerate",
        "regenerate",
        ("/v1/regenerate",),
        "bearer",
        frozenset({_A, _P, _R, Need.QUEUE}),
        hot=True,
    ),
    FunctionSpec(
        "generations",
        "generations",
        "generations",
        ("/v1/generations/",),
        "bearer",
        # Redis: a cancel refunds and releases, and takes an Idempotency-Key.
        frozenset({_A, _P, _R}),
        hot=True,
        concurrency=16,
        max_instances=10,
    ),
    FunctionSpec("drafts", "drafts", "drafts", ("/v1/drafts/",), "bearer", frozenset({_A, _P})),
    FunctionSpec(
        "library",
        "library",
        "library",
        ("/v1/library/assets",),
        "bearer",
        frozenset({_A, _P, _R, Need.CURSOR}),
    ),
    FunctionSpec(
        "usage", "usage", "usage", ("/v1/usage", "/v1/notices"), "bearer", frozenset({_A, _P, _R})
    ),
    # The export streams a whole account (10,000 assets in about a second, measured in
    # bench/export.py); the timeout leaves room for big accounts and slow clients.
    FunctionSpec(
        "me",
        "me",
        "me",
        ("/v1/me/",),
        "bearer",
        frozenset({_A, _P, _R}),
        timeout_s=120,
        max_instances=3,
    ),
    FunctionSpec(
        "admin",
        "admin",
        "admin",
        ("/v1/admin/",),
        "bearer",
        frozenset({_A, _P, _R}),
        timeout_s=60,
        concurrency=4,
        max_instances=2,
    ),
    FunctionSpec(
        "billing",
        "billing",
        "billing",
        ("/v1/billing/",),
        "bearer",
        frozenset({_A, _P, _R, Need.STRIPE}),
        max_instances=3,
    ),
    FunctionSpec(
        "stripe-webhook",
        "stripe_webhook",
        "stripe_webhook",
        ("/webhooks/stripe",),
        "stripe",
        frozenset({_P, _R, Need.STRIPE_WEBHOOK}),
        timeout_s=60,
        max_instances=3,
    ),
    # /readyz pings Postgres and Redis, so health holds their credentials and nothing else.
    FunctionSpec(
        "health",
        "health",
        "health",
        ("/healthz", "/readyz", "/openapi.json"),
        "none",
        frozenset({_P, _R}),
        timeout_s=10,
        concurrency=16,
        max_instances=2,
    ),
    # The job timeout covers MAX_JOB_RUNTIME_S (240 s) plus lease release and the ledger
    # write; QStash retries a delivery that gets no answer, so it must not be shorter.
    FunctionSpec(
        "worker",
        "worker",
        "worker",
        ("/worker/",),
        "qstash",
        frozenset({_P, _R, Need.SIGNATURES, Need.AI, Need.AI_FALLBACK, Need.NOTICES}),
        memory="1Gi",
        timeout_s=300,
        concurrency=4,
        max_instances=10,
    ),
)


def function_by_name(name: str) -> FunctionSpec | None:
    return next((f for f in FUNCTIONS if f.name == name), None)


def function_for_path(path: str) -> FunctionSpec | None:
    """The function that serves ``path`` (longest matching prefix), or None."""
    matches = [f for f in FUNCTIONS for p in f.paths if path == p.rstrip("/") or path.startswith(p)]
    return max(matches, key=lambda f: max(len(p) for p in f.paths), default=None)


def deployment_manifest() -> dict[str, Any]:
    """What Terraform deploys per function (``terraform/functions.json``)."""
    return {
        "_generated": "by `make functions-json` from shared/registry.py; do not edit",
        "functions": {
            f.name: {
                "module": f.module,
                "entry_point": f.entry_point,
                "auth": f.auth,
                "hot": f.hot,
                "memory": f.memory,
                "cpu": f.cpu,
                "timeout_s": f.timeout_s,
                "concurrency": f.concurrency,
                "max_instances": f.max_instances,
                "needs": sorted(n.value for n in f.needs),
                "secrets": list(f.secrets),
                "optional_secrets": {k: list(v) for k, v in f.optional_secrets.items()},
            }
            for f in FUNCTIONS
        },
    }


def render_manifest() -> str:
    return json.dumps(deployment_manifest(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render_manifest(), end="")
