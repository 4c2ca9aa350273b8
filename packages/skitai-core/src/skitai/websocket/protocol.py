"""One WebSocket connection: wsproto framing glued to an asyncio transport.

wsproto does the RFC 6455 work (masking checks, fragment reassembly input, UTF-8 validation → 1007,
control frames); this class adds what a server needs around it: a maximum message size (1009),
PING/PONG keep-alive, an idle timeout, the close handshake, back-pressure both ways, and a
thread-safe ``send`` for worker threads. Messages go to a ``Session`` (see ``skitai.websocket.designs``).
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from typing import Any, Protocol

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from skitai.wsgi.threadpool import inbox_for

NORMAL, GOING_AWAY, TOO_BIG = 1000, 1001, 1009
CONNECTIONS: weakref.WeakSet = weakref.WeakSet()       # open WebSockets, for a going-away close on shutdown


def close_all(code: int = GOING_AWAY, reason: str = "server shutdown") -> None:
    """Shutdown (on the loop): every open WebSocket of this loop starts the close handshake."""
    loop = asyncio.get_running_loop()
    for ws in list(CONNECTIONS):
        if ws.loop is loop:
            ws.close(code, reason)


class Session(Protocol):
    """What a design implements; every method runs on the loop thread."""

    def opened(self, ws: WebSocketProtocol) -> None: ...
    def received(self, message: str | bytes) -> None: ...
    def closed(self, code: int) -> None: ...


class WebSocketProtocol(asyncio.Protocol):
    """Serves one upgraded connection; ``timeout`` is the app's keep-alive (idle seconds, 0: none)."""

    def __init__(self, session: Session, limits: Any, extensions: list | None = None,
                 timeout: float = 0, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.session = session
        self.limits = limits
        self.timeout = timeout
        self.loop = loop
        self.conn = Connection(ConnectionType.SERVER, extensions or [])
        self.transport: asyncio.Transport | None = None
        self.closed = False               # no more sends possible
        self.close_code: int | None = None
        self._chunk = 4096 if extensions else 1 << 20     # bounds one inflate step (~4 MB at 1000:1)
        self._parts: list = []
        self._size = 0
        self._last_seen = self._last_msg = time.monotonic()
        self._ping_sent: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writable = threading.Event()
        self._writable.set()
        self._paused_by: set[str] = set()
        self._inbox = None

    # -- asyncio side ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = self.loop or asyncio.get_running_loop()
        CONNECTIONS.add(self)
        self._schedule()
        self.session.opened(self)

    def data_received(self, data: bytes) -> None:
        if self.conn.state is ConnectionState.CLOSED:
            return
        self._last_seen = time.monotonic()
        for i in range(0, len(data), self._chunk):
            self.conn.receive_data(data[i:i + self._chunk])
            self._drain_events()
            if self.conn.state is ConnectionState.CLOSED or self.transport is None:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        CONNECTIONS.discard(self)
        if self._timer:
            self._timer.cancel()
        self._writable.set()
        self._finish(self.close_code or CloseReason.ABNORMAL_CLOSURE)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- events ---------------------------------------------------------------------------------
    def _drain_events(self) -> None:
        for event in self.conn.events():
            if isinstance(event, CloseConnection):
                self._close_event(event)
                return
            if self.closed:
                continue                  # closing: only the peer's CLOSE matters now
            if isinstance(event, Message):
                self._message(event)
            elif isinstance(event, Ping):
                self._write(self.conn.send(event.response()))
            elif isinstance(event, Pong):
                self._ping_sent = None
            if self.transport is None:
                return

    def _message(self, event: Message) -> None:
        self._size += len(event.data)
        if self._size > self.limits.ws_max_message_size:
            self.close(TOO_BIG, "message too big")
            return
        if not event.message_finished:
            self._parts.append(event.data)
            return
        data = event.data
        if self._parts:
            self._parts.append(data)
            data = ("" if isinstance(event, TextMessage) else b"").join(self._parts)
            self._parts = []
        self._size = 0
        self._last_msg = time.monotonic()
        self.session.received(bytes(data) if isinstance(event, BytesMessage) else data)

    def _close_event(self, event: CloseConnection) -> None:
        if self.conn.state is ConnectionState.REMOTE_CLOSING:
            # the peer started the close: echo its code, then the TCP close is ours (RFC 6455 7.1.1)
            self.close_code = event.code
            self._write(self.conn.send(event.response()))
            self._shutdown()
        elif self.conn.state is ConnectionState.CLOSED:
            self._shutdown()             # the answer to our own close
        else:
            self.close(event.code, event.reason or "")     # wsproto found a protocol error (1002, 1007)

    # -- sending (loop thread) ------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def send(self, message: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message; ignored once closing."""
        if self.closed or self.transport is None or self.conn.state is not ConnectionState.OPEN:
            return
        self._write(self.conn.send(Message(data=message)))

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start the close handshake; the socket is closed when the peer answers or after network_timeout."""
        if self.closed or self.transport is None:
            return
        self.closed = True
        self.close_code = code
        try:
            self._write(self.conn.send(CloseConnection(code=code, reason=reason)))
        except LocalProtocolError:
            self._shutdown()
            return
        self.loop.call_later(self.limits.network_timeout, self._shutdown)

    def _shutdown(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _finish(self, code: int) -> None:
        session, self.session = self.session, None
        self.closed = True
        if session is not None:
            session.closed(code)

    # -- from other threads ---------------------------------------------------------------------
    def send_threadsafe(self, message: str | bytes) -> None:
        """Send from a worker thread; blocks while the client reads slower than we write.
        Sends of many threads in one loop turn share one wake-up of the loop (``LoopInbox``)."""
        self._post(self.send, message)
        if not self._writable.is_set():
            self._writable.wait(self.limits.network_timeout)

    def close_threadsafe(self, code: int = NORMAL, reason: str = "") -> None:
        self._post(self.close, code, reason)         # behind the sends posted before it

    def _post(self, fn, *args) -> None:
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = inbox_for(self.loop)
        inbox.post(fn, *args)

    def pause(self, who: str = "queue") -> None:
        """Stop reading (a handler is behind); ``resume`` undoes it."""
        if not self._paused_by and self.transport is not None:
            self.transport.pause_reading()
        self._paused_by.add(who)

    def resume(self, who: str = "queue") -> None:
        self._paused_by.discard(who)
        if not self._paused_by and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- keep-alive -----------------------------------------------------------------------------
    def _schedule(self) -> None:
        step = min(x for x in (self.limits.ws_ping_interval, self.timeout or 1e9, 1e9) if x > 0)
        self._timer = self.loop.call_later(step, self._tick)

    def _tick(self) -> None:
        if self.transport is None or self.closed:
            return
        now, limits = time.monotonic(), self.limits
        if self.timeout and now - self._last_msg >= self.timeout:
            self.close(GOING_AWAY, "idle timeout")
            return
        if self._ping_sent is not None and now - self._ping_sent >= limits.ws_ping_timeout:
            self.transport.abort()           # no PONG: the peer is gone
            return
        if self._ping_sent is None and now - self._last_seen >= limits.ws_ping_interval:
            self._ping_sent = now
            self._write(self.conn.send(Ping(payload=os.urandom(4))))
        self._schedule()
