"""Listening: ``serve(config, dispatch)`` starts HTTP/1.1 (and the hand-over hooks) on the running loop.

    server = await serve(config, dispatch)          # config.address / config.port, or sock=
    ...
    server.close()                                  # stop accepting; idle connections close now,
    await server.wait_closed()                      # busy ones after their current answer (or a timeout)

Connections are accepted in batches by ``skitai.http.accept`` (libuv alone takes one per loop iteration,
which starves a burst of new connections while many others are busy). A once-a-second tick refreshes the
cached ``Date`` header, re-checks whether the request logger has handlers, and enforces the keep-alive and
network timeouts of every connection (no timer per request).
``new_event_loop()`` gives a uvloop loop when uvloop is installed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl as _ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from skitai.config import Config

from . import accesslog, clock
from .accept import Acceptor, ConnectionCount, listening_sockets
from .h1 import H1Protocol

log = logging.getLogger("skitai.server")

TLS_CLOSE_GRACE = 1.0     # seconds an idle TLS connection gets to finish its close at stop before an abort
ProtocolFactory = Callable[[], asyncio.BaseProtocol]
Dispatch = Callable[[Any], Awaitable[None] | None]
_close_hooks: list[Callable[[asyncio.AbstractEventLoop], None]] = []


def on_close(hook: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    """Have ``hook(loop)`` called on the loop whenever a server on ``loop`` stops accepting
    (``Server.close()``), after its idle connections were closed. The WSGI worker pool answers the requests
    still waiting for a thread with 503 so (``skitai.wsgi.threadpool.cancel_queued``)."""
    if hook not in _close_hooks:
        _close_hooks.append(hook)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ServerState:
    """What every connection of one server shares."""

    def __init__(self, loop, config: Config, dispatch: Dispatch, upgrades: Mapping[str, Dispatch] | None,
                 h2: ProtocolFactory | None) -> None:
        self.loop = loop
        self.config = config
        self.dispatch = dispatch
        self.upgrades: dict[str, Dispatch] = {k.lower(): v for k, v in (upgrades or {}).items()}
        self.h2 = h2
        self.conn_count = 0             # connections ever made (their numbers); ``count.open``: open now
        self.connections: set[H1Protocol] = set()     # HTTP/1.1 ones (the tick checks their timeouts)
        self.count = ConnectionCount(config.limits.max_connections)   # every protocol, for the cap
        self.now = loop.time()          # the coarse clock connections stamp their activity with


class Server:
    """A listening HTTP server; ``close()`` then ``await wait_closed()`` stops it gracefully."""

    def __init__(self, state: ServerState, acceptor: Acceptor) -> None:
        self.state = state
        self.acceptor = acceptor
        self._tick_handle: asyncio.TimerHandle | None = None
        lim = state.config.limits
        self._interval = max(0.05, min(1.0, lim.keep_alive / 4 or 1.0, lim.network_timeout / 4 or 1.0,
                                       lim.header_timeout / 4 or 1.0))
        self._closing = False
        self._tick()

    @property
    def sockets(self) -> tuple:
        return tuple(self.acceptor.socks)

    @property
    def port(self) -> int:
        return self.sockets[0].getsockname()[1]

    @property
    def connections(self) -> set:
        return self.state.connections

    @property
    def open_connections(self) -> int:
        """Connections open now, whatever protocol they were handed to (what ``max_connections`` caps)."""
        return self.state.count.open

    def _tick(self) -> None:
        clock.refresh()
        accesslog.refresh()
        now = self.state.now = self.state.loop.time()
        self._tick_handle = self.state.loop.call_later(self._interval, self._tick)   # first: whatever fails below
        for conn in list(self.state.connections):
            try:
                conn.check_timeout(now)
            except Exception:            # one broken connection must not stop the timeouts of the others
                log.exception("timeout check failed: connection aborted")
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()

    def close(self) -> None:
        """Stop accepting. Idle connections close now; busy ones close after their current answer."""
        if self._closing:
            return
        self._closing = True
        self.acceptor.close()
        for conn in list(self.state.connections):
            conn.closing = True
            _close_idle(conn)
        for hook in list(_close_hooks):
            try:
                hook(self.state.loop)
            except Exception:
                log.exception("a stop hook failed")

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait for busy connections to finish (at most ``timeout`` seconds), then cut the rest."""
        self.close()
        loop = self.state.loop
        started = loop.time()
        deadline = started + timeout
        while self.state.connections and loop.time() < deadline:
            abort_tls = loop.time() - started > TLS_CLOSE_GRACE
            for conn in list(self.state.connections):
                _close_idle(conn, abort_tls)
            await asyncio.sleep(0.02)
        for conn in list(self.state.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        await asyncio.sleep(0)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.wait_closed()


def _close_idle(conn: H1Protocol, abort_tls: bool = False) -> None:
    """Close a connection that is between requests. A TLS close waits for the client's close_notify, which
    an idle client may never send: with ``abort_tls`` (after a grace period) such a connection is aborted."""
    t = conn.transport
    if conn.active is not None or t is None:
        return
    if abort_tls and conn.scheme == "https" and t.is_closing():
        t.abort()
    else:
        conn.flush_held()                # its last answer may still be held in the loop turn's batch
        t.close()


async def serve(config: Config, dispatch: Dispatch, *, sock: socket.socket | None = None,
                ssl: _ssl.SSLContext | None = None, upgrades: Mapping[str, Dispatch] | None = None,
                h2_prior_knowledge: ProtocolFactory | None = None, reuse_port: bool | None = None) -> Server:
    """Listen on ``sock`` or ``config.address:config.port`` and serve HTTP/1.x with ``dispatch``.

    ``upgrades`` maps an ``Upgrade`` token (``"h2c"``, ``"websocket"``) to a handler called instead of
    ``dispatch`` for such requests; ``h2_prior_knowledge`` is the protocol factory for connections starting
    with the HTTP/2 preface and for TLS connections that negotiated ALPN ``h2`` (see ``skitai.http.h1``).
    ``reuse_port`` (default: ``config.workers > 1``) sets SO_REUSEPORT so prefork workers share the port."""
    loop = asyncio.get_running_loop()
    state = ServerState(loop, config, dispatch, upgrades, h2_prior_knowledge)
    if ssl is not None and h2_prior_knowledge is not None:
        ssl.set_alpn_protocols(["h2", "http/1.1"])
    factory = lambda: H1Protocol(state)
    if sock is not None:
        sock.listen(config.backlog)
        socks = [sock]
    else:
        if reuse_port is None:
            reuse_port = config.workers > 1
        socks = listening_sockets(config.address or None, config.port, config.backlog, bool(reuse_port))
    accesslog.refresh()
    return Server(state, Acceptor(loop, socks, factory, ssl, state.count,
                                  tls_timeout=config.limits.tls_handshake_timeout))
