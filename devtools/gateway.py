"""nginx as the rehearsal's API Gateway, configured from the route table.

The deployed gateway's OpenAPI 2.0 document (``terraform/gateway/openapi2.yaml.tftpl``)
lists every route of ``shared.api.routes.ROUTES`` whose function is reached through the
gateway (all but the worker, which QStash calls at its own URL), each sent to its
function with the original path, plus an OPTIONS operation on every ``/v1/*`` path for
CORS preflights; ``tests/integration/test_terraform.py`` holds it to that table.
``gateway_operations()`` derives the same list from the same table, and ``render_nginx``
turns it into an nginx server: one exact or regex ``location`` per path, the path's
methods allowed (405 otherwise), the request proxied unchanged to the function's
address, and any other path answered 404 by the gateway itself, as API Gateway does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from shared.api.registry import FUNCTIONS
from shared.api.routes import ROUTES

__all__ = ["DIRECT_ONLY_AUTH", "GatewayPath", "gateway_operations", "render_nginx"]

# Functions QStash calls at their own URL (it signs that exact URL): never behind the gateway.
DIRECT_ONLY_AUTH = frozenset({"qstash"})
# A JSON body for what the gateway refuses itself, in the shape API Gateway uses.
_NOT_FOUND = '{"code":404,"message":"The current request is not defined by this API."}'
_NOT_ALLOWED = '{"code":405,"message":"The current request method is not allowed."}'


@dataclass(frozen=True)
class GatewayPath:
    """One path of the gateway document: its function and allowed methods."""

    pattern: str  # "/v1/drafts/{id}"
    function: str  # registry name, the key of the backend address
    methods: tuple[str, ...]  # upper case, OPTIONS included where preflights pass through

    @property
    def location(self) -> str:
        """The nginx ``location`` matching exactly this path."""
        if "{" not in self.pattern:
            return f"= {self.pattern}"
        regex = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(self.pattern))
        return f"~ ^{regex}$"


def gateway_operations() -> list[GatewayPath]:
    """Every path the API Gateway serves, in route-table order."""
    auth = {spec.name: spec.auth for spec in FUNCTIONS}
    paths: dict[str, GatewayPath] = {}
    for route in ROUTES:
        if auth.get(route.function) in DIRECT_ONLY_AUTH:
            continue
        known = paths.get(route.pattern)
        methods = (*known.methods, route.method) if known else (route.method,)
        paths[route.pattern] = GatewayPath(route.pattern, route.function, methods)
    return [
        GatewayPath(p.pattern, p.function, (*p.methods, "OPTIONS"))
        if p.pattern.startswith("/v1/")
        else p
        for p in paths.values()
    ]


def render_nginx(
    backends: dict[str, str], *, port: int, prefix: Path, host: str = "127.0.0.1"
) -> str:
    """An nginx.conf serving the gateway on ``host:port``; state and logs under ``prefix``.

    ``backends`` maps function names to base URLs (``http://127.0.0.1:8101``), as the
    Terraform template's ``backends`` maps them to Cloud Function URLs.
    """
    prefix = prefix.resolve()
    locations = []
    for path in gateway_operations():
        allowed = "|".join(path.methods)
        locations.append(
            f"""
        location {path.location} {{
            if ($request_method !~ ^({allowed})$) {{
                return 405 '{_NOT_ALLOWED}';
            }}
            proxy_pass {backends[path.function].rstrip("/")};
        }}"""
        )
    # Workers run as the user starting nginx; as root nginx would drop to "nobody", who
    # cannot write the temp directories below.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = prefix / "temp"
    return f"""# Rendered by devtools/gateway.py from shared/api/routes.py; do not edit.
{user}daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 512;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server_tokens off;
    # The functions enforce their own 64 KiB body limit; let them answer it (413 JSON).
    client_max_body_size 1m;
    default_type application/json;

    server {{
        listen {host}:{port};

        proxy_http_version 1.1;
        proxy_set_header Host $proxy_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_read_timeout 300s;
        # Answers pass through as the function wrote them (errors included).
        proxy_intercept_errors off;
{"".join(locations)}

        location / {{
            return 404 '{_NOT_FOUND}';
        }}
    }}
}}
"""
