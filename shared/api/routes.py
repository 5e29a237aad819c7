"""The route table: every public method + path, its Cloud Function, auth and models.

The local server, the OpenAPI generator and each deployed function read this one
table, so they cannot disagree. Handlers are named as import strings and resolved on
first use: a function instance imports only its own handlers. Models are named too
(classes in ``shared.api.models``): building them is most of that module's import
time, and a request refused before its handler runs (401, 404) never needs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Literal

from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["ROUTES", "Auth", "Handler", "Route", "routes_for"]

Auth = Literal["bearer", "admin", "none", "qstash", "stripe"]
Handler = Callable[[ApiRequest, "Container"], ApiResponse]


@dataclass(frozen=True, slots=True)
class Route:
    """One method + path of the public contract, resolved lazily to its handler."""

    method: str
    pattern: str
    handler: str  # "module:function", imported on first use (cold starts pay only for theirs)
    function: str  # the Cloud Function (shared.registry name) serving it
    auth: Auth = "bearer"
    summary: str = ""
    # Names of classes in shared.api.models (see the module doc): imported only by handlers
    # and the OpenAPI generator.
    request_model: str | None = None
    response_model: str | None = None
    query_model: str | None = None
    status: int = 200
    idempotent: bool = False
    # The bearer token may come as ``?access_token=`` when no Authorization header does: a
    # browser's EventSource cannot send headers. Only paths are logged, never queries.
    query_token: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "$")

    def resolve(self) -> Handler:
        module, _, attr = self.handler.partition(":")
        handler: Handler = getattr(import_module(module), attr)
        return handler


_H = "shared.api.handlers"

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/create",
        f"{_H}.generation:create",
        "create",
        summary="Create a draft and queue its first generation",
        request_model="CreateRequest",
        response_model="AcceptedResponse",
        status=202,
        idempotent=True,
    ),
    Route(
        "POST",
        "/v1/regenerate",
        f"{_H}.generation:regenerate",
        "regenerate",
        summary="Queue a targeted or full regeneration",
        request_model="RegenerateRequest",
        response_model="AcceptedResponse",
        status=202,
        idempotent=True,
    ),
    Route(
        "GET",
        "/v1/generations/{id}",
        f"{_H}.generation:get_generation",
        "generations",
        summary="A generation with its variants once succeeded",
        response_model="GenerationResponse",
    ),
    Route(
        "GET",
        "/v1/generations/{id}/events",
        f"{_H}.generation:generation_events",
        "generations",
        summary="Live status events of a generation (text/event-stream; see the docs)",
        query_token=True,
    ),
    Route(
        "POST",
        "/v1/generations/{id}/cancel",
        f"{_H}.generation:cancel_generation",
        "generations",
        summary="Cancel a generation (queued ends now, running at its next fence point)",
        response_model="GenerationResponse",
        idempotent=True,
    ),
    Route(
        "GET",
        "/v1/drafts",
        f"{_H}.drafts:list_drafts",
        "drafts",
        summary="The caller's drafts, newest first (keyset pagination)",
        response_model="DraftListResponse",
        query_model="DraftQuery",
    ),
    Route(
        "GET",
        "/v1/drafts/{id}",
        f"{_H}.drafts:get_draft",
        "drafts",
        summary="A draft with its generations",
        response_model="DraftResponse",
    ),
    Route(
        "PATCH",
        "/v1/drafts/{id}",
        f"{_H}.drafts:patch_draft",
        "drafts",
        summary="Update a draft (If-Match supported)",
        request_model="DraftPatchRequest",
        response_model="DraftResponse",
    ),
    Route(
        "DELETE",
        "/v1/drafts/{id}",
        f"{_H}.drafts:delete_draft",
        "drafts",
        summary="Delete a draft with its generations and variants (saved assets stay)",
        status=204,
    ),
    Route(
        "POST",
        "/v1/library/assets",
        f"{_H}.library:create_asset",
        "library",
        summary="Save a variant or raw content to the library",
        request_model="CreateAssetRequest",
        response_model="AssetResponse",
        status=201,
        idempotent=True,
    ),
    Route(
        "GET",
        "/v1/library/assets",
        f"{_H}.library:list_assets",
        "library",
        summary="Search the library (keyset pagination)",
        response_model="AssetListResponse",
        query_model="AssetQuery",
    ),
    Route(
        "GET",
        "/v1/library/assets/{id}",
        f"{_H}.library:get_asset",
        "library",
        summary="An asset (with its ETag)",
        response_model="AssetResponse",
    ),
    Route(
        "PATCH",
        "/v1/library/assets/{id}",
        f"{_H}.library:patch_asset",
        "library",
        summary="Edit an asset (If-Match supported)",
        request_model="AssetPatchRequest",
        response_model="AssetResponse",
    ),
    Route(
        "DELETE",
        "/v1/library/assets/{id}",
        f"{_H}.library:delete_asset",
        "library",
        summary="Delete an asset (restorable for 30 days)",
        status=204,
    ),
    Route(
        "POST",
        "/v1/library/assets/{id}/restore",
        f"{_H}.library:restore_asset",
        "library",
        summary="Restore a deleted asset within 30 days (idempotent)",
        response_model="AssetResponse",
    ),
    Route(
        "GET",
        "/v1/me/export",
        f"{_H}.me:export_me",
        "me",
        summary="Everything held about the caller, as one streamed JSON document",
        response_model="AccountExport",
    ),
    Route(
        "DELETE",
        "/v1/me",
        f"{_H}.me:delete_me",
        "me",
        summary="Delete the account: cancel billing, remove content, pseudonymise usage",
        response_model="AccountDeletionResponse",
        status=202,
    ),
    Route(
        "GET",
        "/v1/usage",
        f"{_H}.usage:get_usage",
        "usage",
        summary="The caller's plan and usage this month",
        response_model="UsageResponse",
    ),
    Route(
        "GET",
        "/v1/notices",
        f"{_H}.usage:list_notices",
        "usage",
        summary="The caller's usage notices (pool at 80% / 100%, credits low), newest first",
        response_model="NoticeListResponse",
    ),
    Route(
        "POST",
        "/v1/notices/{id}/read",
        f"{_H}.usage:read_notice",
        "usage",
        summary="Mark one of the caller's usage notices read",
        response_model="NoticeOut",
    ),
    Route(
        "POST",
        "/v1/admin/subscriptions",
        f"{_H}.admin:set_subscription",
        "admin",
        auth="admin",
        summary="Grant or remove a plan",
        request_model="AdminSubscriptionRequest",
    ),
    Route(
        "POST",
        "/v1/admin/boosts",
        f"{_H}.admin:grant_boost",
        "admin",
        auth="admin",
        summary="Grant a Pro Boost",
        request_model="AdminBoostRequest",
    ),
    Route(
        "POST",
        "/v1/admin/grants",
        f"{_H}.admin:create_grant",
        "admin",
        auth="admin",
        summary="Grant one-off generations to a user, with the reason (audited)",
        request_model="AdminGrantRequest",
        status=201,
    ),
    Route(
        "POST",
        "/v1/admin/grants/{id}/reverse",
        f"{_H}.admin:reverse_grant",
        "admin",
        auth="admin",
        summary="Take back a grant's unused generations (audited)",
        request_model="AdminGrantReverseRequest",
    ),
    Route(
        "GET",
        "/v1/admin/costs",
        f"{_H}.admin:get_costs",
        "admin",
        auth="admin",
        summary="Tokens and cost by any of day, user, plan, model for a range, with totals",
        response_model="CostsResponse",
        query_model="CostsQuery",
    ),
    Route(
        "POST",
        "/v1/billing/checkout",
        f"{_H}.billing:checkout",
        "billing",
        summary="Start a Stripe Checkout session",
        request_model="CheckoutRequest",
        response_model="UrlResponse",
        status=201,
    ),
    Route(
        "POST",
        "/v1/billing/packs/checkout",
        f"{_H}.billing:pack_checkout",
        "billing",
        summary="Start a Stripe Checkout session for a generation pack (one-off payment)",
        request_model="PackCheckoutRequest",
        response_model="UrlResponse",
        status=201,
    ),
    Route(
        "POST",
        "/v1/billing/portal",
        f"{_H}.billing:portal",
        "billing",
        summary="Open the Stripe customer portal",
        response_model="UrlResponse",
        status=201,
    ),
    Route(
        "POST",
        "/webhooks/stripe",
        f"{_H}.stripe_webhook:stripe_webhook",
        "stripe-webhook",
        auth="stripe",
        summary="Stripe webhook (Stripe-Signature)",
    ),
    Route(
        "GET", "/healthz", f"{_H}.health:healthz", "health", auth="none", summary="Process is up"
    ),
    Route(
        "GET",
        "/readyz",
        f"{_H}.health:readyz",
        "health",
        auth="none",
        summary="Redis and Postgres reachable",
    ),
    Route(
        "GET",
        "/openapi.json",
        f"{_H}.health:openapi",
        "health",
        auth="none",
        summary="This document",
    ),
    Route(
        "POST",
        "/worker/generate",
        f"{_H}.worker:generate",
        "worker",
        auth="qstash",
        summary="Run one generation job (QStash)",
    ),
    Route(
        "POST",
        "/worker/failed",
        f"{_H}.worker:failed",
        "worker",
        auth="qstash",
        summary="QStash failure callback",
    ),
    Route(
        "POST",
        "/worker/sweep",
        f"{_H}.worker:sweep",
        "worker",
        auth="qstash",
        summary="Fail and refund stuck generations; purge rows deleted over 30 days ago",
    ),
    Route(
        "POST",
        "/worker/rollup",
        f"{_H}.worker:rollup",
        "worker",
        auth="qstash",
        summary="Daily usage rollup and spend anomaly check (QStash schedule)",
    ),
)


@cache
def routes_for(function: str) -> list[Route]:
    """Routes served by one Cloud Function; ``"*"`` (the local server) gets them all."""
    return [r for r in ROUTES if function in ("*", r.function)]
