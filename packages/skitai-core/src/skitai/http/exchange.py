"""Exchanges: one request and its answer (see ``skitai.http.contract.Exchange``).

``BaseExchange`` holds what every protocol shares (state, timing and byte counters for the log line,
``error()``, the no-op ``push()``); HTTP/2 and WebSocket subclass it. ``H1Exchange`` frames answers for
HTTP/1.x: ``Content-Length`` for whole answers, chunked (1.1) or close-delimited (1.0) streams, HEAD without
a body, ``Connection`` handling, and ``upgrade()`` to hand the connection to another protocol.

All methods run on the loop thread. ``respond``/``start`` raise ``HeaderError`` (nothing is sent) when a
header name is not a token (RFC 9110 5.6.2: empty, or a space, colon, control or non-ASCII character in it),
a value or reason contains CR, LF or NUL or is not latin-1, or the status is 1xx (interim answers are the
protocol's: ``100 Continue``, ``101`` through ``upgrade()``): the caller answers 500 instead. Hop-by-hop
fields an app must not set (PEP 3333: ``Keep-Alive``, ``Upgrade``, ``Proxy-Connection``, ``TE``,
``Trailer``) are dropped, not refused: they say nothing about the answer, only about a connection that is
the server's, and an app that copies them from elsewhere still gets its answer out. ``upgrade()`` keeps
``Upgrade`` (the 101 needs it).
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import IO, Any

from . import accesslog, clock, sendfile
from .errors import ClientDisconnected, HeaderError, error_page, status_line

IDLE, STREAMING, DONE = 0, 1, 2          # exchange.state
NO_BODY, FIXED, CHUNKED, UNTIL_CLOSE = 0, 1, 2, 3   # framing of the answer body

_monotonic = time.monotonic
_FRAMING = frozenset(("content-length", "transfer-encoding", "connection"))
HOP_BY_HOP = frozenset(("keep-alive", "upgrade", "proxy-connection", "te", "trailer"))   # dropped from answers
_SPECIAL = _FRAMING | HOP_BY_HOP
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")     # tchar (RFC 9110 5.6.2)
FIELD_NAMES: dict[str, str] = {}    # response header names already checked -> lower case (shared, bounded)
_HTML = [("Content-Type", "text/html; charset=utf-8")]
app_log = logging.getLogger("skitai.app")


def length_mismatch(ex, declared: int, actual: str) -> None:
    """A handler's Content-Length that its body does not match (an app bug: logged, never framed wrong)."""
    req = ex.request
    app_log.error("%s %s: the answer declared Content-Length %d but %s", req.method, req.target, declared,
                  actual)


class BaseExchange:
    """Protocol-independent part of an exchange. Subclasses implement respond/start/write/end/sendfile."""

    __slots__ = ("request", "loop", "config", "closed", "state", "status", "bytes_out", "t_respond", "t_done",
                 "_log_extra", "__weakref__")

    def __init__(self, request, loop, config) -> None:
        self.request = request
        self.loop = loop
        self.config = config
        self.closed = False          # the client went away (or the connection failed): stop producing
        self.state = IDLE            # IDLE → STREAMING (head sent) → DONE
        self.status = 0
        self.bytes_out = 0
        self.t_respond = 0.0         # monotonic time the head went out
        self.t_done = 0.0            # monotonic time the last byte was handed to the transport
        self._log_extra: dict | None = None

    @property
    def log_extra(self) -> dict:
        """``user`` and ``token`` for the request log line (set by auth handlers)."""
        if self._log_extra is None:
            self._log_extra = {}
        return self._log_extra

    def log_extra_or_none(self) -> dict | None:
        return self._log_extra

    @property
    def started(self) -> bool:
        """The head of the answer has been sent (or queued)."""
        return self.state != IDLE

    @property
    def finished(self) -> bool:
        return self.state == DONE

    def error(self, status: int, detail: str = "", *, traceback: bool = False) -> None:
        """A small HTML error page as the whole answer."""
        self.respond(status, list(_HTML), error_page(status, detail, pre=traceback))

    def push(self, path: str, headers: list[tuple[str, str]] | None = None) -> None:
        """HTTP/2 server push; HTTP/1.x ignores it."""

    def when_writable(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (on the loop) once the transport can take more bytes; worker threads use it
        for back-pressure. Protocols with flow control override it."""
        callback()

    def log(self, method: str | None = None) -> None:
        accesslog.log(self, method)

    # The answer: implemented by each protocol.
    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes = b"",
                reason: str | None = None) -> None:
        raise NotImplementedError

    def start(self, status: int, headers: list[tuple[str, str]], reason: str | None = None) -> None:
        raise NotImplementedError

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    def end(self, data: bytes = b"") -> None:
        raise NotImplementedError

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Give up on a started answer; protocols reset the stream or close the connection."""
        self.closed = True
        self.state = DONE

    def upgrade(self, protocol_factory: Callable[[], Any], headers: list[tuple[str, str]] | None = None):
        raise NotImplementedError(f"{type(self).__name__} cannot switch protocols")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request!r} state={self.state}>"


