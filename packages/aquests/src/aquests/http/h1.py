"""One HTTP/1.1 connection: httptools parses the response, one request at a time."""
from __future__ import annotations

import asyncio
import time

import httptools

from .body import Body, BodyStream
from .errors import ConnectionClosed, ProtocolError

MAX_HEADER_SIZE = 64 * 1024          # bytes of response header lines (names, values, ": " and CRLF)
HEAD_SLACK = 4096                    # room for the status line on top of MAX_HEADER_SIZE
MAX_BODY_SIZE = 256 * 1024 * 1024    # bytes of a buffered (non-streamed) response body
MAX_HEADER_COUNT = 256               # header lines in one response head (read at call time)
_MAGIC = b"HTTP/"                    # what a response must start with (httptools also takes RTSP/ and ICE/)


class H1Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection. The pool hands it to one request at a time."""

    http2 = False

    def __init__(self, max_header_size: int = MAX_HEADER_SIZE, max_body_size: int = MAX_BODY_SIZE) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.closed = False
        self.idle_since = time.monotonic()
        self.on_idle = None  # set by the client: called when a streamed body has been read
        self.served = 0      # requests sent on this connection
        self.waiter: asyncio.Future | None = None
        self.stream: BodyStream | None = None
        self._write_waiter: asyncio.Future | None = None
        self._paused_writing = False
        self._cb_exc: BaseException | None = None
        self._fresh_parser = False
        self._reset(False, False)

    def _reset(self, head_only: bool, stream: bool) -> None:
        if self._fresh_parser:
            self.parser = httptools.HttpResponseParser(self)
            self._fresh_parser = False
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []  # fields after a chunked body: never headers
        self.hsize = 0
        self.framing = 0               # bytes read since the last body byte (chunk lines, trailers)
        self.head_bytes = 0            # bytes of the head seen on the wire (the parser holds a long line whole)
        self.body: list[bytes] = []
        self.bsize = 0
        self.head_only = head_only
        self.want_stream = stream
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self._has_length = False
        self._magic = 0                # bytes of "HTTP/" checked at the start of the answer

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        busy = (self.waiter is not None and not self.waiter.done()) or (
            self.stream is not None and not self.complete)
        if busy:
            if self.headers_done and self.until_close and exc is None:
                self.keep_alive = False
                self.on_message_complete()
            elif self.headers_done:
                # only a clean close ends a close-delimited body: after a reset it may be cut short
                how = "reset" if exc is not None else "closed"
                self._fail(ConnectionClosed(f"server {how} the connection mid-body after {self.bsize} bytes"))
            else:
                self._fail(ConnectionClosed("server closed the connection before sending a response"))
        w = self._write_waiter
        if w is not None and not w.done():
            w.set_exception(ConnectionClosed("connection lost while sending the request"))

    def data_received(self, data: bytes) -> None:
        if self.complete or (self.waiter is None and self.stream is None):
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        if self._magic < 5:
            got = data[:5 - self._magic]
            if got != _MAGIC[self._magic:self._magic + len(got)]:
                self._fail(ProtocolError(f"not an HTTP/1.x response: {bytes(data[:20])!r}"))
                return
            self._magic += len(got)
        in_body, before = self.headers_done, self.bsize
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            self._fail(self._cb_exc or ProtocolError("malformed response"))
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("unexpected protocol upgrade in response"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed response: {exc}"))
        if not self.headers_done and not self.closed:
            # httptools calls on_header only once a line is whole: a line that never ends would grow
            # in the parser until the timeout, so the head is also measured as it arrives
            self.head_bytes += len(data)
            if self.head_bytes > self.max_header_size + HEAD_SLACK:
                self._fail(self._too_large())
        elif in_body and not self.complete and not self.closed:
            # chunk-size lines, chunk extensions and trailers carry no body bytes: httptools skips an
            # extension and holds a trailer line whole until it ends, so an endless one would stall
            # (or grow in memory) until the timeout; they get the head's bound instead
            self.framing = self.framing + len(data) if self.bsize == before else 0
            if self.framing > self.max_header_size + HEAD_SLACK:
                self._fail(ProtocolError(f"chunk extensions or trailers exceed the {self.max_header_size}-byte "
                                         f"header limit"))

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        w = self._write_waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- httptools callbacks --------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            # bytes after the end of the answer (a body longer than its Content-Length): they must not
            # be read as a second answer to this request; the connection is dropped instead
            self._cb_exc = ProtocolError("bytes after the end of the response")
            raise self._cb_exc

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.hsize += len(name) + len(value) + 4
        if self.hsize > self.max_header_size:
            self._cb_exc = self._too_large()
            raise self._cb_exc
        # httptools reports trailers as headers: they are kept apart, so a trailer cannot add a
        # Set-Cookie, Location or Content-Encoding to the head the answer was judged by
        (self.trailers if self.headers_done else self.headers).append((name, value))
        if len(self.headers) + len(self.trailers) > MAX_HEADER_COUNT:
            self._cb_exc = ProtocolError(f"more than {MAX_HEADER_COUNT} response header lines")
            raise self._cb_exc

    def _too_large(self) -> ProtocolError:
        return ProtocolError(f"response headers exceed the {self.max_header_size}-byte limit")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 1xx informational: wait for the real response
            self.reason = b""
            self.headers = []
            self.hsize = 0
            return
        if not 100 <= status <= 599:
            # RFC 9110 15: 100-599 only; 7xx would also read as one of our own failure codes
            self._cb_exc = ProtocolError(f"invalid status code {status}")
            raise self._cb_exc
        if not self.parser.get_http_version().startswith("1."):
            self._cb_exc = ProtocolError(f"HTTP/{self.parser.get_http_version()} response on an HTTP/1.1 connection")
            raise self._cb_exc
        self.status = status
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only or status in (204, 304):
            # no body, whatever the headers say: a byte after this head spoils the connection (on_body)
            self._fresh_parser = True
            self.on_message_complete()
            return
        length = None
        te: list[bytes] = []
        for name, value in self.headers:
            n = name.lower()
            if n == b"content-length":
                length = value
            elif n == b"transfer-encoding":
                te += [c for c in (c.strip().lower() for c in value.split(b",")) if c and c != b"identity"]
        if te:
            if te != [b"chunked"]:
                # gzip/compress/... as a transfer coding is not ours to undo: handing out the coded
                # bytes as the body would be a silent corruption
                self._cb_exc = ProtocolError(f"unsupported Transfer-Encoding {b', '.join(te).decode('latin-1')!r}")
                raise self._cb_exc
            self._has_length = True
        elif length is not None:
            self._has_length = True
            n = int(length) if length.strip().isdigit() else 0  # httptools has checked it
            if not self.want_stream and n > self.max_body_size:
                # no need to read (or wait for) a body we are going to refuse
                self._cb_exc = self._body_too_large(f"Content-Length {n}")
                raise self._cb_exc
        if not self._has_length:
            self.until_close = True
            self.keep_alive = False
        if self.want_stream:
            self.stream = BodyStream(self.transport.pause_reading, self.transport.resume_reading)
            self.stream.on_close = self._stream_closed
            w = self.waiter
            if w is not None and not w.done():
                w.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.complete:
            # a body after a head that has none (HEAD, 204, 304): not part of the answer, and the
            # connection no longer knows where the next answer starts
            self._cb_exc = ProtocolError("body bytes in a response that has no body")
            raise self._cb_exc
        self.bsize += len(body)
        if self.stream is not None:
            self.stream.feed(body)
        else:
            if self.bsize > self.max_body_size:
                self._cb_exc = self._body_too_large("response body")
                raise self._cb_exc
            self.body.append(body)

    def _body_too_large(self, what: str) -> ProtocolError:
        return ProtocolError(f"{what} exceeds the {self.max_body_size}-byte limit (use stream=True)")

    def on_message_complete(self) -> None:
        if not self.headers_done or self.complete:
            return
        self.complete = True
        if self.keep_alive and not self.parser.should_keep_alive():
            self.keep_alive = False    # "Connection: close" in the trailers: the parser takes no more answers
        if self.stream is not None:
            # the connection goes back to the pool now: closing this finished stream later must not
            # touch it (another request may be using it by then)
            self.stream.on_close = None
            self.stream.feed_eof()
            self._done_streaming()
        else:
            w = self.waiter
            if w is not None and not w.done():
                w.set_result(None)

    # -- request --------------------------------------------------------------------------------
    async def request(self, head: bytes, body: Body, *, head_only: bool = False, stream: bool = False) -> None:
        """Send one request and wait for the response (its head only, when ``stream``)."""
        self._reset(head_only, stream)
        self.stream = None
        self.served += 1
        fut = self.waiter = asyncio.get_running_loop().create_future()
        try:
            if body.data is not None:
                self.transport.write(head + body.data if body.data else head)
            else:
                await self._send_stream(head, body, fut)
            await fut
        except BaseException:
            self.close()
            raise
        finally:
            self.waiter = None

    async def _send_stream(self, head: bytes, body: Body, fut: asyncio.Future) -> None:
        write = self.transport.write
        write(head)
        chunked = body.length is None
        async for chunk in body.chunks():
            write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if self._paused_writing:
                self._write_waiter = asyncio.get_running_loop().create_future()
                await self._write_waiter
            if fut.done() or self.closed:  # the server answered (or hung up) early
                return
        if chunked:
            write(b"0\r\n\r\n")

    # -- state ----------------------------------------------------------------------------------
    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed

    def _fail(self, exc: BaseException) -> None:
        if self.complete:            # the answer is whole: only the connection is spoilt
            self.keep_alive = False
            self.close()
            return
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(exc)
        elif self.stream is not None:
            self.stream.set_exception(exc)
            self._done_streaming()
        self.close()

    def expire(self) -> None:
        """Called by :class:`~aquests.http.deadline.Deadlines` when the request is overdue."""
        self._fail(TimeoutError("no answer within the timeout"))

    def _stream_closed(self) -> None:
        if not self.complete:
            self.close()
        self._done_streaming()

    def _done_streaming(self) -> None:
        cb, self.on_idle = self.on_idle, None
        if cb is not None:
            cb(self)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


__all__ = ["H1Connection", "MAX_HEADER_SIZE", "MAX_BODY_SIZE"]
