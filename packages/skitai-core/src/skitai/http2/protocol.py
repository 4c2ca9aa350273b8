"""HTTP/2 on one connection: the h2 state machine glued to an asyncio transport.

Three ways in: ALPN ``h2`` after TLS (``connection_made``), prior knowledge (``takeover`` with the bytes
HTTP/1.1 already read, starting with ``PRI * HTTP/2.0``) and ``Upgrade: h2c`` (``upgrade``: the upgrading
request becomes stream 1). Each request stream gets an ``H2Exchange`` and goes to the same ``dispatch``
as HTTP/1.1. ``guards.FrameGuard`` watches the raw frames for floods before h2 parses them; h2 then
parses them one at a time, so a connection being closed (a limit crossed) stops the parsing of its read.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import struct
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, H2Connection
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, RemoteSettingsChanged, RequestReceived,
                       StreamEnded, StreamReset, TrailersReceived, WindowUpdated)
from h2.exceptions import FrameTooLargeError, InvalidBodyLengthError, ProtocolError, StreamClosedError
from h2.frame_buffer import FrameBuffer
from h2.settings import SettingCodes, Settings
from h2.stream import H2Stream, StreamInputs, StreamState
from hpack import Encoder, HPACKError
from hyperframe.exceptions import InvalidPaddingError
from hyperframe.frame import Frame, GoAwayFrame, WindowUpdateFrame

from skitai.http.errors import BodyTooLarge, ClientDisconnected
from skitai.http.request import EMPTY_BODY, Body, Headers, Request, host_without_port

from .exchange import H2Exchange
from .guards import FrameGuard
from .headers import check_request

log = logging.getLogger("skitai.server")
CONNECTIONS: weakref.WeakSet = weakref.WeakSet()       # live HTTP/2 connections, for GOAWAY on shutdown
_conn_numbers = itertools.count(1)
_PUSH_COPY = ("user-agent", "accept-encoding", "accept-language", "cookie", "authorization")


def _addr(value: Any) -> tuple:
    return (value[0], value[1]) if isinstance(value, tuple) else ("", 0)


class _Stream(H2Stream):
    """A request stream whose malformed message is a stream error (RFC 9113 8.1.1), not h2's connection
    error: a content-length that is not a number, or that the DATA do not add up to (END_STREAM on the
    HEADERS, on the DATA or on the trailers), and trailers without END_STREAM. The stream resets itself
    and raises the error h2 raises for frames on a reset stream, so h2's own handling follows: RST_STREAM
    PROTOCOL_ERROR, the connection window given back, a ``StreamReset`` event (the app's body fails)."""

    def _malformed(self) -> NoReturn:
        self.state_machine.process_input(StreamInputs.SEND_RST_STREAM)
        error = StreamClosedError(self.stream_id)
        error.error_code = ErrorCodes.PROTOCOL_ERROR
        error._events = [StreamReset(stream_id=self.stream_id, error_code=ErrorCodes.PROTOCOL_ERROR,
                                     remote_reset=False)]
        raise error

    def _initialize_content_length(self, headers: Any) -> None:
        try:
            super()._initialize_content_length(headers)
        except ProtocolError:
            self._malformed()

    def _track_content_length(self, length: int, end_stream: bool) -> None:
        try:
            super()._track_content_length(length, end_stream)
        except InvalidBodyLengthError:
            self._malformed()

    def receive_headers(self, headers: Any, end_stream: bool, header_encoding: Any) -> tuple[list, list]:
        machine = self.state_machine
        if machine.headers_received and machine.state in (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL):
            # trailers: they end the request, and h2 checks no content-length when they do
            expected = self._expected_content_length
            if not end_stream or (expected is not None and expected != self._actual_content_length):
                self._malformed()
            return super().receive_headers(headers, end_stream, header_encoding)
        frames, events = super().receive_headers(headers, end_stream, header_encoding)
        if end_stream and self._expected_content_length:
            self._malformed()              # a content-length promised, and no DATA at all
        return frames, events


class _Frames(FrameBuffer):
    """h2's inbound frame buffer, except for a WINDOW_UPDATE of increment 0 on a stream: hyperframe
    rejects it while parsing, which h2 turns into a connection error, but RFC 9113 6.9 makes it a stream
    error. Such a frame is taken off the buffer here and handed on with its increment of 0 (see
    ``_Connection._receive_window_update_frame``); on stream 0 it still goes to hyperframe's check.
    Frame sizes are checked on the frame header (FRAME_SIZE_ERROR), before the payload is buffered."""

    def __next__(self) -> Any:
        data = self._data
        if len(data) >= 9:
            # h2 checks a frame's length only once the whole frame is buffered: refuse an oversized one on
            # its header, not after up to 16 MiB of payload (RFC 9113 4.2)
            length = int.from_bytes(data[:3], "big")
            if length > self.max_frame_size:
                raise FrameTooLargeError(f"frame of {length} bytes, over {self.max_frame_size}")
            if length and data[3] == 0x4 and data[4] & 0x1:
                # hyperframe says PROTOCOL_ERROR; RFC 9113 6.5 says FRAME_SIZE_ERROR
                raise FrameTooLargeError("SETTINGS acknowledgement with a payload")
        if len(data) >= 13 and data[3] == 0x8 and data[:3] == b"\x00\x00\x04" \
                and not int.from_bytes(data[9:13], "big") & 0x7FFFFFFF:
            sid = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
            if sid:
                del data[:13]
                return self._update_header_buffer(WindowUpdateFrame(sid, 0))  # in a header block: an error
        return super().__next__()


class _Connection(H2Connection):
    """h2 with three departures from its defaults:

    - one stream over SETTINGS_MAX_CONCURRENT_STREAMS is refused alone (REFUSED_STREAM, RFC 9113 5.1.2)
      instead of being h2's connection error, so the check moves to the protocol;
    - a GOAWAY from the client leaves the streams it already opened working (RFC 9113 6.8): h2 would close
      its state machine and drop what is queued, so nothing could be answered. It only becomes the
      ``ConnectionTerminated`` event: the protocol refuses new streams and closes once the open ones end;
    - a WINDOW_UPDATE of 0 on a stream resets that stream (PROTOCOL_ERROR), not the connection (6.9);
    - a field block HPACK cannot decode (a table size update over our SETTINGS_HEADER_TABLE_SIZE, a bad index)
      is a COMPRESSION_ERROR (RFC 9113 4.3; h2 says PROTOCOL_ERROR)."""

    def __init__(self, config: H2Configuration) -> None:
        super().__init__(config)
        self.incoming_buffer.__class__ = _Frames     # no hook for the buffer class; _Frames adds no state
        self.data_frames_sent = 0                    # DATA frames with a payload (they earn WINDOW_UPDATEs)

    def receive_frames(self, data: bytes) -> Iterator[tuple[Frame, list]]:
        """h2's ``receive_data``, one frame at a time: yields each frame with its events. The caller may
        stop between frames; what is left in the buffer is then never parsed."""
        self.incoming_buffer.add_data(data)
        self.incoming_buffer.max_frame_size = self.max_inbound_frame_size
        try:
            for frame in self.incoming_buffer:
                yield frame, self._receive_frame(frame)
        except InvalidPaddingError as e:
            self._terminate_connection(ErrorCodes.PROTOCOL_ERROR)
            raise ProtocolError("Received frame with invalid padding.") from e
        except ProtocolError as e:
            self._terminate_connection(e.error_code)
            raise

    def send_data(self, stream_id: int, data: Any, end_stream: bool = False, pad_length: Any = None) -> None:
        super().send_data(stream_id, data, end_stream=end_stream, pad_length=pad_length)
        if data:
            self.data_frames_sent += 1

    @property
    def open_inbound_streams(self) -> int:
        return min(super().open_inbound_streams, self.local_settings.max_concurrent_streams - 1)

    def _receive_frame(self, frame: Any) -> list:
        try:
            return super()._receive_frame(frame)
        except ProtocolError as e:
            if isinstance(e.__cause__, HPACKError) and e.error_code == ErrorCodes.PROTOCOL_ERROR:
                e.error_code = ErrorCodes.COMPRESSION_ERROR     # receive_data's GOAWAY takes it from here
            raise

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list, list]:
        # h2's RECV_GOAWAY input is left out on purpose: the state machine stays open for the streams in
        # flight, and the output buffer (a SETTINGS or PING ack, say) keeps what is queued in it
        event = ConnectionTerminated()
        try:
            event.error_code = ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _receive_window_update_frame(self, frame: WindowUpdateFrame) -> tuple[list, list]:
        if not frame.stream_id or frame.window_increment:
            return super()._receive_window_update_frame(frame)
        events = self.state_machine.process_input(ConnectionInputs.RECV_WINDOW_UPDATE)
        try:
            stream = self._get_stream_by_id(frame.stream_id)   # an idle stream stays a connection error
        except StreamClosedError:
            return [], events                                    # as h2 does on a closed stream
        if stream.closed:
            return [], events
        frames = stream.reset_stream(ErrorCodes.PROTOCOL_ERROR)
        return frames, events + [StreamReset(stream_id=frame.stream_id, error_code=ErrorCodes.PROTOCOL_ERROR,
                                             remote_reset=False)]

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream.__class__ = _Stream          # h2 has no hook for its stream class; _Stream adds no state
        return stream

    def send_whole(self, stream_id: int, headers: list[tuple[str, str]], body: bytes) -> bool:
        """A whole small answer (final status, body within the windows and one frame): HEADERS and DATA
        with END_STREAM go straight to the output buffer, through h2's own state machines, windows and
        HPACK encoder. h2's general path (a frame object per frame, header re-encoding, debug logging)
        costs more than the rest of a small request. False, with nothing done, when it does not fit."""
        stream = self.streams.get(stream_id)
        n = len(body)
        if stream is None or n > self.max_outbound_frame_size or n > self.outbound_flow_control_window \
                or n > stream.outbound_flow_control_window:
            return False
        self.state_machine.process_input(ConnectionInputs.SEND_HEADERS)
        machine = stream.state_machine
        machine.process_input(StreamInputs.SEND_HEADERS)    # raises (nothing encoded) on a closed stream
        block = self.encoder.encode(headers)
        if n:
            self.state_machine.process_input(ConnectionInputs.SEND_DATA)
            machine.process_input(StreamInputs.SEND_DATA)
        machine.process_input(StreamInputs.SEND_END_STREAM)
        size = self.max_outbound_frame_size
        out = self._data_to_send
        first, rest = block[:size], block[size:]
        out += _frame_head(len(first), 0x1, (0x0 if rest else _END_HEADERS) | (0x0 if n else _END_STREAM),
                           stream_id) + first
        while rest:
            part, rest = rest[:size], rest[size:]
            out += _frame_head(len(part), 0x9, 0x0 if rest else _END_HEADERS, stream_id) + part
        if n:
            self.data_frames_sent += 1
            out += _frame_head(n, 0x0, _END_STREAM, stream_id) + body
            stream.outbound_flow_control_window -= n
            self.outbound_flow_control_window -= n
        return True


