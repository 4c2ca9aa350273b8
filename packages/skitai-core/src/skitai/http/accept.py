"""Listening sockets and a batched accept: many waiting connections are taken in one loop iteration.

Why not ``loop.create_server``: libuv (so uvloop) accepts ONE connection per loop iteration. With a
thousand busy keep-alive connections an iteration takes tens of milliseconds, so a burst of new
connections waits in the kernel's accept queue for seconds (measured: 600 of 1000 ``wrk -c1000``
connections still unaccepted after 3 s, counted as timeouts by the client). ``Acceptor`` watches the
listening socket itself and accepts up to ``ACCEPT_BATCH`` connections each time it is readable, then
hands each socket to the loop (``connect_accepted_socket``: TLS handshake included).

When the process is out of file descriptors (or memory), accepting pauses for ``RETRY_DELAY`` seconds
instead of spinning on an always-readable socket; the waiting connections stay in the kernel's queue.

``Limits.max_connections`` caps the open connections (``ConnectionCount``): at the cap the acceptor stops
watching the listening sockets, so new clients wait in the kernel's listen backlog with their request
intact (as nginx and gunicorn do; no accept-and-close, no 503), and it watches again when one closes.
Protocols count themselves (``open += 1`` when made, ``closed()`` when lost: HTTP/1.1 does it for the
protocols it hands its connection to); handshakes still in progress count as open too.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl as _ssl
from collections.abc import Callable

log = logging.getLogger("skitai.server")

ACCEPT_BATCH = 256          # connections taken per readiness event (the rest on the next iteration)
RETRY_DELAY = 0.5           # seconds without accepting after EMFILE/ENFILE/ENOBUFS/ENOMEM
_SKIP = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EPERM))   # that one connection failed: go on
_QUIET = (ConnectionError, _ssl.SSLError, TimeoutError, asyncio.TimeoutError)


def listening_sockets(host: str | None, port: int, backlog: int, reuse_port: bool = False) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host:port`` (every address of ``host``; all
    interfaces for None or "")."""
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    seen = set()
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)   # the IPv4 entry has its own
            try:
                sock.bind(addr)
            except OSError as exc:
                raise OSError(exc.errno, f"error while attempting to bind on address {addr!r}: "
                                         f"{(exc.strerror or str(exc)).lower()}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    if not socks:
        raise OSError(errno.EADDRNOTAVAIL, f"no address to listen on for {host!r}")
    return socks


class ConnectionCount:
    """The open connections of one server against its cap (``limit``, 0: none).

    The per-connection cost is one increment and one decrement: a protocol does ``open += 1`` in
    ``connection_made`` and calls ``closed()`` once it is lost. ``on_room`` is set by the acceptor only
    while it waits at the cap."""

    __slots__ = ("open", "limit", "on_room")

    def __init__(self, limit: int = 0) -> None:
        self.open = 0
        self.limit = limit
        self.on_room: Callable[[], None] | None = None

    def closed(self) -> None:
        """One counted connection is gone."""
        self.open -= 1
        if self.on_room is not None:
            self.on_room()


class Acceptor:
    """Accepts connections on ``socks`` for ``protocol_factory`` (optionally TLS), in batches, while
    ``count`` is under its limit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, socks: list[socket.socket],
                 protocol_factory: Callable[[], asyncio.Protocol], ssl: _ssl.SSLContext | None = None,
                 count: ConnectionCount | None = None, tls_timeout: float = 0) -> None:
        self.loop = loop
        self.socks = socks
        self.factory = protocol_factory
        self.ssl = ssl
        # bounds the TLS handshake and the closing close_notify exchange (0: the loop's 60 s / 30 s)
        self._tls = {"ssl": ssl}
        if ssl is not None and tls_timeout > 0:
            self._tls.update(ssl_handshake_timeout=tls_timeout, ssl_shutdown_timeout=tls_timeout)
        self.count = count if count is not None else ConnectionCount()
        self.accepted = 0
        self._pending: set[asyncio.Task] = set()     # handshakes in progress (strong references)
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self._warned = False                          # the cap was hit once (logged once)
        for sock in socks:
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._readable, sock)

    @property
    def at_cap(self) -> bool:
        """No connection may be accepted now: open ones and handshakes in progress fill the cap."""
        count = self.count
        return 0 < count.limit <= count.open + len(self._pending)

    def _readable(self, sock: socket.socket) -> None:
        count = self.count
        for _ in range(ACCEPT_BATCH):
            if count.limit and count.open + len(self._pending) >= count.limit:
                self._hold()
                return
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _SKIP:
                    continue
                log.error("accept() failed, pausing for %.1fs: %s", RETRY_DELAY, exc)
                self._pause()
                return
            self.accepted += 1
            self._start(conn)

    def _start(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            task = self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn, **self._tls))
        except Exception:
            conn.close()
            log.exception("could not set up an accepted connection")
            return
        if not task.done():
            self._pending.add(task)
            task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if self.count.on_room is not None:         # a failed handshake frees its place at the cap
            self._room()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, _QUIET):
            log.error("could not set up an accepted connection", exc_info=exc)

    def _hold(self) -> None:
        """At the cap: stop watching the listening sockets until a connection closes (``_room``)."""
        for sock in self.socks:
            self.loop.remove_reader(sock.fileno())
        self.count.on_room = self._room
        if not self._warned:
            self._warned = True
            log.warning("%d connections open (max_connections): new clients wait in the listen backlog "
                        "until one closes", self.count.limit)

    def _room(self) -> None:
        if self._closed or self.at_cap:
            return
        self.count.on_room = None
        if self._retry is None:                    # else the EMFILE pause resumes on its own
            for sock in self.socks:
                self.loop.add_reader(sock.fileno(), self._readable, sock)

    def _pause(self) -> None:
        for sock in self.socks:
            self.loop.remove_reader(sock.fileno())
        self._retry = self.loop.call_later(RETRY_DELAY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed and self.count.on_room is None:
            for sock in self.socks:
                self.loop.add_reader(sock.fileno(), self._readable, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (connections already made stay)."""
        if self._closed:
            return
        self._closed = True
        self.count.on_room = None
        for task in list(self._pending):           # handshakes in progress: nobody will serve them now
            task.cancel()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.socks:
            if sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
                sock.close()
