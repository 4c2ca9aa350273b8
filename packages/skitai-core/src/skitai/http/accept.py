"""Listening sockets and a batched accept: many waiting connections are taken in one loop iteration.

Why not ``loop.create_server``: libuv (so uvloop) accepts ONE connection per loop iteration. With a
thousand busy keep-alive connections an iteration takes tens of milliseconds, so a burst of new
connections waits in the kernel's accept queue for seconds (measured: 600 of 1000 ``wrk -c1000``
connections still unaccepted after 3 s, counted as timeouts by the client). ``Acceptor`` watches the
listening socket itself and accepts up to ``ACCEPT_BATCH`` connections each time it is readable, then
hands each socket to the loop (``connect_accepted_socket``: TLS handshake included).

When the process is out of file descriptors (or memory), accepting pauses for ``RETRY_DELAY`` seconds
instead of spinning on an always-readable socket; the waiting connections stay in the kernel's queue.
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


class Acceptor:
    """Accepts connections on ``socks`` for ``protocol_factory`` (optionally TLS), in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop, socks: list[socket.socket],
                 protocol_factory: Callable[[], asyncio.Protocol], ssl: _ssl.SSLContext | None = None) -> None:
        self.loop = loop
        self.socks = socks
        self.factory = protocol_factory
        self.ssl = ssl
        self.accepted = 0
        self._pending: set[asyncio.Task] = set()     # handshakes in progress (strong references)
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        for sock in socks:
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._readable, sock)

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
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
            task = self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn, ssl=self.ssl))
        except Exception:
            conn.close()
            log.exception("could not set up an accepted connection")
            return
        if not task.done():
            self._pending.add(task)
            task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, _QUIET):
            log.error("could not set up an accepted connection", exc_info=exc)

    def _pause(self) -> None:
        for sock in self.socks:
            self.loop.remove_reader(sock.fileno())
        self._retry = self.loop.call_later(RETRY_DELAY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            for sock in self.socks:
                self.loop.add_reader(sock.fileno(), self._readable, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (connections already made stay)."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.socks:
            if sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
                sock.close()