_HEAD = struct.Struct(">HBBBL")          # a frame header: 24-bit length, type, flags, stream id
_END_STREAM, _END_HEADERS = 0x1, 0x4
_DATA, _HEADERS, _RST, _SETTINGS, _PING, _WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x8
# Events of one read are handled in batches of about this many, between which h2 parses on: within a batch
# a stream reset by a later frame is seen as reset (as when h2 parsed the whole read first), and a limit a
# handler finds crossed (resets, refused streams) leaves the frames after its batch unparsed
_BATCH = 64


def _noop(frame: Frame, events: list) -> bool:
    """True for a frame that did nothing for a request (see ``guards.NoopFrames``; WINDOW_UPDATE is
    decided by the caller). RST_STREAM, SETTINGS and PING have limits of their own."""
    ftype = frame.type
    if ftype == _DATA:            # a payload for the app or the end of a request: useful; else not
        return not any((type(e) is DataReceived and e.data) or type(e) is StreamEnded for e in events)
    if ftype == _HEADERS:         # a request or trailers; h2 drops it silently on a closed stream
        return not events
    if ftype == _RST:
        return False
    if ftype in (_SETTINGS, _PING):
        return "ACK" in frame.flags        # we asked for no PING ack, and for one SETTINGS ack
    return True                   # PRIORITY, GOAWAY, unknown frame types


