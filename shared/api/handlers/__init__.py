"""Route handlers: parse an ``ApiRequest``, call one service, render an ``ApiResponse``.

A handler never opens a unit of work nor imports ``shared.db``: writes go through a
service, reads through ``shared.services.views`` (``tests/unit/test_layers.py``).

The route table (``shared.api.routes``) names every handler function, so it imports
every handler module before a request is authenticated. A handler module therefore
imports at its top only what a refused request needs too (``http``, ``common``,
``shared.errors``); its models, services and renderers are imported inside each handler,
after authentication (``tests/unit/test_cold_start.py``; cold starts pay for every
import).
"""

__all__: list[str] = []
