"""HTTP/1.0 and 1.1 over an asyncio transport, parsed by httptools (llhttp).

One ``H1Protocol`` per connection. The parser turns bytes into ``Request``/``H1Exchange`` objects that are
dispatched one at a time, in arrival order (pipelining: later requests wait in a bounded queue and reading
pauses when it is full). Request bodies stream into a bounded ``Body``; reading pauses while it is full.

Checks llhttp does not do itself are added here: only HTTP/1.0 and 1.1 (505 otherwise), ``Transfer-Encoding``
must be exactly ``chunked``, in one field, and only on 1.1, ``Host`` required once on 1.1, size limits on the
request line (414), headers (431) and body (413, also while a chunked body streams), unknown ``Expect`` (417). llhttp
already rejects CL+TE, duplicate or malformed Content-Length, bad chunk sizes, bare CR/LF, obs-fold and
control characters. After a 4xx for bad input the answer carries ``Connection: close``, reading stops and the
socket is closed once the client has had a moment to read it; the request log gets a line with that status.

Timeouts (checked by the server's once-a-second ``tick``): ``Limits.keep_alive`` while idle between
requests, ``Limits.network_timeout`` while a request is being received (408 if its head is incomplete) or
while the client does not read our answer (bytes still buffered make no progress; a close waits for them),
``Limits.header_timeout`` for a whole request head however it trickles in (408). Pipelined requests are not
dispatched while the client is not reading the answers already written, so answers never pile up; the
trailer section of a chunked body has the header limits (431), and its chunk-size lines (chunk extensions,
which llhttp skips without a callback) may not run past ``max_header_size`` bytes without progress (413).

Hand-over hooks (HTTP/2, WebSocket, CONNECT tunnels)
----------------------------------------------------
* ``exchange.upgrade(protocol_factory, headers=None)`` (any handler, e.g. a WebSocket handler in the chain):
  optionally writes ``101 Switching Protocols`` with ``headers``, then moves the transport to
  ``protocol_factory()`` (an ``asyncio.Protocol``): it gets ``connection_made(transport)`` and
  ``data_received(rest)`` with bytes that followed the request. See ``H1Exchange.upgrade``.
* ``serve(..., upgrades={"h2c": handler, "websocket": handler})``: a request with ``Connection: upgrade`` and
  an ``Upgrade`` token in the mapping goes to ``handler(exchange)`` instead of the dispatcher (same
  signature as ``Dispatch``). It either calls ``exchange.upgrade(...)``, answers normally, or passes the
  exchange on with ``exchange.proto.dispatch(exchange)``. If the connection was not switched, HTTP/1.1
  continues with the bytes after the request.
* ``serve(..., h2_prior_knowledge=factory)``: a connection whose first bytes are ``PRI * HTTP/2.0`` (and a
  TLS connection that negotiated ALPN ``h2``) goes to ``factory()`` with every byte received so far. Without
  it, the preface is answered with 505.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httptools

from . import accesslog, clock, sendfile
from .errors import BadRequest, BodyTooLarge, ClientDisconnected, error_page, status_line
from .exchange import DONE, IDLE, STREAMING, H1Exchange
from .request import EMPTY_BODY, Body, Headers, Request, split_target, valid_host
from .writebatch import batch_for

if TYPE_CHECKING:
    from .accept import ConnectionCount
    from .server import ServerState

log = logging.getLogger("skitai.server")

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_NAMES: dict[bytes, str] = {}   # header name bytes -> lower-case str, shared by connections
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT")}
_monotonic = time.monotonic
_INTERESTING = frozenset(("host", "content-length", "transfer-encoding", "expect", "upgrade"))
_DRAIN_MAX = 64 * 1024          # unread request body we still read and drop to keep the connection
_LINGER = 2.0                   # seconds to read and drop input after an error answer before closing
_PAUSE_PIPE, _PAUSE_BODY, _PAUSE_UPGRADE = 1, 2, 4
_CLOSE_HEADERS = b"Content-Type: text/html; charset=utf-8\r\nConnection: close\r\n"


class H1Protocol(asyncio.Protocol):
    """The HTTP/1.x connection: parser callbacks, the request queue, flow control and timeouts."""

    __slots__ = ("state", "loop", "config", "limits", "dispatch", "transport", "parser", "queue", "active",
                 "receiving", "write_paused", "closing", "peer_eof", "conn_no", "req_no", "client", "server",
                 "scheme", "stamp", "lingering", "_drain_waiters", "_paused", "_dispatching", "_fatal",
                 "_fatal_request", "_error",
                 "_leftover", "_framing", "_priming", "_first", "_pre", "_in_head", "_in_chunks", "_in_tail",
                 "_head_bytes", "_chunk_mark",
                 "_head_began", "_unsent", "_url", "_hdrs", "_max_pipelined", "batch", "__weakref__")

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = state.loop
        self.config = state.config
        self.limits = state.config.limits
        self.dispatch = state.dispatch
        self.transport: Any = None
        self.batch = batch_for(self.loop)             # whole answers of one loop turn leave together
        self.parser: Any = None
        self.queue: deque[H1Exchange] = deque()
        self.active: H1Exchange | None = None
        self.receiving: H1Exchange | None = None      # whose body the parser is feeding
        self.write_paused = False
        self.closing = False
        self.peer_eof = False
        self.conn_no = 0
        self.req_no = 0
        self.client: tuple = ("", 0)
        self.server: tuple = ("", 0)
        self.scheme = "http"
        self.stamp = state.now                         # coarse time of the last activity (see tick)
        self.lingering = False
        self._drain_waiters: list = []
        self._paused = 0
        self._dispatching = False
        self._fatal: tuple[int, str] | None = None
        self._fatal_request: Request | None = None     # what the request log says about the bad request
        self._error: Exception | None = None           # what a parser callback raised (see _bad)
        self._leftover: bytes | None = None            # bytes after an Upgrade request (parser stopped)
        self._framing: bytes | None = None             # body framing of an Upgrade request with a body
        self._priming = False                          # a fresh parser reads a head of ours (_body_after_head)
        self._first = True                             # no byte received yet (prior-knowledge check)
        self._pre = b""
        # per-message parse state
        self._in_head = False
        self._in_chunks = False                        # in a chunked body (its chunk-size lines are counted)
        self._in_tail = False                          # in the trailer section of a chunked body (or may be)
        self._head_bytes = 0                           # bytes fed since the parser last made progress
        self._chunk_mark = 0                           # body bytes received at the last count (progress)
        self._head_began = 0.0                         # coarse time the head being received began
        self._unsent = 0                               # write buffer size at the last tick (progress check)
        self._url = b""
        self._hdrs: list = []

    # ---- connection ------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        st = self.state
        st.conn_count += 1
        st.count.open += 1               # given back in connection_lost, or by the protocol it is handed to
        self.conn_no = st.conn_count
        st.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (peer[0], peer[1])
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.server = (local[0], local[1])
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.scheme = "https"
            if st.h2 is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._hand_over(st.h2, b"")
                return
        transport.set_write_buffer_limits(high=self.limits.write_buffer_high)
        self.parser = httptools.HttpRequestParser(self)
        self.stamp = st.now
        self._max_pipelined = self.limits.max_pipelined

    def connection_lost(self, exc) -> None:
        self.closing = True
        self.parser = None
        self.state.connections.discard(self)
        self.state.count.closed()
        err = ClientDisconnected("the client went away")
        for ex in (self.active, self.receiving, *self.queue):
            if ex is not None:
                ex.closed = True
                ex.request.body.fail(err)
        self.queue.clear()
        self._wake_writers()

    def eof_received(self) -> bool:
        """The client sends nothing more: a request still coming in is abandoned; answers already in
        progress may finish (half-close), then the connection closes."""
        self.peer_eof = True
        self.flush_held()                # returning False closes the transport: after what it was given
        rec = self.receiving
        if rec is not None or self._in_head:
            if rec is not None:
                rec.closed = True
                rec.request.body.fail(ClientDisconnected("the client closed while sending its request"))
            return False
        if self.active is None and not self.queue:
            return False
        # TLS cannot be half-closed by asyncio's transports: they close at the client's close_notify whatever
        # we return, and True only gets a warning logged for every such connection
        return self.scheme == "http"

    def pause_writing(self) -> None:
        self.write_paused = True
        self.stamp = self.state.now

    def resume_writing(self) -> None:
        self.write_paused = False
        self.stamp = self.state.now
        self._wake_writers()
        if self.active is None and self.queue and not self._dispatching:
            self._next()         # pipelined requests wait while the client is not reading our answers

    def _wake_writers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if callable(w):
                w()
            elif not w.done():
                w.set_result(None)

    async def drain(self) -> None:
        """Return when the transport is below its high-water mark (or the connection is gone)."""
        if self.write_paused and not self.transport.is_closing():
            fut = self.loop.create_future()
            self._drain_waiters.append(fut)
            await fut

    def when_writable(self, callback) -> None:
        if self.write_paused and not self.transport.is_closing():
            self._drain_waiters.append(callback)
        else:
            callback()

    # ---- timers ----------------------------------------------------------------------------------
    def check_timeout(self, now: float) -> None:
        """Called by the server's tick with its coarse clock. Which limit applies depends on what the
        connection is doing: waiting for the client to read what was written (network timeout without
        progress, also while closing), lingering after an error, receiving a request head (header timeout in
        all, network timeout idle) or body (network timeout), running a handler (none) or idle (keep-alive)."""
        if self.transport is None:
            return
        lim = self.limits
        idle = now - self.stamp
        unsent, last = self.transport.get_write_buffer_size(), self._unsent
        self._unsent = unsent
        if unsent:
            # bytes we wrote wait for the client (also after the last answer, while closing): a change
            # restarts the clock, none for network_timeout cuts the connection
            if unsent != last:
                self.stamp = now
            elif idle > lim.network_timeout:
                self.transport.abort()
        elif self.write_paused:          # nothing buffered here, the kernel's buffer is full
            if idle > lim.network_timeout:
                self.transport.abort()
        elif self.lingering:
            if idle > min(_LINGER, lim.network_timeout):
                self.transport.abort()
        elif self._in_head and lim.header_timeout and now - self._head_began > lim.header_timeout:
            self._reject(408, "request head took too long")       # dripped slowly (slowloris)
        elif self._in_head or self.receiving is not None:
            if idle > lim.network_timeout:
                self.stamp = now
                rec = self.receiving
                if rec is None:
                    self._reject(408, "request head timed out")
                    return
                rec.request.body.fail(ClientDisconnected("timed out reading the request body"))
                if rec is self.active and rec.state == IDLE:
                    self._reject(408, "request body timed out")
                else:
                    self.transport.abort()
        elif self.active is None and not self.queue:
            if idle > lim.keep_alive:
                if not self.transport.is_closing():
                    self.flush_held()
                    self.transport.close()
                elif idle > lim.keep_alive + lim.network_timeout:   # a TLS close the client never answers
                    self.transport.abort()

    # ---- bytes in --------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._leftover is not None:
            self._leftover += data
            if len(self._leftover) > _DRAIN_MAX:
                self._pause(_PAUSE_UPGRADE)
            return
        parser = self.parser
        if parser is None:          # closing or lingering: drop input
            return
        if self._first and self.state.h2 is not None:
            data = self._pre + data
            self._pre = b""
            n = min(len(data), len(_PREFACE))
            if data[:n] == _PREFACE[:n]:
                if n < len(_PREFACE):
                    self._pre = data            # wait for the whole preface
                    return
                self._hand_over(self.state.h2, data)
                return
        self._first = False
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self._framing is not None:
                self._body_after_head(data[exc.args[0]:])
                return
            self._leftover = data[exc.args[0]:]
        except httptools.HttpParserCallbackError as exc:
            cause, self._error = self._error or exc.__context__, None
            if isinstance(cause, BadRequest):
                self._reject(cause.status, cause.detail)
            elif isinstance(cause, BodyTooLarge):
                self._reject(413, str(cause))
            else:
                log.error("HTTP/1.1 parser callback failed", exc_info=cause)
                self._reject(500, "")
            return
        except httptools.HttpParserError as exc:
            msg = str(exc)
            if "PRI" in msg and self.req_no == 0:
                self._reject(505, "HTTP/2 is not enabled on this port")
            elif isinstance(exc, httptools.HttpParserInvalidURLError):
                self._reject(400, f"invalid request target: {msg}")
            elif isinstance(exc, httptools.HttpParserInvalidMethodError):
                self._reject(400, "invalid method")
            else:
                self._reject(400, msg)
            return
        if self._in_head or self._in_chunks:
            # bytes of a head (or chunked trailer) still incomplete, or of a chunked body's chunk-size lines,
            # counted from the chunk after the one the parser last made progress in (a callback sets -1)
            if self._head_bytes < 0:
                self._head_bytes = 0
            else:
                self._head_bytes += len(data)
            lim = self.limits
            if self._in_head or self._in_tail:
                if self._head_bytes > lim.max_request_line + lim.max_header_size + 4096:
                    self._reject(431, "request trailers too large" if self._in_tail else "request head too large")
                    return
            elif self._head_bytes > lim.max_header_size and not self._chunk_progress():
                # llhttp skips chunk extensions ("5;name=value") without a callback: a size line that does
                # not end is bytes no other limit counts. 413: they are part of the body, not a header.
                self._reject(413, "chunk extensions too large")
                return
        self.stamp = self.state.now
        if self.queue:
            if self.active is None:
                self._next()
            if len(self.queue) >= self._max_pipelined:
                self._pause(_PAUSE_PIPE)

    # ---- parser callbacks (httptools) ------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_began = self.state.now
        self._head_bytes = -1
        self._url = b""
        self._hdrs = []

    def on_url(self, url: bytes) -> None:
        self._url = self._url + url if self._url else url
        if len(self._url) > self.limits.max_request_line:
            raise self._bad(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # sizes and counts are checked at the end of the head (the raw byte count in data_received
        # bounds a head that never ends); trailers of a chunked body are counted here and dropped
        hdrs = self._hdrs
        hdrs.append((name, value))
        if not self._in_head and len(hdrs) > self.limits.max_headers:
            raise self._bad(431, "too many request trailers")

    def _bad(self, status: int, detail: str) -> BadRequest:
        """The exception a callback raises for bad input, remembered for ``data_received``: httptools hands
        it over only as the ``__context__`` of its ``HttpParserCallbackError``, which Python replaces when
        ``feed_data`` runs while another exception is being handled (the pipelined bytes after an upgrade
        request are parsed from such places), and bad input would become a 500."""
        exc = self._error = BadRequest(status, detail)
        return exc

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._priming:                 # our own head (_body_after_head): the body is the request's
            self._hdrs = []
            return
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise self._bad(505, f"HTTP/{version} is not supported")
        lim = self.limits
        hdrs = self._hdrs
        self._hdrs = []
        if len(hdrs) > lim.max_headers:
            raise self._bad(431, "too many request headers")
        items = []
        host = None
        clen = te = expect = upgrade = None
        names = _NAMES
        size = 0
        for name, value in hdrs:
            k = names.get(name)
            if k is None:
                k = name.decode("latin-1").lower()
                if len(names) < 1024:
                    names[name] = k
            v = value.decode("latin-1")
            size += len(name) + len(value)
            items.append((k, v))
            if k in _INTERESTING:
                if k == "host":
                    if host is not None:
                        raise self._bad(400, "more than one Host header")
                    host = v
                elif k == "content-length":
                    clen = v
                elif k == "transfer-encoding":
                    # a repeat is a list ("gzip" then "chunked" is "gzip, chunked"): checking only the last
                    # field would accept what the single-field form refuses, and a proxy that reads the first
                    # field frames the body differently (request smuggling)
                    if te is not None:
                        raise self._bad(400, "more than one Transfer-Encoding header")
                    te = v
                elif k == "expect":
                    expect = v
                else:
                    upgrade = v
        if size + 4 * len(hdrs) > lim.max_header_size:
            raise self._bad(431, "request headers too large")
        if host is None:
            if version == "1.1":
                raise self._bad(400, "missing Host header")
        elif not valid_host(host):
            raise self._bad(400, "the Host header is not a host and port")
        target = self._url.decode("latin-1")
        if target[:1] == "/" and "#" not in target:
            path, _, query = target.partition("?")
        else:
            path, url_host, query = split_target(target)
            if url_host:
                if not valid_host(url_host):      # absolute-form: its authority is the Host (RFC 9112 3.2.2)
                    raise self._bad(400, "the request target's host is not a host and port")
                host = url_host
        method = parser.get_method()
        method = _METHODS.get(method) or method.decode("ascii")
        self.req_no += 1
        # CONNECT answered without switching to a tunnel (upgrade()) ends the connection: what follows it
        # is the client's tunnel data (a 2xx tells the client the tunnel is open), never requests to parse
        req = Request(method, target, version, Headers(items), self.scheme, host or "", self.client,
                      self.server, EMPTY_BODY, _monotonic(), self.conn_no, self.req_no,
                      parser.should_keep_alive() and method != "CONNECT", "", path, query)
        limit = self.limits.max_body_size
        has_body = False
        if te is not None:
            if version != "1.1":
                raise self._bad(400, "Transfer-Encoding on an HTTP/1.0 request")
            if te.strip().lower() != "chunked":
                raise self._bad(400, "only Transfer-Encoding: chunked is accepted")
            has_body = True
            self._in_chunks = True
            self._head_bytes = -1
            self._chunk_mark = 0
        elif clen is not None:
            n = int(clen)          # llhttp checked the digits
            if n > limit:
                raise self._bad(413, f"Content-Length {n} is over the limit of {limit} bytes")
            has_body = n > 0
        ex = H1Exchange(self, req)
        if has_body:
            body = Body(self.loop, limit, on_drain=self._body_drained)
            req.body = body
            self.receiving = ex
            if expect is not None:
                if expect.strip().lower() != "100-continue":
                    raise self._bad(417, f"unsupported expectation {expect!r}")
                if version == "1.1":
                    req.expect_continue = True
                    body.on_first_read = lambda: self._send_continue(ex)
        elif expect is not None and expect.strip().lower() != "100-continue":
            raise self._bad(417, f"unsupported expectation {expect!r}")
        if upgrade is not None and parser.should_upgrade():
            if has_body:
                # llhttp stops at the end of an Upgrade head, body or not; a request with a body is served
                # as plain HTTP/1.1 (a server may ignore Upgrade, RFC 9110 7.8): curl sends a POST with
                # "Upgrade: h2c" so. Its body must not be read as the next request (request smuggling).
                self._framing = b"Transfer-Encoding: chunked" if te is not None else b"Content-Length: " + \
                    clen.encode("latin-1")
            else:
                req.upgrade = upgrade.split(",", 1)[0].strip().lower()
        self.queue.append(ex)

    def _body_after_head(self, rest: bytes) -> None:
        """Read the body of an Upgrade request that llhttp left unread: a fresh parser is primed with a head
        of ours carrying the request's framing, so llhttp (not we) finds where the body ends; the requests
        pipelined after it parse on the same parser."""
        framing, self._framing = self._framing, None
        self.parser = httptools.HttpRequestParser(self)
        self._priming = True
        try:
            self.parser.feed_data(b"POST / HTTP/1.1\r\nHost: body\r\n" + framing + b"\r\n\r\n")
        finally:
            self._priming = False
        self.data_received(rest)

    def _chunk_progress(self) -> bool:
        """Whether body bytes came out of the parser since the last call (a chunk's data is progress; the
        count of a chunked body's size lines restarts then)."""
        rec = self.receiving
        got = rec.request.body.received if rec is not None else 0
        if got == self._chunk_mark:
            return False
        self._chunk_mark = got
        self._head_bytes = 0
        return True

    def on_chunk_header(self) -> None:
        # the last (empty) chunk is followed by trailers; any body byte says this chunk was not the last
        self._in_tail = True
        self._head_bytes = -1

    def on_body(self, data: bytes) -> None:
        self._in_tail = False
        ex = self.receiving
        try:
            if ex is not None and ex.request.body.feed(data):
                self._pause(_PAUSE_BODY)
        except BodyTooLarge as exc:
            self._error = exc
            raise

    def on_message_complete(self) -> None:
        if self._framing is not None:     # llhttp ends an Upgrade request at its head; the body comes next
            return
        self._url = b""
        self._in_chunks = self._in_tail = False
        self._hdrs = []
        ex = self.receiving
        if ex is not None:
            self.receiving = None
            ex.request.body.feed_eof()

    # ---- flow control ----------------------------------------------------------------------------
    def _pause(self, why: int) -> None:
        if not self._paused and self.transport is not None and not self.closing:
            self.transport.pause_reading()
        self._paused |= why

    def _resume(self, why: int) -> None:
        if self._paused & why:
            self._paused &= ~why
            if not self._paused and not self.closing and self.parser is not None:
                self.transport.resume_reading()

    def _body_drained(self) -> None:
        self._resume(_PAUSE_BODY)

    def _send_continue(self, ex: H1Exchange) -> None:
        if ex.state == IDLE and not ex.closed and not self.closing and ex.request.body.received == 0:
            self.flush_held()
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # ---- dispatch --------------------------------------------------------------------------------
    def _next(self) -> None:
        """Dispatch queued exchanges one at a time; called whenever the connection may have gone idle."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self.active is None and not self.closing:
                if self.queue and self.write_paused:
                    break        # resume_writing dispatches it: answers never pile up unread
                if self.queue:
                    ex = self.queue.popleft()
                    if self._paused & _PAUSE_PIPE and len(self.queue) < self.limits.max_pipelined:
                        self._resume(_PAUSE_PIPE)
                    self.active = ex
                    self._run(ex)
                    continue
                if self._fatal is not None:
                    self._send_fatal()
                elif self._leftover is not None and self.parser is not None:
                    # an Upgrade request answered without switching: HTTP/1.1 goes on
                    rest, self._leftover = self._leftover, None
                    self.parser = httptools.HttpRequestParser(self)
                    self._resume(_PAUSE_UPGRADE)
                    if rest:
                        self._dispatching = False
                        self.data_received(rest)
                        self._dispatching = True
                        continue
                break
        finally:
            self._dispatching = False

    def _run(self, ex: H1Exchange) -> None:
        self.flush_held()                # an earlier answer held in the batch goes before this one's bytes
        handler = self.dispatch
        if ex.request.upgrade:
            handler = self.state.upgrades.get(ex.request.upgrade, handler)
        try:
            result = handler(ex)
        except Exception as exc:
            self.handler_failed(ex, exc)
            return
        if result is not None:
            self.loop.create_task(self._await(ex, result))

    async def _await(self, ex: H1Exchange, result) -> None:
        try:
            await result
        except Exception as exc:
            self.handler_failed(ex, exc)

    def handler_failed(self, ex: H1Exchange, exc: BaseException) -> None:
        """A handler raised: 500 if nothing was sent yet, else cut the connection."""
        if isinstance(exc, ClientDisconnected) or ex.closed:
            return
        log.error("handler failed for %s %s", ex.request.method, ex.request.target, exc_info=exc)
        if ex.state == IDLE:
            ex.keep = False
            ex.error(500, "")
        elif ex.state == STREAMING:
            ex.abort()

    def abort_exchange(self, ex: H1Exchange) -> None:
        """A started answer cannot be finished: flush what was written and close."""
        if ex is self.active:
            self.active = None
        self.closing = True
        self.parser = None
        self.queue.clear()
        if self.transport is not None:
            self.flush_held()
            self.transport.close()

    def response_done(self, ex: H1Exchange) -> None:
        """The exchange wrote its last byte: log it, then go on with the next request or close."""
        if ex is not self.active:
            return
        self.active = None
        if accesslog.enabled:
            accesslog.log(ex)
        if self.receiving is ex:
            if self.unread_body_forces_close(ex):
                ex.keep = False
            ex.request.body.discard()
        elif ex.request.body is not EMPTY_BODY:
            ex.request.body.discard()
        self.stamp = self.state.now
        if not ex.keep or (self.peer_eof and not self.queue):
            self.queue.clear()
            self._linger()
            return
        if not self._dispatching:
            self._next()

    def unread_body_forces_close(self, ex: H1Exchange) -> bool:
        """Answering before the request body is in: keep the connection only if the rest is small enough
        to read and drop (and the client was not waiting for ``100 Continue``)."""
        if self.receiving is not ex:
            return False
        body = ex.request.body
        if ex.request.expect_continue and not body.consumed:
            return True
        left = int(ex.request.headers.get("content-length") or -1) - body.received
        return not 0 <= left <= _DRAIN_MAX

    # ---- errors and closing ----------------------------------------------------------------------
    def flush_held(self) -> None:
        """Write what the loop turn's batch holds for this connection, before bytes that do not pass
        through it (another answer's, a ``100 Continue``) or a close."""
        if self.transport is not None:
            self.batch.drain(self.transport)

    def _reject(self, status: int, detail: str) -> None:
        """Bad input: stop parsing; answer ``status`` after the requests before it, then close."""
        parser = self.parser
        self.parser = None
        self._in_head = self._in_chunks = self._in_tail = False
        self._leftover = self._framing = None
        rec = self.receiving
        self.receiving = None
        exc = BodyTooLarge(detail) if status == 413 else BadRequest(status, detail)
        self._fatal = (status, detail)
        if accesslog.enabled:
            self._fatal_request = rec.request if rec is not None else self._bad_request(parser)
        if rec is not None:
            rec.request.body.fail(exc)
            if rec is self.active:
                if rec.state == IDLE:
                    rec.keep = False
                    rec.error(status, detail)
                    rec.closed = True           # the handler's own answer, if any, is dropped
                else:
                    rec.closed = True
                    self.flush_held()
                    self.transport.close()
                return
            try:
                self.queue.remove(rec)
            except ValueError:
                pass
        if self.active is None:
            self._next()

    def _bad_request(self, parser) -> Request:
        """A stand-in ``Request`` for the log line of input that never became a request ("-" where unknown)."""
        method, version, target = "-", "-", self._url.decode("latin-1") or "-"
        if self._url and parser is not None:
            try:
                method = parser.get_method().decode("latin-1")
                version = parser.get_http_version()
            except Exception:
                pass
            if version == "0.0":
                version = "-"
        hdrs = Headers([(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in self._hdrs[:64]])
        req_no = self.req_no + 1
        return Request(method, target[:1024], version, hdrs, self.scheme, "", self.client, self.server,
                       EMPTY_BODY, _monotonic(), self.conn_no, req_no, False, "", target[:1024], "")

    def _send_fatal(self) -> None:
        status, detail = self._fatal or (400, "")
        self._fatal = None
        body = error_page(status, detail)
        head = status_line(status) + clock.SERVER_DATE + _CLOSE_HEADERS + b"Content-Length: %d\r\n\r\n" % len(body)
        self.flush_held()
        self.transport.write(head + body)
        request, self._fatal_request = self._fatal_request, None
        if request is not None and accesslog.enabled:
            ex = H1Exchange(self, request)
            ex.status, ex.bytes_out, ex.state = status, len(head) + len(body), DONE
            ex.t_respond = ex.t_done = _monotonic()
            accesslog.log(ex)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s:%s rejected: %d %s", self.client[0], self.client[1], status, detail)
        self._linger()

    def _linger(self) -> None:
        """Close after the answer is out; read and drop input for a moment first so the client sees the
        answer instead of a reset."""
        self.closing = True
        self.parser = None
        self.queue.clear()
        t = self.transport
        if t is None or t.is_closing():
            return
        self.flush_held()
        if self.peer_eof:
            t.close()
            return
        if self._paused:
            self._paused = 0
            t.resume_reading()
        if t.can_write_eof():
            try:
                t.write_eof()
            except (OSError, RuntimeError):
                t.close()
                return
            self.lingering = True
            self.stamp = self.state.now
        else:
            t.close()

    # ---- hand-over -------------------------------------------------------------------------------
    def switch(self, ex: H1Exchange, protocol_factory) -> Any:
        """``exchange.upgrade()``: move the transport to a new protocol with the bytes after the request."""
        rest = self._leftover or b""
        self._leftover = None
        self.active = None
        self.queue.clear()
        if accesslog.enabled:
            accesslog.log(ex)
        return self._hand_over(protocol_factory, rest)

    def _hand_over(self, protocol_factory, data: bytes) -> Any:
        self.parser = None
        self.closing = True
        self.state.connections.discard(self)
        t = self.transport
        self.flush_held()                # the 101 (or the last answer) before the new protocol's bytes
        proto = protocol_factory()
        if getattr(proto, "conn_no", None) == 0:       # HTTP/2 keeps this connection's number (GTIDs)
            proto.conn_no = self.conn_no
        t.set_protocol(_counted(proto, self.state.count))
        proto.connection_made(t)
        if self._paused:
            self._paused = 0
            t.resume_reading()
        if data:
            proto.data_received(data)
        return proto

    # ---- zero-copy files -------------------------------------------------------------------------
    async def sendfile(self, file, offset: int, count: int, head: bytes = b"") -> None:
        """``head`` (not sent yet), then ``count`` bytes of ``file`` from ``offset``: see ``http/sendfile.py``."""
        await sendfile.send(self, file, offset, count, head)


def _counted(proto: Any, count: ConnectionCount) -> Any:
    """``proto`` with a ``connection_lost`` that also gives the connection's place back to ``count``: the
    connection stays counted against ``max_connections`` after HTTP/1.1 hands it over (HTTP/2, WebSocket,
    tunnels). An instance attribute, so the protocol's own methods run without a wrapper in between; a
    protocol without ``__dict__`` gets a forwarding wrapper instead."""
    lost = proto.connection_lost
    attrs = getattr(proto, "__dict__", None)

    def connection_lost(exc: BaseException | None) -> None:
        try:
            lost(exc)
        finally:
            count.closed()
            if attrs is not None:
                attrs.pop("connection_lost", None)      # no reference cycle left behind

    if attrs is not None:
        attrs["connection_lost"] = connection_lost
        return proto
    kind = _ForwardBuffered if isinstance(proto, asyncio.BufferedProtocol) else _Forward
    return kind(proto, connection_lost)


class _Forwarding:
    """Passes the transport's calls on to a protocol that cannot take an instance attribute."""

    def __init__(self, proto: Any, lost: Callable[[BaseException | None], None]) -> None:
        self.proto = proto
        self.connection_lost = lost

    def connection_made(self, transport: Any) -> None:
        self.proto.connection_made(transport)

    def eof_received(self) -> bool | None:
        return self.proto.eof_received()

    def pause_writing(self) -> None:
        self.proto.pause_writing()

    def resume_writing(self) -> None:
        self.proto.resume_writing()


class _Forward(_Forwarding, asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        self.proto.data_received(data)


class _ForwardBuffered(_Forwarding, asyncio.BufferedProtocol):
    def get_buffer(self, sizehint: int) -> Any:
        return self.proto.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.proto.buffer_updated(nbytes)
