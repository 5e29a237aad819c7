"""Moved to ``devtools.upstash_rest``; kept so older imports keep working."""

from devtools.upstash_rest import *  # noqa: F403
