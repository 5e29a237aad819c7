"""Moved to ``devtools.jwks_server``; kept so older imports keep working."""

from devtools.jwks_server import *  # noqa: F403
