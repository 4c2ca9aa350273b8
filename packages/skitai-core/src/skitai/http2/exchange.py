"""One HTTP/2 stream's request and its answer (``BaseExchange`` for HTTP/2).

Every method runs on the loop thread. Sends go through the stream's ``Outbox`` (flow control) and the
connection's coalesced flush, so many answers finished in one loop turn leave in one socket write.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import IO, Any

from h2.stream import StreamState

from skitai.http import accesslog, clock
from skitai.http.errors import ClientDisconnected, HeaderError
from skitai.http.exchange import (DONE, FIELD_NAMES, HOP_BY_HOP, IDLE, STREAMING, BaseExchange, field_name,
                                  length_mismatch)

from .flow import Credit, Outbox
from .tunnel import StreamTransport

# RFC 9113 8.2.2: connection-specific fields must not appear in HTTP/2; HTTP/1.1 drops the same ones
_HOP = frozenset(("connection", "transfer-encoding")) | HOP_BY_HOP
_UPGRADE_ONLY = _HOP | {"sec-websocket-accept"}    # an HTTP/1.1 101's fields, meaningless on a stream
SENDFILE_CHUNK = 64 * 1024
log = logging.getLogger("skitai.server")


def trailer_fields(trailers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Trailer names checked as tokens and lower-cased, values without CR/LF/NUL (a gRPC status, say):
    h2 does not check what we send. Raises ``HeaderError``."""
    out = []
    names = FIELD_NAMES
    for name, value in trailers:
        name = names.get(name) or field_name(name)
        if not isinstance(value, str) or "\r" in value or "\n" in value or "\0" in value:
            raise HeaderError(f"bad value in trailer {name!r}")
        out.append((name, value))
    return out


def h2_head(status: int, headers: list[tuple[str, str]], length: int = -1,
            head_only: bool = False) -> tuple[list[tuple[str, str]], int]:
    """``:status`` first, names checked as tokens and lower-cased (``field_name``, as for HTTP/1.1),
    values str without CR/LF/NUL, hop-by-hop fields dropped, Server/Date added if absent. ``content-length``
    comes last, as HTTP/1.1 frames it: a whole body (``length`` >= 0) gets its own length (the handler's
    is kept only for HEAD, where no body shows what it would be); a stream (``length`` < 0) keeps the
    handler's; a 204 or 304 gets none (RFC 9113 8.1.1 allows the handler's on a 304, but h2 clients such
    as httpx's end the whole connection on it: it says nothing the client needs). Raises ``HeaderError``, also for
    a 1xx status: interim answers are the protocol's, a handler's 1xx would leave the stream unanswered.
    ``h2_head`` also returns the handler's Content-Length (-1: none)."""
    if status < 200:
        raise HeaderError(f"status {status} cannot be the answer")
    out = [(":status", str(status))]
    seen_server = seen_date = False
    app_len = None
    names = FIELD_NAMES
    for name, value in headers:
        name = names.get(name) or field_name(name)
        if name in _HOP:
            continue
        if type(value) is not str and not isinstance(value, str):
            raise HeaderError(f"the value of header {name!r} is {type(value).__name__}, not str")
        if "\r" in value or "\n" in value or "\0" in value:
            raise HeaderError(f"CR, LF or NUL in header {name!r}")
        if name == "content-length":
            app_len = value.strip()
            if not app_len.isdigit() or not app_len.isascii():
                raise HeaderError(f"invalid Content-Length {app_len!r}")
            continue
        seen_server = seen_server or name == "server"
        seen_date = seen_date or name == "date"
        out.append((name, value))
    if not seen_server:
        out.append(("server", clock.SERVER))
    if not seen_date:
        out.append(("date", clock.DATE))
    if status == 204 or status == 304:
        pass
    elif length < 0 or head_only and app_len is not None:
        if app_len is not None:
            out.append(("content-length", app_len))
    else:
        out.append(("content-length", str(length)))
    return out, -1 if app_len is None else int(app_len)


