"""One HTTP/2 connection (hyper-h2) carrying many streams, with flow control and trailers."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hyperframe.frame

from .body import BodyStream
from .errors import ClientError, ConnectionClosed, ProtocolError, Unprocessed
from .h1 import MAX_HEADER_SIZE

if TYPE_CHECKING:
    from hyperframe.frame import Frame, GoAwayFrame  # h2's own framing

WINDOW = 4 * 1024 * 1024  # receive window we advertise, per stream and for the connection
# PING/SETTINGS frames (each needing an answer from us) accepted while the server is not reading
# what we write; past this it is flooding us and the connection is dropped
MAX_UNREAD_CONTROL = 1000


class _MalformedMessage(h2.exceptions.ProtocolError):
    """h2's checks of what one stream received failed: a stream error, not a connection error."""

    def __init__(self, stream_id: int, cause: h2.exceptions.ProtocolError) -> None:
        super().__init__(str(cause))
        self.stream_id = stream_id
        self.cause = cause


class _CheckedStream(h2.stream.H2Stream):
    """h2's stream, whose checks of a received response (its content-length, a HEADERS or DATA
    frame out of order, trailers without END_STREAM, ...) raise ``_MalformedMessage``. They run
    after the frame's connection-level processing (HPACK, connection window) is done, so the
    message is malformed and only its stream is at fault (RFC 9113 8.1.1: a stream error)."""

    __slots__ = ()  # the layout of h2's class, so that a stream h2 made can become one of these

    def receive_headers(self, headers, end_stream, header_encoding):  # type: ignore[no-untyped-def]
        try:
            return super().receive_headers(headers, end_stream, header_encoding)
        except (h2.exceptions.StreamClosedError, h2.exceptions.FlowControlError):
            raise  # h2 already sorts these into stream and connection errors
        except h2.exceptions.ProtocolError as exc:
            raise _MalformedMessage(self.stream_id, exc) from exc

    def receive_data(self, data, end_stream, flow_control_len):  # type: ignore[no-untyped-def]
        try:
            return super().receive_data(data, end_stream, flow_control_len)
        except (h2.exceptions.StreamClosedError, h2.exceptions.FlowControlError):
            raise
        except h2.exceptions.ProtocolError as exc:
            raise _MalformedMessage(self.stream_id, exc) from exc


class _StreamError(h2.events.Event):
    """Our event: a response on ``stream_id`` was malformed and we reset that stream."""

    def __init__(self, stream_id: int, error_code: int, reason: str) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.reason = reason


class _GoawayKeepsStreams(h2.connection.H2Connection):
    """h2, except that the server's GOAWAY leaves the streams it will still process usable (RFC 9113 6.8),
    and that a malformed response resets its stream only (RFC 9113 5.4.2).

    h2 closes its state machine on a GOAWAY and drops what is queued to send, so the answers to streams
    at or below the GOAWAY's last stream id would be refused as protocol errors, and our WINDOW_UPDATEs
    for them could not go out. Here the GOAWAY only becomes the ``ConnectionTerminated`` event;
    ``H2Connection`` then fails the streams above the last id and opens no new ones.

    h2 raises every error its streams find as a connection error (GOAWAY, every stream failed).
    Here the errors of one stream's message (see ``_CheckedStream``) send RST_STREAM for that
    stream and become a ``_StreamError`` event; the connection and its other streams go on.
    Connection errors (a header block HPACK cannot decode, flow control, a frame on a stream never
    opened, ...) stay connection errors."""

    def _begin_new_stream(self, stream_id: int, allowed_ids: h2.connection.AllowedStreamIDs) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream.__class__ = _CheckedStream  # the same object, with the checks above
        return stream

    def _receive_frame(self, frame: Frame) -> list[h2.events.Event]:
        try:
            return super()._receive_frame(frame)
        except _MalformedMessage as exc:
            return self._stream_error(frame, exc.stream_id, exc.cause)

    def _stream_error(self, frame: Frame, sid: int, cause: h2.exceptions.ProtocolError) -> list[h2.events.Event]:
        """Reset stream ``sid`` with the error's code; the connection goes on."""
        code = cause.error_code
        stream = self.streams[sid]
        if not stream.closed:
            self.reset_stream(sid, code)
        else:  # h2's stream state machine closed it as it raised: send the RST_STREAM ourselves
            stream.state_machine.stream_closed_by = h2.stream.StreamClosedBy.SEND_RST_STREAM
            rst = hyperframe.frame.RstStreamFrame(sid)
            rst.error_code = code
            self._prepare_for_sending([rst])
        # either way the stream now counts as closed by our reset: h2 ignores its frames still on the way
        flow = getattr(frame, "flow_controlled_length", 0)
        if flow:  # DATA nobody will read: give its share of the connection window back
            self.acknowledge_received_data(flow, sid)
        if isinstance(cause, h2.exceptions.InvalidBodyLengthError):
            reason = (f"the response body does not match its content-length ({cause.expected_length} "
                      f"bytes; {cause.actual_length} received)")
        else:
            reason = f"malformed response ({cause})"
        return [_StreamError(sid, code, reason)]

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list, list]:
        event = h2.events.ConnectionTerminated()
        try:
            event.error_code = h2.errors.ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