def field_name(name: str) -> str:
    """``name`` in lower case once it is checked to be a token (RFC 9110 5.1): a space or colon in a name
    would change how proxies split the answer. ``FIELD_NAMES`` keeps the names seen, so the usual ones
    cost a dict lookup (``FIELD_NAMES.get(name) or field_name(name)``). Raises ``HeaderError``."""
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        raise HeaderError(f"invalid header name {name!r}")
    lower = name.lower()
    if len(FIELD_NAMES) < 2048:
        FIELD_NAMES[name] = lower
    return lower


def header_block(headers: list[tuple[str, str]],
                 switching: bool = False) -> tuple[bytes, str | None, bool, str | None]:
    """Validate and render response headers for HTTP/1.x (cached for repeated header lists).

    Returns ``(block, content_length, close, connection)``: the encoded ``Name: value\r\n`` lines without
    the framing and hop-by-hop fields (``switching``: a 101, which keeps ``Upgrade``), the handler's
    Content-Length (or None), whether it asked for ``Connection: close``, and any other Connection value.
    Raises ``HeaderError`` on a name that is not a token, CR/LF/NUL or text that is not latin-1."""
    key = None
    if len(headers) <= 8 and not switching:
        key = tuple(headers)
        try:
            hit = _blocks.get(key)
        except TypeError:            # unhashable items (lists): render without the cache
            key = hit = None
        if hit is not None:
            return hit
    lines = []
    app_len = None
    close = False
    conn = None
    names = FIELD_NAMES
    for name, value in headers:
        lname = names.get(name) or field_name(name)
        if type(value) is not str and not isinstance(value, str):
            # PEP 3333: str values. b"v" would go out as "b'v'", 5 as "5" on HTTP/1.1 but be refused on
            # HTTP/2: refused on both (only when the header list is rendered, not per cached answer)
            raise HeaderError(f"the value of header {name!r} is {type(value).__name__}, not str")
        if lname in _SPECIAL:
            if lname in HOP_BY_HOP:
                if switching and lname == "upgrade":
                    lines.append(f"{name}: {value}\r\n")
                continue
            if "\r" in value or "\n" in value or "\0" in value:
                raise HeaderError(f"CR, LF or NUL in header {name!r}")
            if lname == "content-length":
                app_len = value.strip()
                if not app_len.isdigit() or not app_len.isascii():
                    raise HeaderError(f"invalid Content-Length {app_len!r}")
            elif lname == "connection":
                if "close" in value.lower():
                    close = True
                else:
                    conn = value
            continue
        lines.append(f"{name}: {value}\r\n")
    text = "".join(lines)
    n = len(lines)
    if text.count("\n") != n or text.count("\r") != n or "\0" in text:
        raise HeaderError("CR, LF or NUL in a response header")
    result = (_encode(text), app_len, close, conn)
    if key is not None:
        if len(_blocks) >= 512:
            _blocks.clear()
        _blocks[key] = result
    return result


_blocks: dict = {}
_wholes: dict = {}


