"""The route table: every public method + path, its handler, Cloud Function, auth, models.

The local server, the OpenAPI generator and each deployed function read this one
table, so they cannot disagree. Each route names its handler function (follow it with
go-to-definition); importing the table imports every handler module, so those import
only what a refused request needs too and load their models and services inside each
handler (``shared/api/handlers/__init__.py``). Models are named by class (in
``shared.api.models``): building them is most of that module's import time, and a
request refused before its handler runs (401, 404) never needs them.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from shared.api.handlers import (
    admin,
    billing,
    drafts,
    generation,
    health,
    library,
    me,
    stripe_webhook,
    usage,
    worker,
)
from shared.api.messages import ApiRequest, ApiResponse
from shared.api.routing import Auth, Handler, Route

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["ROUTES", "Auth", "Handler", "Route", "openapi", "routes_for"]


def openapi(req: ApiRequest, c: Container) -> ApiResponse:
    """GET /openapi.json: this table's document. Here, beside the table it describes: a
    handler module that imported the table would make an import cycle with it."""
    from shared.api.openapi_document import openapi_document

    return ApiResponse.json(200, openapi_document(ROUTES))


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/create",
        generation.create,
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
        generation.regenerate,
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
        generation.get_generation,
        "generations",
        summary="A generation with its variants once succeeded",
        response_model="GenerationResponse",
    ),
    Route(
        "GET",
        "/v1/generations/{id}/events",
        generation.generation_events,
        "generations",
        summary="Live status events of a generation (text/event-stream; see the docs)",
        query_token=True,
    ),
    Route(
        "POST",
        "/v1/generations/{id}/cancel",
        generation.cancel_generation,
        "generations",
        summary="Cancel a generation (queued ends now, running at its next fence point)",
        response_model="GenerationResponse",
        idempotent=True,
    ),
    Route(
        "GET",
        "/v1/drafts",
        drafts.list_drafts,
        "drafts",
        summary="The caller's drafts, newest first (keyset pagination)",
        response_model="DraftListResponse",
        query_model="DraftQuery",
    ),
    Route(
        "GET",
        "/v1/drafts/{id}",
        drafts.get_draft,
        "drafts",
        summary="A draft with its generations",
        response_model="DraftResponse",
    ),
    Route(
        "PATCH",
        "/v1/drafts/{id}",
        drafts.patch_draft,
        "drafts",
        summary="Update a draft (If-Match supported)",
        request_model="DraftPatchRequest",
        response_model="DraftResponse",
    ),
    Route(
        "DELETE",
        "/v1/drafts/{id}",
        drafts.delete_draft,
        "drafts",
        summary="Delete a draft with its generations and variants (saved assets stay)",
        status=204,
    ),
    Route(
        "POST",
        "/v1/library/assets",
        library.create_asset,
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
        library.list_assets,
        "library",
        summary="Search the library (keyset pagination)",
        response_model="AssetListResponse",
        query_model="AssetQuery",
    ),
    Route(
        "GET",
        "/v1/library/assets/{id}",
        library.get_asset,
        "library",
        summary="An asset (with its ETag)",
        response_model="AssetResponse",
    ),
    Route(
        "PATCH",
        "/v1/library/assets/{id}",
        library.patch_asset,
        "library",
        summary="Edit an asset (If-Match supported)",
        request_model="AssetPatchRequest",
        response_model="AssetResponse",
    ),
    Route(
        "DELETE",
        "/v1/library/assets/{id}",
        library.delete_asset,
        "library",
        summary="Delete an asset (restorable for 30 days)",
        status=204,
    ),
    Route(
        "POST",
        "/v1/library/assets/{id}/restore",
        library.restore_asset,
        "library",
        summary="Restore a deleted asset within 30 days (idempotent)",
        response_model="AssetResponse",
    ),
    Route(
        "GET",
        "/v1/me/export",
        me.export_me,
        "me",
        summary="Everything held about the caller, as one streamed JSON document",
        response_model="AccountExport",
    ),
    Route(
        "DELETE",
        "/v1/me",
        me.delete_me,
        "me",
        summary="Delete the account: cancel billing, remove content, pseudonymise usage",
        response_model="AccountDeletionResponse",
        status=202,
    ),
    Route(
        "GET",
        "/v1/usage",
        usage.get_usage,
        "usage",
        summary="The caller's plan and usage this month",
        response_model="UsageResponse",
    ),
    Route(
        "GET",
        "/v1/notices",
        usage.list_notices,
        "usage",
        summary="The caller's usage notices (pool at 80% / 100%, credits low), newest first",
        response_model="NoticeListResponse",
    ),
    Route(
        "POST",
        "/v1/notices/{id}/read",
        usage.read_notice,
        "usage",
        summary="Mark one of the caller's usage notices read",
        response_model="NoticeOut",
    ),
    Route(
        "POST",
        "/v1/admin/subscriptions",
        admin.set_subscription,
        "admin",
        auth="admin",
        summary="Grant or remove a plan",
        request_model="AdminSubscriptionRequest",
    ),
    Route(
        "POST",
        "/v1/admin/boosts",
        admin.grant_boost,
        "admin",
        auth="admin",
        summary="Grant a Pro Boost",
        request_model="AdminBoostRequest",
    ),
    Route(
        "POST",
        "/v1/admin/grants",
        admin.create_grant,
        "admin",
        auth="admin",
        summary="Grant one-off generations to a user, with the reason (audited)",
        request_model="AdminGrantRequest",
        status=201,
    ),
    Route(
        "POST",
        "/v1/admin/grants/{id}/reverse",
        admin.reverse_grant,
        "admin",
        auth="admin",
        summary="Take back a grant's unused generations (audited)",
        request_model="AdminGrantReverseRequest",
    ),
    Route(
        "GET",
        "/v1/admin/costs",
        admin.get_costs,
        "admin",
        auth="admin",
        summary="Tokens and cost by any of day, user, plan, model for a range, with totals",
        response_model="CostsResponse",
        query_model="CostsQuery",
    ),
    Route(
        "POST",
        "/v1/billing/checkout",
        billing.checkout,
        "billing",
        summary="Start a Stripe Checkout session",
        request_model="CheckoutRequest",
        response_model="UrlResponse",
        status=201,
    ),
    Route(
        "POST",
        "/v1/billing/packs/checkout",
        billing.pack_checkout,
        "billing",
        summary="Start a Stripe Checkout session for a generation pack (one-off payment)",
        request_model="PackCheckoutRequest",
        response_model="UrlResponse",
        status=201,
    ),
    Route(
        "POST",
        "/v1/billing/portal",
        billing.portal,
        "billing",
        summary="Open the Stripe customer portal",
        response_model="UrlResponse",
        status=201,
    ),
    Route(
        "POST",
        "/webhooks/stripe",
        stripe_webhook.stripe_webhook,
        "stripe-webhook",
        auth="stripe",
        summary="Stripe webhook (Stripe-Signature)",
    ),
    Route("GET", "/healthz", health.healthz, "health", auth="none", summary="Process is up"),
    Route(
        "GET",
        "/readyz",
        health.readyz,
        "health",
        auth="none",
        summary="Redis and Postgres reachable",
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        "health",
        auth="none",
        summary="This document",
    ),
    Route(
        "POST",
        "/worker/generate",
        worker.generate,
        "worker",
        auth="qstash",
        summary="Run one generation job (QStash)",
    ),
    Route(
        "POST",
        "/worker/failed",
        worker.failed,
        "worker",
        auth="qstash",
        summary="QStash failure callback",
    ),
    Route(
        "POST",
        "/worker/sweep",
        worker.sweep,
        "worker",
        auth="qstash",
        summary="Fail and refund stuck generations; purge rows deleted over 30 days ago",
    ),
    Route(
        "POST",
        "/worker/rollup",
        worker.rollup,
        "worker",
        auth="qstash",
        summary="Daily usage rollup and spend anomaly check (QStash schedule)",
    ),
)


@cache
def routes_for(function: str) -> list[Route]:
    """Routes served by one Cloud Function; ``"*"`` (the local server) gets them all."""
    return [r for r in ROUTES if function in ("*", r.function)]
