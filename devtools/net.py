"""The one free-port helper: the development servers, the rehearsal and the tests use it."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now.

    Bound once by the OS and released: use it for a server the test starts next, or as
    the address of a service that is down (connection refused).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