def _frame_head(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    return _HEAD.pack(length >> 8, length & 0xFF, ftype, flags, stream_id)


def goaway_all() -> None:
    """Shutdown (on the loop): every HTTP/2 connection of this loop says GOAWAY (NO_ERROR) and closes
    once its streams are answered."""
    loop = asyncio.get_running_loop()
    for proto in list(CONNECTIONS):
        if proto.loop is loop:
            proto.shutdown()


class H2Protocol(asyncio.Protocol):
    def __init__(self, config: Any, dispatch: Callable, upgraded: tuple[Request, str] | None = None,
                 conn_no: int | None = None) -> None:
        """``upgraded``: ``(request, HTTP2-Settings value)`` of an ``Upgrade: h2c`` request (it becomes
        stream 1); ``conn_no``: the connection number it had on HTTP/1.1 (transaction IDs)."""
        self.config = config
        self.upgraded = upgraded
        self._given_no = conn_no
        self.limits = config.limits
        self.dispatch = dispatch
        self.scheme = "http"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.transport: asyncio.Transport | None = None
        self.conn_no = 0
        self.req_no = 0
        self.exchanges: dict[int, H2Exchange] = {}
        self.guard = FrameGuard(self.limits)
        self.client = ("", 0)
        self.server = ("", 0)
        self.closing = False
        self.last_active = time.monotonic()     # the last read
        self._idle_since = self.last_active     # when the last open stream ended (h2_idle_timeout)
        self._flush_pending = False
        self._write_waiter: asyncio.Future | None = None
        self.write_paused = False
        self._paused_since = 0.0            # when the transport last said it was full
        self._drain_by = 0.0                # after the client's GOAWAY: when the open streams must be done
        self._timer: asyncio.TimerHandle | None = None
        limits = self.limits
        # h2's own header validation costs more than the rest of a request; ``check_request`` does the
        # checks that matter on our side (our answers are built clean by ``h2_head``)
        self.conn = _Connection(H2Configuration(
            client_side=False, header_encoding="latin-1", validate_inbound_headers=False,
            normalize_inbound_headers=False, validate_outbound_headers=False, normalize_outbound_headers=False))
        # Huffman coding is pure Python in hpack; repeated answer headers are table indexes anyway
        self.conn.encoder.encode = functools.partial(Encoder.encode, self.conn.encoder, huffman=False)
        # initial values (not update()): they go into the first SETTINGS frame and apply at once
        self.conn.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: limits.h2_max_concurrent_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.h2_max_header_list_size,
            SettingCodes.HEADER_TABLE_SIZE: limits.h2_header_table_size,
            SettingCodes.INITIAL_WINDOW_SIZE: limits.h2_window_size,
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1 if limits.h2_websocket else 0,     # RFC 8441
        })
        # the decoder limits apply before the client acknowledges our SETTINGS
        self.conn.decoder.max_header_list_size = limits.h2_max_header_list_size
        self.conn.decoder.max_allowed_table_size = limits.h2_header_table_size

    # -- three ways in: ALPN h2, prior knowledge (the client's preface follows), Upgrade: h2c ----------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """We send our SETTINGS at once; the 101 of an h2c upgrade was already written by HTTP/1.1."""
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        self.client = _addr(transport.get_extra_info("peername"))
        self.server = _addr(transport.get_extra_info("sockname"))
        if transport.get_extra_info("ssl_object") is not None:
            self.scheme = "https"
        # HTTP/1.1 hands its number over (h1._hand_over sets conn_no); standalone use counts on its own
        self.conn_no = self.conn_no or self._given_no or next(_conn_numbers)
        transport.set_write_buffer_limits(high=self.limits.write_buffer_high)
        CONNECTIONS.add(self)
        self._schedule()
        if self.upgraded is None:
            self.conn.initiate_connection()
            self._open_connection_window()
        else:
            request, settings = self.upgraded
            self.upgraded = None
            self.conn.initiate_upgrade_connection(settings.encode("latin-1"))
            self._open_connection_window()
            request.version = "2"
            self._start_exchange(1, request)
        self._flush()

    def _open_connection_window(self) -> None:
        """The connection window starts at 64 KiB whatever SETTINGS say; let several streams' bodies in."""
        extra = 4 * self.limits.h2_window_size - self.conn.inbound_flow_control_window
        if extra > 0:
            self.conn.increment_flow_control_window(extra)

    # -- inbound --------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return                        # being closed: nothing more the client sent is parsed
        self.last_active = time.monotonic()
        abuse = self.guard.feed(data)
        if abuse is not None:
            if not abuse.parse:
                self._abuse(abuse)
                return
            data = data[:abuse.parse]     # the frames before the breach first, then the GOAWAY
        frames = self.conn.receive_frames(data)
        noop, batch = self.guard.noop, []
        while True:
            try:
                item = next(frames, None)
            except ProtocolError as e:
                log.info("HTTP/2 protocol error from %s: %s", self.client[0], e)
                self._flush()
                self._close()
                return
            if item is None:
                break
            frame, events = item
            if frame.type == _WINDOW_UPDATE:
                if not (events and type(events[-1]) is StreamReset) and noop.window_update(
                        self.conn.data_frames_sent, self.req_no):
                    self._noop_flood("WINDOW_UPDATE")
                    return
            elif _noop(frame, events) and noop.hit():
                self._noop_flood(type(frame).__name__)
                return
            if events:
                batch += events
                if len(batch) >= _BATCH:
                    if not self._handle(batch):
                        return
                    if self.transport is None or self.transport.is_closing():
                        self._flush()
                        return            # the frames after these are left unparsed
                    batch = []
        if batch and not self._handle(batch):
            return
        if abuse is not None and not (self.transport is None or self.transport.is_closing()):
            self._abuse(abuse)
            return
        self._flush()

    def _abuse(self, abuse: Any) -> None:
        log.warning("HTTP/2 %s from %s: GOAWAY %s", abuse.reason, self.client[0], abuse.code.name)
        self.goaway(abuse.code, abuse.reason)

    def _handle(self, events: list) -> bool:
        """Run the handlers of ``events``; False when one failed (a bug of ours: the connection is gone)."""
        handlers = self._handlers
        try:
            for event in events:
                if self.transport is None or self.transport.is_closing():
                    break                 # an abuse limit closed the connection meanwhile
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(self, event)
        except Exception:                 # a bug of ours must cost this connection only
            log.exception("HTTP/2 connection from %s failed", self.client[0])
            self.goaway(ErrorCodes.INTERNAL_ERROR)
            return False
        return True

    def _noop_flood(self, kind: str) -> None:
        log.warning("HTTP/2 flood of frames that do nothing (last: %s) from %s: GOAWAY ENHANCE_YOUR_CALM",
                    kind, self.client[0])
        self.goaway(ErrorCodes.ENHANCE_YOUR_CALM, "too many frames that do nothing")

    def _on_request(self, event: RequestReceived) -> None:
        sid = event.stream_id
        stream = self.conn.streams.get(sid)
        if stream is None or stream.closed:
            # reset in the same read, by the client's RST_STREAM or by h2 for a malformed frame after the
            # HEADERS: nothing to answer, and resetting it again would raise (its StreamReset follows)
            return
        if self.closing or len(self.exchanges) >= self.limits.h2_max_concurrent_streams:
            self.conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            if self.guard.noop.hit():     # a client that ignores our limit: its requests do nothing
                self._noop_flood("refused HEADERS")
            return
        try:
            pseudo, headers = check_request(event.headers)
        except ValueError as e:
            log.info("HTTP/2 bad request headers from %s: %s", self.client[0], e)
            self.conn.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
            self._stream_error()
            return
        authority = pseudo.get(":authority") or next((v for n, v in headers if n == "host"), None)
        method, upgrade = pseudo.get(":method", "GET"), ""
        if ":protocol" in pseudo:          # extended CONNECT (RFC 8441): the stream will carry a protocol
            upgrade = pseudo[":protocol"].lower()
            if not self.limits.h2_websocket:    # not offered in our SETTINGS
                self.conn.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
                return
            if upgrade != "websocket":
                self.conn.send_headers(sid, [(":status", "501")], end_stream=True)
                if event.stream_ended is None:     # the client's side would stay open for ever
                    self.conn.reset_stream(sid, ErrorCodes.NO_ERROR)
                return
            method = "GET"                 # the app sees the GET it would see on HTTP/1.1
        ended = event.stream_ended is not None
        body = EMPTY_BODY if ended or upgrade else Body(self.loop, self.limits.max_body_size,
                                                        on_drain=lambda: self._credit(sid))
        self.req_no += 1
        request = Request(method, pseudo.get(":path", "/"), "2", Headers(headers),
                          scheme=self.scheme, host=host_without_port(authority or ""), client=self.client,
                          server=self.server, body=body, started=time.monotonic(), conn_no=self.conn_no,
                          req_no=self.req_no, upgrade=upgrade)
        if body is not EMPTY_BODY and self._declared_too_large(headers):
            ex = self.exchanges[sid] = H2Exchange(self, sid, request)   # as HTTP/1.1: 413 from the length
            body.fail(BodyTooLarge(f"request body over {self.limits.max_body_size} bytes"))
            ex.error(413)                                               # (RST_STREAM NO_ERROR follows)
            return
        self._start_exchange(sid, request)

    def _declared_too_large(self, headers: list[tuple[str, str]]) -> bool:
        """A ``content-length`` over ``max_body_size`` (the h2 stream checks the DATA add up to it)."""
        length = next((v for n, v in headers if n == "content-length"), None)
        return length is not None and length.isdigit() and int(length) > self.limits.max_body_size

    def _start_exchange(self, sid: int, request: Request, pushed: bool = False) -> None:
        ex = H2Exchange(self, sid, request, pushed)
        self.exchanges[sid] = ex
        try:
            result = self.dispatch(ex)
        except Exception:
            log.exception("dispatch failed for %r", request)
            self._fail(ex)
            return
        if result is not None:
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda t, ex=ex: self._dispatched(ex, t))

    def _dispatched(self, ex: H2Exchange, task: asyncio.Future) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not isinstance(exc, ClientDisconnected):
            log.error("handler failed for %r", ex.request, exc_info=exc)
            self._fail(ex)
        elif exc is not None and not ex.finished and not ex.closed:
            self._fail(ex)                # the body failed (reset, timed out): no traceback, as on HTTP/1.1
        elif ex.closed and not ex.finished:
            self.stream_done(ex)          # reset while running and the handler gave up

    def _fail(self, ex: H2Exchange) -> None:
        if not ex.started and not ex.closed:
            ex.error(500)
        elif not ex.finished:
            self.reset(ex, ErrorCodes.INTERNAL_ERROR)

    def _on_data(self, event: DataReceived) -> None:
        ex = self.exchanges.get(event.stream_id)
        size = event.flow_controlled_length
        if ex is not None and ex.tunnel is not None:
            ex.tunnel.feed(event.data, size)
            return
        if ex is None or ex.request.body is EMPTY_BODY:
            self.conn.acknowledge_received_data(size, event.stream_id)
            return
        ex.credit.active = self.last_active
        try:
            paused = ex.request.body.feed(event.data)
        except BodyTooLarge:
            if not ex.started:
                ex.error(413)
            self.reset(ex, ErrorCodes.CANCEL)
            return
        if paused or ex.credit.paused:
            ex.credit.paused = True
            ex.credit.held += size
        else:
            self.conn.acknowledge_received_data(size, event.stream_id)

    def _credit(self, sid: int) -> None:
        """The app read the body below its low-water mark: give back the held window."""
        ex = self.exchanges.get(sid)
        if ex is None:
            return
        held, ex.credit.held, ex.credit.paused = ex.credit.held, 0, False
        ex.credit.active = time.monotonic()      # the client could not send while we held its window
        if held and not ex.closed:
            try:
                self.conn.acknowledge_received_data(held, sid)
            except ProtocolError:
                return
            self._flush_soon()

    def _on_end(self, event: StreamEnded) -> None:
        ex = self.exchanges.get(event.stream_id)
        if ex is not None:
            ex.request.body.feed_eof()
            if ex.tunnel is not None:
                ex.tunnel.peer_ended()

    def _on_trailers(self, event: TrailersReceived) -> None:
        ex = self.exchanges.get(event.stream_id)
        if ex is None:
            return
        try:
            pseudo, trailers = check_request(event.headers, trailers=True)
        except ValueError:
            self.reset(ex, ErrorCodes.PROTOCOL_ERROR)
            self._stream_error()
            return
        ex.request_trailers = trailers

    def _on_reset(self, event: StreamReset) -> None:
        # the slot is free at once: a handler may never answer a reset stream (WSGI skips it), and what
        # bounds reset abuse is FrameGuard's rate limit
        ex = self.exchanges.pop(event.stream_id, None)
        if ex is not None:
            ex.reset()
            if not self.exchanges:
                self._idle_since = time.monotonic()
            self._close_if_drained()
        if not event.remote_reset:
            self._stream_error()          # h2 reset it for a frame of the client's

    def _stream_error(self) -> None:
        """The client made us reset a stream (a malformed request, a frame its stream may not get). Such
        resets free a stream slot as fast as the client's own RST_STREAM ("MadeYouReset", CVE-2025-8671), so
        they count toward the same rapid-reset limit."""
        if self.guard.resets.hit():
            log.warning("HTTP/2 too many stream errors from %s: GOAWAY ENHANCE_YOUR_CALM", self.client[0])
            self.goaway(ErrorCodes.ENHANCE_YOUR_CALM, "too many stream errors")

    def _on_window(self, event: WindowUpdated) -> None:
        if event.stream_id:
            ex = self.exchanges.get(event.stream_id)
            if ex is not None:
                self.pump(ex, flush=False)
        else:
            self._pump_all()

    def _on_settings(self, event: RemoteSettingsChanged) -> None:
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._pump_all()

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        """The client's GOAWAY. With NO_ERROR the streams it opened are still answered (RFC 9113 6.8): no
        new stream is accepted, the connection closes when the last one is done, or after
        ``network_timeout`` at most. With an error code the client is closing: so do we, at once."""
        self.closing = True
        if event.error_code != ErrorCodes.NO_ERROR or not self.exchanges:
            self._flush()
            self._close()
            return
        last = event.last_stream_id or 0
        for sid, ex in list(self.exchanges.items()):
            if ex.pushed and sid > last:        # a promise the client says it will not process
                self.reset(ex, ErrorCodes.CANCEL)
        if not self._drain_by:
            self._drain_by = time.monotonic() + self.limits.network_timeout
        self._close_if_drained()

    _handlers = {
        RequestReceived: _on_request, DataReceived: _on_data, StreamEnded: _on_end,
        TrailersReceived: _on_trailers, StreamReset: _on_reset, WindowUpdated: _on_window,
        RemoteSettingsChanged: _on_settings, ConnectionTerminated: _on_terminated,
    }

    # -- outbound (called by H2Exchange) --------------------------------------------------------
    def send_headers(self, ex: H2Exchange, headers: list[tuple[str, str]]) -> None:
        try:
            self.conn.send_headers(ex.stream_id, headers)
        except ProtocolError:
            ex.closed = True
            return
        self._flush_soon()

    def send_whole(self, ex: H2Exchange, headers: list[tuple[str, str]], body: bytes) -> bool:
        """``respond()``'s fast path (see ``_Connection.send_whole``); False: use start()/end()."""
        try:
            if not self.conn.send_whole(ex.stream_id, headers, body):
                return False
        except ProtocolError:
            ex.closed = True                 # the client reset the stream meanwhile
        self.stream_done(ex)
        self._flush_soon()
        return True

    def pump(self, ex: H2Exchange, flush: bool = True) -> None:
        if not ex.closed:
            try:
                ex.outbox.pump(self.conn, ex.stream_id)
            except ProtocolError:        # the stream closed under us
                ex.reset()
        if ex.finished and (ex.outbox.done or ex.closed):
            self.stream_done(ex)
        if flush:
            self._flush_soon()

    def _pump_all(self) -> None:
        for ex in list(self.exchanges.values()):
            if ex.outbox.chunks or (ex.outbox.ending and not ex.outbox.done):
                self.pump(ex, flush=False)

    def stream_done(self, ex: H2Exchange) -> None:
        self.exchanges.pop(ex.stream_id, None)
        if not self.exchanges:
            self._idle_since = time.monotonic()
        body = ex.request.body
        if body is not EMPTY_BODY and not body.complete and not ex.closed:
            # answered before the whole body came: stop the upload (RFC 9113 8.1)
            try:
                self.conn.reset_stream(ex.stream_id, ErrorCodes.NO_ERROR)
            except ProtocolError:
                pass
            self._flush_soon()
        body.discard()
        self._close_if_drained()

    def _close_if_drained(self) -> None:
        """Closing (our shutdown or the client's GOAWAY) and no stream left: what is queued goes out, then
        the connection closes."""
        if self.closing and not self.exchanges and self.transport is not None:
            self._flush()
            self._close()

    def reset(self, ex: H2Exchange, code: ErrorCodes) -> None:
        ex.reset()
        self.exchanges.pop(ex.stream_id, None)
        if not self.exchanges:
            self._idle_since = time.monotonic()
        try:
            self.conn.reset_stream(ex.stream_id, code)
        except ProtocolError:
            pass
        self._flush_soon()
        self._close_if_drained()

    def push(self, ex: H2Exchange, path: str, extra: list[tuple[str, str]]) -> None:
        """Promise ``path`` on ``ex``'s stream and answer it like a request; a no-op when push is off."""
        if ex.closed or ex.finished or self.closing or not self.conn.remote_settings.enable_push:
            return
        req = ex.request
        authority = req.headers.get("host") or req.host
        headers = [(":method", "GET"), (":path", path), (":scheme", self.scheme), (":authority", authority)]
        headers += [(n, v) for n, v in req.headers.items() if n in _PUSH_COPY]
        headers += [(n.lower(), v) for n, v in extra]
        try:
            pid = self.conn.get_next_available_stream_id()
            self.conn.push_stream(ex.stream_id, pid, headers)
        except ProtocolError:
            return                            # the client's stream limit or state says no
        self.req_no += 1
        request = Request("GET", path, "2", Headers([(n, v) for n, v in headers if n[0] != ":"] +
                                                    [("host", authority)]),
                          scheme=self.scheme, host=req.host, client=self.client, server=self.server,
                          started=time.monotonic(), conn_no=self.conn_no, req_no=self.req_no)
        self._start_exchange(pid, request, pushed=True)
        self._flush_soon()

    async def writable(self) -> None:
        """Returns when the transport takes more (back-pressure for streaming handlers). Frames still
        waiting for the coalesced flush are written first: only then can the transport say it is full."""
        if self._flush_pending:
            self._flush()
        if self.write_paused:
            w = self._write_waiter          # one future for every stream waiting (each used to replace the
            if w is None or w.done():       # last one's, which then never woke); shielded from their cancels
                w = self._write_waiter = self.loop.create_future()
            await asyncio.shield(w)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._paused_since = time.monotonic()
        # a client that does not read must not make us queue without bound: many of its frames oblige an
        # answer (RST_STREAM on a closed stream, acks, whole responses). Read it again once it catches up
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        guard = self.guard                # the client's unfinished frame waited on us meanwhile
        if guard.frame_since or guard.block_since:
            now = time.monotonic()
            guard.frame_since = guard.frame_since and now
            guard.block_since = guard.block_since and now
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        w, self._write_waiter = self._write_waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    def _flush_soon(self) -> None:
        if not self._flush_pending and self.loop is not None:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    # -- ending ---------------------------------------------------------------------------------
    def goaway(self, code: ErrorCodes, reason: str = "") -> None:
        """Close the connection now with GOAWAY ``code`` (abuse, stalls)."""
        try:
            self.conn.close_connection(code, additional_data=reason.encode()[:64])
        except ProtocolError:
            pass
        self._flush()
        for ex in list(self.exchanges.values()):
            ex.reset()
        self._close()

    def shutdown(self) -> None:
        """Graceful: GOAWAY NO_ERROR, finish the streams in flight, then close."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        # h2's close_connection() would close its state machine and forbid answering the streams in
        # flight, so the GOAWAY frame is written beside it (hyperframe is h2's own framing)
        self._flush()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.conn.highest_inbound_stream_id
        frame.error_code = ErrorCodes.NO_ERROR
        self.transport.write(frame.serialize())
        if not self.exchanges:
            self._close()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
        for ex in list(self.exchanges.values()):
            ex.reset()
        self.exchanges.clear()
        self.resume_writing()
        CONNECTIONS.discard(self)

    # -- timers: idle connections, unfinished frames and zero-window stalls ------------------------
    def _schedule(self) -> None:
        limits = self.limits
        step = max(0.05, min(limits.network_timeout, limits.h2_idle_timeout, limits.header_timeout) / 4)
        self._timer = self.loop.call_later(step, self._tick)

    def _body_stalled(self, ex: H2Exchange) -> None:
        """No byte of the request body for ``network_timeout`` while its window was open: the reader (a
        worker thread blocked in ``wsgi.input.read()``) gets ``ClientDisconnected``; the client gets 408
        (RST_STREAM NO_ERROR follows: the rest of its body is not wanted) or, once the answer started,
        RST_STREAM CANCEL. The connection and its other streams go on."""
        log.info("HTTP/2 request body from %s stalled for %gs on stream %d: %s", self.client[0],
                 self.limits.network_timeout, ex.stream_id, "reset" if ex.started else "408")
        ex.request.body.fail(ClientDisconnected("timed out reading the request body"))
        if ex.started:
            self.reset(ex, ErrorCodes.CANCEL)
            return
        ex.error(408, "request body timed out")
        if ex.stream_id not in self.exchanges:
            ex.closed = True              # answered: what the app still sends (it may catch the error) is dropped

    def _tick(self) -> None:
        if self.transport is None:
            return
        now, limits = time.monotonic(), self.limits
        if self._drain_by and now > self._drain_by:
            log.info("HTTP/2 client %s went away; its streams were not done after %gs: closed",
                     self.client[0], limits.network_timeout)
            self.goaway(ErrorCodes.NO_ERROR, "streams not done in time after GOAWAY")
            return
        if self.write_paused and now - self._paused_since > limits.network_timeout:
            # the client reads nothing, not even a GOAWAY: drop it (the exchanges hear connection_lost)
            log.warning("HTTP/2 client %s stopped reading: connection aborted", self.client[0])
            self.transport.abort()
            return
        guard = self.guard
        if not self.write_paused and (
                (guard.block_since and now - guard.block_since > limits.header_timeout)
                or (guard.frame_since and now - guard.frame_since > limits.network_timeout)):
            # a request head (HEADERS and CONTINUATION) must be whole within header_timeout, as on
            # HTTP/1.1, and any other frame within network_timeout; bytes trickled in do not restart that
            log.info("HTTP/2 client %s left a frame unfinished: GOAWAY", self.client[0])
            self.goaway(ErrorCodes.NO_ERROR, "frame not completed in time")
            return
        for ex in list(self.exchanges.values()):
            since = ex.outbox.blocked_since
            if since and now - since > limits.network_timeout:
                if self.conn.outbound_flow_control_window <= 0:
                    log.warning("HTTP/2 connection window stalled by %s: GOAWAY", self.client[0])
                    self.goaway(ErrorCodes.ENHANCE_YOUR_CALM, "flow-control window stalled")
                    return
                self.reset(ex, ErrorCodes.CANCEL)
                continue
            body = ex.request.body
            if body is EMPTY_BODY or body.complete or ex.closed or ex.tunnel is not None:
                continue
            if ex.credit.paused or self.conn.inbound_flow_control_window <= 0:
                ex.credit.active = now             # we hold the window: the client cannot send
            elif now - ex.credit.active > limits.network_timeout:
                self._body_stalled(ex)
        if self.exchanges:
            self._idle_since = now
        elif now - self._idle_since > limits.h2_idle_timeout:
            # time without an open stream: PING, SETTINGS, WINDOW_UPDATE or trickled bytes do not reset it
            self.shutdown()
            return
        self._schedule()