class H2Stream:
    """One request/response exchange; the body is read as it arrives (acknowledged when consumed)."""

    def __init__(self, conn: "H2Connection", stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers_fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self.body = BodyStream(consumed=lambda n: conn.ack(stream_id, n))
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.ended = False
        self.on_done: Callable[[], None] | None = None

    async def response(self) -> list[tuple[bytes, bytes]]:
        """The response headers (waits for them)."""
        return await self.headers_fut

    async def send(self, data: bytes, end_stream: bool = False) -> None:
        await self.conn.send_data(self.id, data, end_stream)

    def end(self) -> None:
        self.conn.end_stream(self.id)

    def reset(self) -> None:
        self.conn.reset(self.id)
        self._fail(ConnectionClosed("stream cancelled"))

    def _fail(self, exc: BaseException) -> None:
        if not self.headers_fut.done():
            self.headers_fut.set_exception(exc)
            self.headers_fut.exception()  # mark retrieved: the caller may never await it
        self.body.set_exception(exc)
        self._finish()

    def _finish(self) -> None:
        self.ended = True
        self.conn.streams.pop(self.id, None)
        cb, self.on_done = self.on_done, None
        if cb is not None:
            cb()


class H2Connection(asyncio.Protocol):
    http2 = True

    def __init__(self, max_streams: int = 100, max_header_size: int = MAX_HEADER_SIZE) -> None:
        # our own header checks run when a request is built; skipping h2's per-frame
        # validation and normalisation keeps the per-request cost down
        self.h2 = _GoawayKeepsStreams(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False,
            normalize_inbound_headers=False))
        self.max_streams = max_streams
        self.max_header_size = max_header_size
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.reserved = 0          # streams handed out by the pool
        self.closed = False
        self.goaway = False
        self.settings_seen = False
        self.idle_since = time.monotonic()
        self._window = asyncio.Event()
        self._settings = asyncio.Event()  # the server's first SETTINGS came (or the connection ended)
        self._unread_control = 0
        self._error: BaseException | None = None
        self._paused_writing = False
        self._drain = asyncio.Event()
        self._drain.set()
        self._flush_pending = False
        self._head: bytes | None = b""  # the first bytes received, until they prove to be HTTP/2

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        c = self.h2
        c.initiate_connection()
        c.update_settings({
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.max_header_size,
        })
        c.increment_flow_control_window(WINDOW)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_all(ConnectionClosed("server closed the HTTP/2 connection" if self.settings_seen else
                                        "server closed the connection without an HTTP/2 SETTINGS frame "
                                        "(does it speak HTTP/2?)"))
        self._window.set()
        self._drain.set()
        self._settings.set()

    def pause_writing(self) -> None:
        self._drain.clear()

    def resume_writing(self) -> None:
        self._drain.set()
        self._unread_control = 0

    async def ready(self) -> None:
        """Wait for the server's SETTINGS: until they come its stream limit is unknown."""
        await self._settings.wait()

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            # a server's first frame is SETTINGS (type 4); anything else is not HTTP/2 at all,
            # and h2 would just wait for the rest of a "frame" that never comes
            self._head += data
            if len(self._head) < 9:
                return
            data, self._head = self._head, None
            if data[3] != 4:
                self._fail_all(ProtocolError(f"HTTP/2 protocol error: the server answered {bytes(data[:24])!r}, "
                                             f"not HTTP/2 SETTINGS"))
                self.close()
                return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail_all(ProtocolError(f"HTTP/2 protocol error: {exc}"))
            self.flush()
            self.close()
            return
        for ev in events:
            self._dispatch(ev)
        self.flush()
        if self._unread_control > MAX_UNREAD_CONTROL and not self.closed:
            self._fail_all(ProtocolError("HTTP/2 protocol error: the server floods PING/SETTINGS frames "
                                         "without reading our answers"))
            self.closed = True  # not reused, even before the loop reports the connection lost
            self.transport.abort()

    def _dispatch(self, ev: h2.events.Event) -> None:
        st = self.streams.get(getattr(ev, "stream_id", 0) or 0)
        if isinstance(ev, h2.events.ResponseReceived):
            if st is None:
                return
            size = sum(len(k) + len(v) for k, v in ev.headers)
            if size > self.max_header_size:
                self.reset(st.id)
                st._fail(ProtocolError(f"response headers exceed the {self.max_header_size}-byte limit"))
                return
            st.headers = ev.headers
            if not st.headers_fut.done():
                st.headers_fut.set_result(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            if st is None:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                return
            pad = ev.flow_controlled_length - len(ev.data)
            if pad:
                self.h2.acknowledge_received_data(pad, ev.stream_id)
            if ev.data:
                st.body.feed(ev.data)
        elif isinstance(ev, h2.events.TrailersReceived):
            if st is not None:
                st.trailers = ev.headers
        elif isinstance(ev, h2.events.StreamEnded):
            if st is not None:
                if not st.headers_fut.done():
                    st._fail(ProtocolError("stream ended without response headers"))
                    return
                st.body.feed_eof()
                st._finish()
        elif isinstance(ev, _StreamError):  # we reset it: the other streams and the connection go on
            if st is not None:
                st._fail(ProtocolError(f"HTTP/2 stream error: {ev.reason}; stream {ev.stream_id} reset "
                                       f"({h2.errors.ErrorCodes(ev.error_code).name})"))
            self._window.set()
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                if ev.error_code == h2.errors.ErrorCodes.REFUSED_STREAM and not st.headers_fut.done():
                    st._fail(Unprocessed("HTTP/2 server refused the stream (REFUSED_STREAM) before acting on it"))
                else:
                    st._fail(ClientError(f"HTTP/2 stream reset by the server (error {ev.error_code!r})",
                                         ProtocolError.code))
            self._window.set()
        elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.settings_seen = True
            self._window.set()
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self._settings.set()
                self._count_control()
        elif isinstance(ev, h2.events.PingReceived):
            self._count_control()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = True
            last = ev.last_stream_id or 0
            for sid, s in list(self.streams.items()):
                if sid > last:
                    s._fail(Unprocessed(f"server sent GOAWAY (error {ev.error_code!r}) before acting on "
                                        f"stream {sid} (last stream it handles: {last})"))
                elif ev.error_code:
                    s._fail(ConnectionClosed(f"server sent GOAWAY (error {ev.error_code!r})"))
            if not self.streams and self.reserved <= 0:
                self.close()  # nothing left to finish here; the pool opens a new connection
            self._window.set()
            self._settings.set()

    def _count_control(self) -> None:
        if not self._drain.is_set():
            self._unread_control += 1

    # -- streams --------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        if self.closed or self.goaway:
            return 0
        limit = min(self.h2.remote_settings.max_concurrent_streams, self.max_streams)
        return limit - self.reserved

    def open_stream(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> H2Stream:
        if self.closed:
            raise self._error or ConnectionClosed("HTTP/2 connection is closed")
        if self.goaway:  # a slot reserved before the GOAWAY came: the server would not process it
            raise Unprocessed("server sent GOAWAY before the stream was opened")
        sid = self.h2.get_next_available_stream_id()
        st = H2Stream(self, sid)
        self.streams[sid] = st
        self.h2.send_headers(sid, headers, end_stream=end_stream)
        self.flush_soon()
        return st

    async def send_data(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        view = memoryview(data)
        c = self.h2
        while view:
            if self.closed or sid not in self.streams:
                raise ConnectionClosed("stream closed while sending the request body")
            try:
                n = min(c.local_flow_control_window(sid), c.max_outbound_frame_size, len(view))
            except h2.exceptions.StreamClosedError:
                return  # the server already answered and closed its side; it will not read more
            if n <= 0:
                self._window.clear()
                await self._window.wait()
                continue
            c.send_data(sid, view[:n].tobytes())
            view = view[n:]
            self.flush()
            if not self._drain.is_set():
                await self._drain.wait()
        if end_stream:
            self.end_stream(sid)

    def end_stream(self, sid: int) -> None:
        try:
            self.h2.end_stream(sid)
        except h2.exceptions.StreamClosedError:
            return
        self.flush()

    def ack(self, sid: int, n: int) -> None:
        if self.closed:
            return
        try:
            self.h2.acknowledge_received_data(n, sid)
        except h2.exceptions.StreamClosedError:
            self.h2.increment_flow_control_window(n)
        self.flush()

    def reset(self, sid: int) -> None:
        try:
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            pass
        self.flush()

    def _fail_all(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc  # why it broke, for a request that comes after (see open_stream)
        for s in list(self.streams.values()):
            s._fail(exc)

    def flush_soon(self) -> None:
        """Coalesce the frames of requests started in the same loop turn into one write."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.h2.close_connection()
                self.flush()
            except h2.exceptions.ProtocolError:
                pass
            if self.transport is not None:
                self.transport.close()

    @property
    def reusable(self) -> bool:
        return not self.closed and not self.goaway
