"""Moved to ``devtools.qstash_signing``; kept so older imports keep working."""

from devtools.qstash_signing import *  # noqa: F403
