"""A TCP proxy that counts round trips on the wire, optionally adding a delay each way.

A round trip is a burst of client→server bytes followed by the server's reply: the
count goes up each time the server starts sending after the client sent something.
That is what a network charges for, whatever the driver does per statement (pg8000's
unnamed statements flush and wait three times; a prepared one once). Used by the
round-trip tests (Postgres and Redis between the code and the real servers) and by
``make bench``'s network-distance mode (``delay_s`` = one-way latency, e.g. 1 ms).

The delay emulates distance, not bandwidth: every chunk is forwarded ``delay_s`` after
it arrived, by a sender thread per direction, so chunks of one burst are not delayed
twice.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Counts", "WireProxy"]

_CHUNK = 65536


@dataclass(frozen=True)
class Counts:
    round_trips: int
    connections: int


class _Link:
    """One proxied connection: two readers (which count) and two delayed senders."""

    def __init__(self, proxy: WireProxy, client: socket.socket, server: socket.socket) -> None:
        self._proxy = proxy
        self._client, self._server = client, server
        self._lock = threading.Lock()
        self._client_spoke = False  # the client sent since the server last replied
        for src, dst, upstream in ((client, server, True), (server, client, False)):
            out: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
            threading.Thread(target=self._read, args=(src, out, upstream), daemon=True).start()
            threading.Thread(target=self._send, args=(dst, out), daemon=True).start()

    def _read(
        self, src: socket.socket, out: queue.Queue[tuple[float, bytes] | None], upstream: bool
    ) -> None:
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                # State changes before forwarding: the peer cannot answer what it has
                # not received yet, so the order of bursts is the order seen here.
                with self._lock:
                    if upstream:
                        self._client_spoke = True
                    elif self._client_spoke:
                        self._client_spoke = False
                        self._proxy._count_trip()
                out.put((time.perf_counter() + self._proxy.delay_s, data))
        except OSError:
            pass
        finally:
            out.put(None)

    def _send(self, dst: socket.socket, out: queue.Queue[tuple[float, bytes] | None]) -> None:
        try:
            while (item := out.get()) is not None:
                due, data = item
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        for sock in (self._client, self._server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class WireProxy:
    """Listens on 127.0.0.1:<free port>; every connection is forwarded to ``target``."""

    def __init__(self, target_host: str, target_port: int, *, delay_s: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._trips = 0
        self._connections = 0
        self._links: list[_Link] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _count_trip(self) -> None:
        with self._lock:
            self._trips += 1

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections += 1
                self._links.append(_Link(self, client, server))

    @property
    def counts(self) -> Counts:
        with self._lock:
            return Counts(self._trips, self._connections)

    @contextmanager
    def counting(self) -> Iterator[list[int]]:
        """``with proxy.counting() as n:`` … ``n[0]`` = round trips inside the block.

        Round trips are counted when the reply starts; a caller that got its answer has
        already been counted.
        """
        box = [0]
        start = self.counts.round_trips
        try:
            yield box
        finally:
            box[0] = self.counts.round_trips - start

    def drop_connections(self) -> None:
        """Cut every proxied connection (the client sees its server vanish)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_connections()
