"""Moved to ``devtools.fake_minimax``; kept so older imports keep working."""

from devtools.fake_minimax import *  # noqa: F403