def whole_parts(status: int, reason: str | None,
                headers: list[tuple[str, str]]) -> tuple[bytes, bytes, int] | None:
    """``(status line, header block, handler's Content-Length or -1)`` of a whole answer to which HTTP/1.1
    adds only ``Content-Length`` (the body's own) and the date, cached per distinct ``(status, reason,
    headers)``; None when the answer needs more (no body allowed, the handler's own ``Connection``). Raises
    like ``header_block``/``status_line``, and TypeError for unhashable header items."""
    key = (status, reason, tuple(headers))
    parts = _wholes.get(key, 0)
    if parts == 0:
        block, app_len, close, conn = header_block(headers)
        line = status_line(status, reason)
        parts = None
        if not close and conn is None and 200 <= status and status != 204 and status != 304:
            parts = (line, block, -1 if app_len is None else int(app_len))
        if len(_wholes) >= 512:
            _wholes.clear()
        _wholes[key] = parts
    return parts


def _encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise HeaderError("a response header is not latin-1") from exc


class H1Exchange(BaseExchange):
    """An HTTP/1.0 or 1.1 exchange on an ``H1Protocol`` connection."""

    __slots__ = ("proto", "keep", "head_only", "mode", "remaining", "declared", "_head")

    def __init__(self, proto, request) -> None:
        self.request = request
        self.loop = proto.loop
        self.config = proto.config
        self.closed = False
        self.state = IDLE
        self.status = 0
        self.bytes_out = 0
        self.t_respond = 0.0
        self.t_done = 0.0
        self._log_extra = None
        self.proto = proto
        self.keep = request.keep_alive       # keep the connection after this answer
        self.head_only = request.method == "HEAD"
        self.mode = NO_BODY
        self.remaining = 0
        self.declared = 0                    # the body length announced (FIXED)
        self._head: bytes | None = None      # a streamed head waiting to go out with the first bytes

    # ---- heads -----------------------------------------------------------------------------------
    def _render(self, status: int, headers: list[tuple[str, str]], reason: str | None, length: int) -> bytes:
        """The head for ``status``; ``length`` is the whole body's size, or -1 for a stream."""
        if status < 200:
            # a 1xx is interim: the client would wait for another answer and take the next one for it
            raise HeaderError(f"status {status} cannot be the answer")
        block, app_len, close, _ = header_block(headers)
        first = status_line(status, reason)
        proto = self.proto
        if proto.closing or (proto.receiving is self and proto.unread_body_forces_close(self)):
            close = True
        if status < 200 or status == 204 or status == 304:
            mode = NO_BODY
            if app_len is not None and status == 304:
                block += b"Content-Length: %s\r\n" % app_len.encode()
        elif length >= 0:
            mode = FIXED
            self.remaining = length
            if self.head_only and app_len is not None:
                block += b"Content-Length: %s\r\n" % app_len.encode()
            else:
                block += b"Content-Length: %d\r\n" % length
                if app_len is not None and int(app_len) != length:
                    length_mismatch(self, int(app_len), f"its body has {length} bytes: sent with that length")
        elif app_len is not None:
            mode = FIXED
            self.remaining = self.declared = int(app_len)
            block += b"Content-Length: %s\r\n" % app_len.encode()
        elif self.request.version == "1.1":
            mode = CHUNKED
            block += b"Transfer-Encoding: chunked\r\n"
        else:
            mode = UNTIL_CLOSE
            close = True
        if self.head_only:
            mode = NO_BODY
        self.mode = mode
        self.status = status
        if close or not self.keep:
            self.keep = False
            return first + clock.SERVER_DATE + block + b"Connection: close\r\n\r\n"
        if self.request.version == "1.0":
            return first + clock.SERVER_DATE + block + b"Connection: keep-alive\r\n\r\n"
        return first + clock.SERVER_DATE + block + b"\r\n"

    # ---- whole answers ---------------------------------------------------------------------------
    def _claim(self) -> bool:
        """May an answer start now? False (quietly) once the client is gone; an answer twice is a bug."""
        if self.state != IDLE:
            if self.closed:
                return False
            raise RuntimeError("the answer has already started")
        if self.closed:
            self.state = DONE
            return False
        return True

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes = b"",
                reason: str | None = None) -> None:
        if not self._claim():
            return
        proto = self.proto
        try:
            parts = whole_parts(status, reason, headers)
        except TypeError:                # unhashable header items: the general path says what is wrong
            parts = None
        if parts is not None and self.keep and not self.head_only and not proto.closing \
                and proto.receiving is not self and self.request.version == "1.1":
            # the common answer: cached status line and headers, only the length and the date vary
            head = parts[0] + clock.SERVER_DATE + parts[1] + b"Content-Length: %d\r\n\r\n" % len(body)
            self.status = status
            self.mode = FIXED
            if parts[2] >= 0 and parts[2] != len(body):
                length_mismatch(self, parts[2], f"its body has {len(body)} bytes: sent with that length")
        else:
            head = self._render(status, headers, reason, len(body))
        self.state = DONE
        if accesslog.enabled:            # the times are only for the log line
            self.t_respond = self.t_done = _monotonic()
        if self.mode == NO_BODY or not body:
            data = head
        elif len(body) <= 65536:
            data = head + body
        else:
            self.proto.transport.write(head)
            data = body
            self.bytes_out = len(head)
        self.bytes_out += len(data)
        proto.batch.write(proto.transport, data)        # with the other answers of this loop turn
        proto.response_done(self)

    # ---- streams ---------------------------------------------------------------------------------
    def start(self, status: int, headers: list[tuple[str, str]], reason: str | None = None) -> None:
        if not self._claim():
            return
        self._head = self._render(status, headers, reason, -1)
        self.state = STREAMING
        self.t_respond = _monotonic()
        # coalesce the head with the first bytes written in this loop iteration
        self.loop.call_soon(self._flush_head)

    def _flush_head(self) -> None:
        head = self._head
        if head is not None and not self.closed:
            self._head = None
            self.bytes_out += len(head)
            self.proto.transport.write(head)

    def send(self, data: bytes) -> None:
        """Frame and write ``data`` now, without waiting for the transport (``write`` is the waiting form)."""
        if self.state != STREAMING:
            if self.closed:
                return
            raise RuntimeError("send() outside start()...end()")
        if self.closed:
            raise ClientDisconnected("the client went away")
        mode = self.mode
        if not data or mode == NO_BODY:
            self._flush_head()
            return
        head = self._head
        self._head = None
        if mode == CHUNKED:
            parts = [b"%x\r\n" % len(data), data, b"\r\n"]
        else:
            if mode == FIXED:
                if len(data) > self.remaining:
                    self._overflow(len(data))
                    data = data[:self.remaining]
                    if not data:
                        self._flush_head()
                        return
                self.remaining -= len(data)
            parts = [data]
        if head is not None:
            parts.insert(0, head)
        n = 0
        for p in parts:
            n += len(p)
        self.bytes_out += n
        self.proto.transport.writelines(parts) if len(parts) > 1 else self.proto.transport.write(parts[0])

    def _overflow(self, size: int) -> None:
        """More body than the Content-Length given: what fits is sent, the rest dropped, the connection is
        closed after the answer, and nothing more of this body goes out."""
        length_mismatch(self, self.declared, f"its body goes on ({size} bytes more offered with "
                        f"{self.remaining} left): cut at the declared length, the connection is closed")
        self.keep = False
        self.mode = NO_BODY

    async def write(self, data: bytes) -> None:
        self.send(data)
        proto = self.proto
        if proto.write_paused:
            await proto.drain()
            if self.closed:
                raise ClientDisconnected("the client went away")
        elif proto.transport.is_closing():
            # the send failed (the client reset the connection): the transport drops what it is given and
            # never pauses, and ``connection_lost`` only runs once this coroutine yields. A producer that
            # never waits (a fast generator on threads=0) would spin here for ever, holding the loop.
            raise ClientDisconnected("the client went away")

    def end(self, data: bytes = b"") -> None:
        if self.state == DONE:
            return
        if self.state == IDLE:
            raise RuntimeError("end() before start()")
        if self.closed:
            self.state = DONE
            return
        if data:
            self.send(data)
        self._flush_head()
        if self.mode == CHUNKED:
            self.bytes_out += 5
            self.proto.transport.write(b"0\r\n\r\n")
        elif self.mode == FIXED and self.remaining > 0:
            self.keep = False            # shorter than announced: only closing tells the client
            length_mismatch(self, self.declared, f"{self.remaining} bytes were missing at its end: "
                            "the connection is closed")
        self.state = DONE
        self.t_done = _monotonic()
        self.proto.response_done(self)

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        """``count`` bytes of ``file`` from ``offset``: zero-copy on plain TCP, reads otherwise."""
        if self.state != STREAMING:
            raise RuntimeError("sendfile() outside start()...end()")
        if self.closed:
            raise ClientDisconnected("the client went away")
        if count <= 0 or self.mode == NO_BODY:
            self._flush_head()
            return
        if self.mode == FIXED:
            if count > self.remaining:
                self._overflow(count)
                count = self.remaining
                if count <= 0:
                    self._flush_head()
                    return
            self.remaining -= count
        head, self._head = self._head or b"", None     # leaves with the file's first bytes (http/sendfile.py)
        t = self.proto.transport
        if self.mode == CHUNKED:
            head += b"%x\r\n" % count
            self.bytes_out += 2
        self.bytes_out += len(head)
        await self.proto.sendfile(file, offset, count, head)
        self.bytes_out += count
        if self.mode == CHUNKED:
            t.write(b"\r\n")

    def offer_file(self, file: IO[bytes], offset: int, count: int) -> int:
        """Zero-copy fast path right after ``start()``: the head and as much of the file as the kernel takes
        now (``http/sendfile.py``); the answer ends when all of it went. Returns the bytes still to send
        (then ``await sendfile(file, offset + count - left, left)``): a whole send needs no task."""
        if self.state != STREAMING or self.closed or self.mode != FIXED or count != self.remaining:
            return count
        head = self._head or b""
        sent = sendfile.offer(self.proto, file, offset, count, head)
        if sent is None:
            return count
        self._head = None
        self.bytes_out += len(head) + sent
        self.remaining -= sent
        if sent == count:
            self.end()
        return count - sent

    def abort(self) -> None:
        """Give up on a started answer (the handler failed mid-stream): the connection is closed so the
        client sees a truncated answer, never a clean end."""
        if self.state == DONE and self.closed:
            return
        self.closed = True
        self.state = DONE
        self.keep = False
        self.proto.abort_exchange(self)

    # ---- back-pressure and protocol switch ------------------------------------------------------
    def when_writable(self, callback: Callable[[], None]) -> None:
        self.proto.when_writable(callback)

    def upgrade(self, protocol_factory: Callable[[], Any], headers: list[tuple[str, str]] | None = None):
        """Hand the connection to ``protocol_factory()`` (an ``asyncio.Protocol``).

        With ``headers`` a ``101 Switching Protocols`` head carrying them goes out first (give ``Upgrade``
        and ``Connection: Upgrade`` yourself); without, the new protocol writes its own answer. The new
        protocol gets ``connection_made(transport)`` and then ``data_received()`` with any bytes the client
        already sent after this request. Returns the new protocol object."""
        if self.state != IDLE:
            raise RuntimeError("upgrade() after the answer started")
        if self.closed:
            raise ClientDisconnected("the client went away")
        if headers is not None:
            block, _, _, conn = header_block(headers, switching=True)
            if conn is not None:
                block += _encode(f"Connection: {conn}\r\n")
            head = status_line(101) + clock.SERVER_DATE + block + b"\r\n"
            self.bytes_out += len(head)
            self.proto.transport.write(head)
        self.status = 101
        self.state = DONE
        self.t_respond = self.t_done = _monotonic()
        return self.proto.switch(self, protocol_factory)
