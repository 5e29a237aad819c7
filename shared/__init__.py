"""Reel Content shared library: everything the Cloud Functions in ``functions/`` call.

Subpackages: ``billing`` (plans), ``enforcement`` (limits), ``redis`` (clients, keys,
Lua registry), ``db`` (Postgres), ``queue`` (QStash / local), ``ai`` (AI providers),
``api`` (HTTP wrapper, auth, validation), ``observability`` (logging). Nothing here
connects to anything at import time.
"""

__all__: list[str] = []