class H2Exchange(BaseExchange):
    """Answers one stream. ``trailers`` (set before ``end()``) go out after the body;
    ``push(path)`` promises a resource when the client allows push."""

    __slots__ = ("proto", "stream_id", "head_only", "trailers", "request_trailers", "outbox", "credit",
                 "pushed", "tunnel", "remaining")

    def __init__(self, proto: Any, stream_id: int, request: Any, pushed: bool = False) -> None:
        BaseExchange.__init__(self, request, proto.loop, proto.config)
        self.proto = proto
        self.stream_id = stream_id
        self.head_only = request.method == "HEAD"
        self.trailers: list[tuple[str, str]] | None = None
        self.request_trailers: list[tuple[str, str]] | None = None
        self.outbox = Outbox()
        self.credit = Credit()
        self.pushed = pushed
        self.tunnel: StreamTransport | None = None    # an extended CONNECT stream carrying a protocol
        self.remaining = -1          # body bytes the handler's Content-Length allows (-1: no limit, -2: cut)

    # -- answers --------------------------------------------------------------------------------
    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes = b"",
                reason: str | None = None) -> None:
        if self.state == IDLE and not self.closed and not self.head_only and self.trailers is None \
                and status >= 200:
            if status == 204 or status == 304:
                body = b""                        # no content, whatever the handler gave
            block, app_len = h2_head(status, headers, len(body))
            self.state = STREAMING
            if self.proto.send_whole(self, block, body):      # one step for a whole small answer
                if app_len >= 0 and app_len != len(body) and status != 304 and status != 204:
                    length_mismatch(self, app_len, f"its body has {len(body)} bytes: sent with that length")
                self.status = status
                self.t_respond = self.t_done = time.monotonic()
                self.bytes_out = len(body)
                self.state = DONE
                if accesslog.enabled:
                    accesslog.log(self, "PUSH" if self.pushed else None)
                return
            self.state = IDLE
        self.start(status, headers, reason, len(body))
        self.end(body)

    def start(self, status: int, headers: list[tuple[str, str]], reason: str | None = None,
              length: int = -1) -> None:
        if self.state != IDLE:
            if self.closed:
                return
            raise RuntimeError("the answer has already started")
        block, app_len = h2_head(status, headers, length, self.head_only)  # HeaderError: nothing sent
        if status == 204 or status == 304:
            self.head_only = True        # no content, whatever the handler gives (as HEAD)
        elif app_len >= 0 and not self.head_only:
            if length < 0:
                self.remaining = app_len          # a stream: cut at app_len, reset if it ends short
            elif app_len != length:
                length_mismatch(self, app_len, f"its body has {length} bytes: sent with that length")
        self.state = STREAMING
        self.status = status
        self.t_respond = time.monotonic()
        if not self.closed:
            self.proto.send_headers(self, block)

    def _queue(self, data: bytes) -> None:
        rem = self.remaining
        if rem != -1:                    # the handler gave a Content-Length: never send more
            if rem == -2:
                return                   # cut already
            if len(data) > rem:
                length_mismatch(self, self.bytes_out + rem, "its body goes on: cut at that length")
                data = data[:rem]
                self.remaining = -2
            else:
                self.remaining = rem - len(data)
        self.bytes_out += len(data)
        if data and not self.head_only:
            self.outbox.put(bytes(data))

    def send(self, data: bytes) -> None:
        """Queue ``data`` now without waiting (``write`` is the waiting form; WSGI workers pace themselves
        with ``when_writable``)."""
        if self.state != STREAMING:
            if self.closed:
                return
            raise RuntimeError("send() outside start()...end()")
        if self.closed:
            raise ClientDisconnected("the stream was reset")
        self._queue(data)
        self.proto.pump(self)

    def abort(self) -> None:
        """Cut this answer (the app failed mid-stream): RST_STREAM INTERNAL_ERROR, the connection lives on."""
        self.proto.reset(self, 2)

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ClientDisconnected("the stream was reset")
        if self.state != STREAMING:
            raise RuntimeError("write() outside start()...end()")
        self._queue(data)
        self.proto.pump(self)
        await self.outbox.drained(self.loop)
        await self.proto.writable()

    def end(self, data: bytes = b"") -> None:
        if self.state == DONE:
            return
        if self.state == IDLE:
            raise RuntimeError("end() before start()")
        self.state = DONE
        self.t_done = time.monotonic()
        if accesslog.enabled:
            accesslog.log(self, "PUSH" if self.pushed else None)
        if self.closed:
            self.proto.stream_done(self)
            return
        trailers = self.trailers
        if trailers is not None:
            try:
                trailers = trailer_fields(trailers)
            except HeaderError as e:      # after the head: only the stream can tell the client
                log.error("HTTP/2 stream %d: bad trailers: %s", self.stream_id, e)
                self.abort()
                return
        self._queue(data)
        if self.remaining > 0:
            # shorter than its Content-Length: END_STREAM would be a malformed answer (RFC 9113 8.1.1)
            length_mismatch(self, self.bytes_out + self.remaining, f"{self.remaining} bytes were missing "
                            "at its end: the stream is reset")
            self.proto.pump(self)
            self.abort()
            return
        self.outbox.trailers = trailers
        self.outbox.ending = True
        self.proto.pump(self)

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        """Reads ``file`` in chunks no larger than a DATA burst; flow control paces the reads."""
        file.seek(offset)
        while count > 0:
            chunk = file.read(min(SENDFILE_CHUNK, count))
            if not chunk:
                break
            count -= len(chunk)
            await self.write(chunk)

    def push(self, path: str, headers: list[tuple[str, str]] | None = None) -> None:
        """Promise ``path`` (``was.response.hint_promise``). Callable from a worker thread too: the promise
        then crosses to the loop ahead of the answer the same thread posts afterwards."""
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self.proto.push(self, path, headers or [])
        else:
            self.loop.call_soon_threadsafe(self.proto.push, self, path, headers or [])

    def when_writable(self, callback: Callable[[], None]) -> None:
        if self.outbox.size < self.outbox.high_water and not self.proto.write_paused:
            callback()
            return

        async def later() -> None:
            # a reset between now and this task's first step wakes no waiter (none exists yet): check first;
            # from ``drained`` creating its waiter on, a reset reaches it
            try:
                if not self.closed:
                    await self.outbox.drained(self.loop)
                if not self.closed:
                    await self.proto.writable()
            except ClientDisconnected:
                pass
            callback()
        asyncio.ensure_future(later())

    def upgrade(self, protocol_factory: Callable[[], Any], headers: list[tuple[str, str]] | None = None):
        """Extended CONNECT (RFC 8441): answer 200 with ``headers`` and carry ``protocol_factory()`` on this
        stream, its bytes as DATA. Connection-level fields of an HTTP/1.1 upgrade answer (``Upgrade``,
        ``Connection``, ``Sec-WebSocket-Accept``) are dropped: HTTP/2 has none. Returns the protocol."""
        if self.state != IDLE:
            raise RuntimeError("upgrade() after the answer started")
        if self.closed:
            raise ClientDisconnected("the stream was reset")
        if not self.request.upgrade:           # set only for an extended CONNECT (H2Protocol._on_request)
            raise RuntimeError("only an extended CONNECT stream can carry another protocol")
        kept = [(n, v) for n, v in headers or [] if n.lower() not in _UPGRADE_ONLY]
        self.start(200, kept)
        protocol = protocol_factory()
        self.tunnel = StreamTransport(self, protocol)
        protocol.connection_made(self.tunnel)
        stream = self.proto.conn.streams.get(self.stream_id)
        if stream is not None and stream.state_machine.state is StreamState.HALF_CLOSED_REMOTE:
            # the client ended its side before the protocol was on the stream: that END_STREAM found no
            # tunnel to tell, and nothing more will come
            self.loop.call_soon(self.tunnel.peer_ended)
        return protocol

    # -- from the protocol ----------------------------------------------------------------------
    def reset(self) -> None:
        """The client reset the stream (or the connection went away)."""
        if self.closed:
            return
        self.closed = True
        self.request.body.fail(ClientDisconnected("the stream was reset"))
        self.outbox.wake(ClientDisconnected("the stream was reset"))
        if self.tunnel is not None:
            self.tunnel.lost()
