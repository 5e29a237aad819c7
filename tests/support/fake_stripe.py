"""A real local HTTP server speaking the slice of Stripe's REST API we use, plus webhooks.

Serves form-encoded ``POST /v1/customers``, ``/v1/checkout/sessions`` and
``/v1/billing_portal/sessions`` with JSON bodies shaped like Stripe's objects, checks the
bearer API key, honours ``Idempotency-Key`` (a replay returns the first answer) and
records every request's decoded parameters::

    with FakeStripe(api_key="sk_test_x") as fake:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": fake.url})
        ...
        assert fake.calls("/v1/checkout/sessions")[0]["mode"] == "subscription"

Webhook deliveries are built here too and signed exactly as Stripe signs them:
``Stripe-Signature: t=<unix ts>,v1=<hex HMAC-SHA256(secret, f"{t}.{payload}")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "FakeStripe",
    "RecordedRequest",
    "checkout_session",
    "decode_form",
    "event",
    "invoice",
    "sign",
    "signed_delivery",
    "subscription",
]

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_test_{next(_ids):06d}{secrets.token_hex(4)}"


# ---------------------------------------------------------------- wire format


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][0][c]=v``) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for part, nxt in itertools.pairwise(parts):
            child_default: Any = [] if nxt.isdigit() else {}
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append(None)
                if node[idx] is None:
                    node[idx] = child_default
                node = node[idx]
            else:
                node = node.setdefault(part, child_default)
        last = parts[-1]
        if isinstance(node, list):
            idx = int(last)
            while len(node) <= idx:
                node.append(None)
            node[idx] = value
        else:
            node[last] = value
    return root


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signed_delivery(
    evt: Mapping[str, Any], secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one webhook delivery, as Stripe posts it."""
    payload = json.dumps(evt, indent=2).encode()  # Stripe pretty-prints its deliveries
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign(payload, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return payload, headers


# ---------------------------------------------------------------- object builders


def event(
    type: str, obj: Mapping[str, Any], *, created: int | None = None, id: str | None = None
) -> dict[str, Any]:
    """A snapshot event wrapping ``obj``."""
    return {
        "id": id or _id("evt"),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "data": {"object": dict(obj)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def subscription(
    *,
    customer: str,
    price: str,
    status: str = "active",
    id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    current_period_end: int | None = None,
) -> dict[str, Any]:
    """A subscription object (items carry the period, as in API versions since 2025-03)."""
    now = int(time.time())
    end = current_period_end or now + 30 * 86400
    sub_id = id or _id("sub")
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "metadata": dict(metadata or {}),
        "cancel_at_period_end": False,
        "created": now,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": _id("si"),
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price", "type": "recurring"},
                    "quantity": 1,
                    "subscription": sub_id,
                    "current_period_start": end - 30 * 86400,
                    "current_period_end": end,
                }
            ],
        },
    }


def checkout_session(
    *,
    mode: str,
    customer: str | None,
    metadata: Mapping[str, str] | None = None,
    client_reference_id: str | None = None,
    payment_status: str = "paid",
    subscription_id: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A completed Checkout Session object."""
    return {
        "id": id or _id("cs"),
        "object": "checkout.session",
        "mode": mode,
        "status": "complete",
        "payment_status": payment_status,
        "customer": customer,
        "client_reference_id": client_reference_id,
        "metadata": dict(metadata or {}),
        "subscription": subscription_id if mode == "subscription" else None,
        "payment_intent": _id("pi") if mode == "payment" else None,
    }


def invoice(*, customer: str, subscription_id: str) -> dict[str, Any]:
    """A failed invoice of a subscription (``parent`` shape of current API versions)."""
    return {
        "id": _id("in"),
        "object": "invoice",
        "customer": customer,
        "status": "open",
        "attempt_count": 1,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription_id, "metadata": {}},
        },
    }


# ---------------------------------------------------------------- the server


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received; header names lower-cased, params decoded."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, Any]


@dataclass
class _Failure:
    status: int
    type: str
    message: str
    code: str | None = None
    retry: bool = False  # Stripe-Should-Retry: true (the SDK retries it)


@dataclass
class _State:
    api_key: str | None
    requests: list[RecordedRequest] = field(default_factory=list)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    portal_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    failures: deque[_Failure] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _error(status: int, type: str, message: str, code: str | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"type": type, "message": message}
    if code:
        body["code"] = code
    return status, {"error": body}


def _handle(state: _State, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if path == "/v1/customers":
        cus = {
            "id": _id("cus"),
            "object": "customer",
            "created": int(time.time()),
            "email": params.get("email"),
            "metadata": params.get("metadata", {}),
            "livemode": False,
        }
        state.customers[cus["id"]] = cus
        return 200, cus
    if path == "/v1/checkout/sessions":
        customer = params.get("customer")
        if customer is not None and customer not in state.customers:
            return _error(400, "invalid_request_error", f"No such customer: '{customer}'",
                          "resource_missing")  # fmt: skip
        if params.get("mode") not in ("payment", "subscription", "setup"):
            return _error(400, "invalid_request_error", "Invalid mode", "parameter_invalid_empty")
        sid = _id("cs")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": params["mode"],
            "customer": customer,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "status": "open",
            "payment_status": "unpaid",
            # Only hosted sessions have a URL; embedded ones are mounted by the client.
            "url": None
            if params.get("ui_mode") in ("embedded", "embedded_page", "elements")
            else f"https://checkout.stripe.com/c/pay/{sid}",
            "livemode": False,
        }
        state.sessions[sid] = session
        return 200, session
    if path == "/v1/billing_portal/sessions":
        customer = params.get("customer")
        if customer not in state.customers:
            return _error(400, "invalid_request_error", f"No such customer: '{customer}'",
                          "resource_missing")  # fmt: skip
        bid = _id("bps")
        portal = {
            "id": bid,
            "object": "billing_portal.session",
            "customer": customer,
            "return_url": params.get("return_url"),
            "url": f"https://billing.stripe.com/p/session/{bid}",
            "livemode": False,
        }
        state.portal_sessions[bid] = portal
        return 200, portal
    return _error(404, "invalid_request_error", f"Unrecognized request URL (POST: {path}).")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence the test output
        return

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        params = decode_form(raw)
        with state.lock:
            state.requests.append(RecordedRequest("POST", self.path, headers, params))
            key = headers.get("idempotency-key")
            retry = False
            if state.api_key is not None and headers.get("authorization") != (
                f"Bearer {state.api_key}"
            ):
                status, body = _error(401, "invalid_request_error", "Invalid API Key provided")
            elif state.failures:
                f = state.failures.popleft()
                status, body = _error(f.status, f.type, f.message, f.code)
                retry = f.retry
            elif key and key in state.idempotent:
                status, body = state.idempotent[key]
            else:
                status, body = _handle(state, self.path, params)
                if key and status < 500:
                    state.idempotent[key] = (status, body)
        self._send(status, body, retry=retry)

    def do_DELETE(self) -> None:
        """``DELETE /v1/subscriptions/{id}``: cancel now (what the SDK's cancel sends)."""
        state = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        with state.lock:
            state.requests.append(RecordedRequest("DELETE", self.path, headers, {}))
            sub_id = self.path.removeprefix("/v1/subscriptions/")
            sub = state.subscriptions.get(sub_id)
            if state.api_key is not None and headers.get("authorization") != (
                f"Bearer {state.api_key}"
            ):
                status, body = _error(401, "invalid_request_error", "Invalid API Key provided")
            elif state.failures:
                f = state.failures.popleft()
                status, body = _error(f.status, f.type, f.message, f.code)
            elif not self.path.startswith("/v1/subscriptions/") or sub is None:
                missing = f"No such subscription: '{sub_id}'"
                status, body = _error(404, "invalid_request_error", missing, "resource_missing")
            else:
                sub["status"] = "canceled"
                sub["canceled_at"] = int(time.time())
                status, body = 200, dict(sub)
        self._send(status, body)

    def do_GET(self) -> None:
        self._send(*_error(404, "invalid_request_error", "GET is not served by the fake"))

    def _send(self, status: int, body: Any, *, retry: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", _id("req"))
        # Scripted failures are final unless scripted otherwise: the SDK must not sleep
        # and retry in tests that do not test retrying.
        self.send_header("Stripe-Should-Retry", "true" if retry else "false")
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeStripe:
    """The server; ``url`` is the ``STRIPE_API_BASE`` to configure."""

    def __init__(self, api_key: str | None = None) -> None:
        self._state = _State(api_key)
        self._server = _Server(self._state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeStripe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- inspection and scripting -------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def calls(self, path: str) -> list[dict[str, Any]]:
        """Decoded parameters of every request to ``path``, oldest first."""
        return [r.params for r in self.requests if r.path == path]

    @property
    def customers(self) -> dict[str, dict[str, Any]]:
        with self._state.lock:
            return dict(self._state.customers)

    def add_subscription(self, sub_id: str, customer: str, status: str = "active") -> None:
        """A subscription the fake knows (as if created by a completed checkout)."""
        with self._state.lock:
            self._state.subscriptions[sub_id] = {
                "id": sub_id, "object": "subscription", "customer": customer, "status": status,
            }  # fmt: skip

    def subscription_status(self, sub_id: str) -> str | None:
        with self._state.lock:
            sub = self._state.subscriptions.get(sub_id)
            return None if sub is None else str(sub["status"])

    def fail_next(
        self,
        status: int,
        type: str = "api_error",
        message: str = "boom",
        code: str | None = None,
        *,
        retry: bool = False,
    ) -> None:
        """The next request (any path) gets this Stripe error instead of an answer;
        ``retry``: one Stripe says may be retried (a POST's; DELETEs are never retried)."""
        with self._state.lock:
            self._state.failures.append(_Failure(status, type, message, code, retry))
