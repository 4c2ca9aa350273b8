"""A robustness sweep of the HTTP/2 server over real sockets: hostile frame sequences, hand-picked and
hypothesis-made, after the connection preface.

For every sequence: the server answers with well-formed frames (a GOAWAY or RST_STREAM with a meaningful
code, or answers), then closes or keeps serving (a PING sent behind the sequence is acknowledged, or the
connection ends): it never hangs; nothing is logged as an unhandled error; a fresh client is served right
after; and no connection or stream state is left behind.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time

import hpack
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (ContinuationFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, PushPromiseFrame,
                              RstStreamFrame)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skitai
from skitai.http2.protocol import CONNECTIONS
from tests.skitai_core.h2ws_support import H2Client, frames_of, h2_server, ws_app
from tests.support.net import eventually
from tests.support.logs import catching_errors

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
PROBE = b"fz-probe"                       # the opaque data of the liveness PING

GET = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "localhost")]
READ = [(":method", "POST"), (":path", "/read"), (":scheme", "http"), (":authority", "localhost")]
STREAM = [(":method", "GET"), (":path", "/stream"), (":scheme", "http"), (":authority", "localhost")]
WS = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":path", "/ws"),
      (":authority", "localhost"), ("sec-websocket-version", "13")]

E = ErrorCodes
GOAWAY_OK = {E.NO_ERROR, E.PROTOCOL_ERROR, E.FLOW_CONTROL_ERROR, E.FRAME_SIZE_ERROR, E.COMPRESSION_ERROR,
             E.STREAM_CLOSED, E.ENHANCE_YOUR_CALM}
RST_OK = {E.NO_ERROR, E.PROTOCOL_ERROR, E.FLOW_CONTROL_ERROR, E.FRAME_SIZE_ERROR, E.STREAM_CLOSED,
          E.REFUSED_STREAM, E.CANCEL}


# -- the server: one per module ------------------------------------------------------------------------------
def plain(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/read":
        try:
            data = environ["wsgi.input"].read()
        except Exception:         # the stream was reset under the reader: nothing to answer
            return []
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d bytes" % len(data)]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"x" * 1000 for _ in range(40))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]


def echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(environ["websocket.message"]).encode()]


@pytest.fixture(scope="module")
def srv():
    with catching_errors("skitai", "asyncio") as errors, \
            h2_server(app=ws_app(echo, (skitai.WS_SIMPLE, 60, ("m",)), plain=plain), threads=2,
                      h2_max_concurrent_streams=20) as s:
        s.errors = errors
        s.baseline = s.server.open_connections
        yield s


@pytest.fixture(autouse=True)
def _errors_of_this_test(srv):
    srv.errors.take()          # a record a failed test left behind belongs to it, not to the next one


# -- frames by hand ------------------------------------------------------------------------------------------
def frame(ftype: int, flags: int = 0, sid: int = 0, payload: bytes = b"", length: int | None = None) -> bytes:
    """One frame as bytes; ``length`` overrides the real payload length (a lie)."""
    n = len(payload) if length is None else length
    return n.to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def block(headers, encoder: hpack.Encoder | None = None) -> bytes:
    return (encoder or hpack.Encoder()).encode(headers)


def headers(sid: int, hdrs, end_stream: bool = True, encoder: hpack.Encoder | None = None) -> bytes:
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block(hdrs, encoder))


def data(sid: int, payload: bytes, end_stream: bool = False) -> bytes:
    return frame(DATA, END_STREAM if end_stream else 0, sid, payload)


def settings_frame(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs))


def window(sid: int, increment: int) -> bytes:
    return frame(WINDOW, 0, sid, increment.to_bytes(4, "big"))


def rst(sid: int, code: int = 8) -> bytes:
    return frame(RST, 0, sid, code.to_bytes(4, "big"))


def goaway(last: int, code: int = 0) -> bytes:
    return frame(GOAWAY, 0, 0, last.to_bytes(4, "big") + code.to_bytes(4, "big"))


def frame_types(payload: bytes) -> set[int]:
    types, i = set(), 0
    while i + 9 <= len(payload):
        types.add(payload[i + 3])
        i += 9 + int.from_bytes(payload[i:i + 3], "big")
    return types


def complete(payload: bytes) -> bytes:
    """Zero bytes that finish the last frame of ``payload`` if it is cut short (a lying length), so that a
    frame sent after it is read as a frame."""
    i = 0
    while i + 9 <= len(payload):
        i += 9 + int.from_bytes(payload[i:i + 3], "big")
    if i < len(payload):                        # a partial frame header: finish it as an empty frame
        return b"\x00" * (9 - (len(payload) - i))
    return b"\x00" * (i - len(payload))


# -- one hostile exchange and the invariants -----------------------------------------------------------------
class Outcome:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.closed = False
        self.alive = False          # our PING came back: the server still reads this connection

    def goaway(self) -> GoAwayFrame | None:
        return next((f for f in self.frames if isinstance(f, GoAwayFrame)), None)

    def resets(self) -> dict[int, int]:
        return {f.stream_id: f.error_code for f in self.frames if isinstance(f, RstStreamFrame)}

    def answered(self, sid: int) -> bool:
        return any(f.stream_id == sid and "END_STREAM" in f.flags for f in self.frames if f.type in (0, 1))


def exchange(port: int, payload: bytes, timeout: float = 5.0, linger: float = 0.0,
             before_close=None, pad: bool = True, cuts: tuple[int, ...] = ()) -> Outcome:
    """Preface, empty SETTINGS, ``payload``, then a PING; read until the PING comes back or the connection
    ends (a hang past ``timeout`` fails). ``linger``: read that much longer after the PING ack;
    ``before_close(outcome)`` runs while the connection is still open; ``pad=False``: a frame cut short
    is left so (the PING then goes into its payload); ``cuts``: offsets where ``payload`` is split into
    separate writes a few milliseconds apart (partial frames, apps running in between)."""
    out = Outcome()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    try:
        sock.sendall(PREFACE + frame(SETTINGS))
        start = 0
        for cut in sorted(set(cuts)) + [len(payload)]:
            try:
                sock.sendall(payload[start:cut])
            except OSError:
                break                       # closed already: what it sent is still read below
            start = cut
            if cut < len(payload):
                time.sleep(0.005)
        tail = (complete(payload) if pad else b"") + frame(PING, 0, 0, PROBE)
        try:
            sock.sendall(tail)
        except OSError:
            pass                            # closed already: what it sent is still read below
        deadline = time.monotonic() + timeout
        ack_at = None
        while True:
            now = time.monotonic()
            if ack_at is not None and now >= ack_at + linger:
                break
            if now > deadline:
                raise AssertionError(f"the server neither answered our PING nor closed in {timeout}s; "
                                     f"frames: {[type(f).__name__ for f in out.frames]}; sent {payload!r} "
                                     f"cut at {cuts}")
            sock.settimeout(max(0.01, min(deadline, (ack_at or deadline) + linger) - now))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                out.closed = True
                break
            buf += chunk
            while len(buf) >= 9:
                f, n = Frame.parse_frame_header(memoryview(buf[:9]))
                if len(buf) < 9 + n:
                    break
                f.parse_body(memoryview(buf[9:9 + n]))     # a malformed frame of ours raises here
                buf = buf[9 + n:]
                out.frames.append(f)
                if isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == PROBE and ack_at is None:
                    out.alive = True
                    ack_at = time.monotonic()
        if before_close is not None:
            before_close(out)
    finally:
        sock.close()
    return out


def decode_headers(frames: list[Frame]) -> None:
    """Every header block the server sent decodes, in order, with one HPACK decoder: an encoded block that
    never went out (or went out twice) would break the client's decoder for the rest of the connection."""
    decoder, parts = hpack.Decoder(), []
    for f in frames:
        if isinstance(f, HeadersFrame | ContinuationFrame | PushPromiseFrame):
            parts.append(f.data)
            if "END_HEADERS" in f.flags:
                decoder.decode(b"".join(parts))
                parts = []


def check(srv, out: Outcome, client_goaway: bool = False) -> None:
    """The invariants every hostile exchange must keep (see the module doc)."""
    decode_headers(out.frames)
    bad = out.goaway()
    if bad is not None:
        assert bad.error_code in GOAWAY_OK, f"GOAWAY {bad.error_code}"
    for sid, code in out.resets().items():
        assert code in RST_OK, f"RST_STREAM {code} on stream {sid}"
    if out.closed and not client_goaway:
        assert bad is not None, "closed without a GOAWAY"
    if bad is not None:
        # nothing opens after our GOAWAY (pushes are off): every HEADERS after it is on a known stream
        after = out.frames[out.frames.index(bad) + 1:]
        assert not [f for f in after if isinstance(f, HeadersFrame) and f.stream_id > bad.last_stream_id]
    fresh = H2Client(srv.port)
    try:
        headers_, body = fresh.response(fresh.request("/after"), timeout=5)
        assert (headers_.get(":status"), body) == ("200", b"fine")
    finally:
        fresh.close()
    assert eventually(lambda: srv.server.open_connections == srv.baseline, 5), \
        f"{srv.server.open_connections} connections open, {srv.baseline} before"
    assert eventually(lambda: live_h2(srv) == 0, 5), "an HTTP/2 connection outlived its socket"
    errors = srv.errors.take()
    assert not errors, errors


def live_h2(srv) -> int:
    def count() -> int:
        loop = asyncio.get_running_loop()
        return sum(1 for p in list(CONNECTIONS) if p.loop is loop and p.transport is not None)
    return srv.call(count)


def leaked_streams(srv) -> list[int]:
    """Exchanges of live connections whose h2 stream is closed or gone: they would hold a stream slot."""
    def leaked() -> list[int]:
        loop = asyncio.get_running_loop()
        out = []
        for p in list(CONNECTIONS):
            if p.loop is loop and p.transport is not None:
                for sid in p.exchanges:
                    stream = p.conn.streams.get(sid)
                    if stream is None or stream.closed:
                        out.append(sid)
        return out
    return srv.call(leaked)


# -- hand-picked sequences, each with the answer RFC 9113 asks for -------------------------------------------
def goaway_with(code: ErrorCodes):
    def expect(out: Outcome) -> None:
        g = out.goaway()
        assert g is not None and g.error_code == code, \
            f"wanted GOAWAY {code.name}, got {g and E(g.error_code).name}; alive={out.alive}"
    return expect


def reset_with(sid: int, *codes: ErrorCodes, goaway_too: bool = False):
    """RST_STREAM on ``sid`` with one of ``codes`` (or, when ``goaway_too``, a GOAWAY with one of them: RFC
    9113 5.4 lets a stream error be treated as a connection error)."""
    def expect(out: Outcome) -> None:
        code = out.resets().get(sid)
        g = out.goaway()
        if code is None and goaway_too and g is not None:
            code = g.error_code
        assert code in codes, f"wanted RST_STREAM {[c.name for c in codes]} on {sid}, got {out.resets()}, " \
                              f"GOAWAY {g and E(g.error_code).name}"
    return expect


def serves(*sids: int):
    def expect(out: Outcome) -> None:
        assert out.alive and out.goaway() is None, "the connection should have gone on"
        for sid in sids:
            assert out.answered(sid), f"stream {sid} not answered"
    return expect


def _trailers_open() -> bytes:
    enc = hpack.Encoder()
    return headers(1, READ, False, enc) + data(1, b"abc") + headers(1, [("x-t", "1")], False, enc)


def _cl_mismatch() -> bytes:
    return headers(1, READ + [("content-length", "10")], False) + data(1, b"abc", True)


def _padded(pad: int, body: bytes) -> bytes:
    return frame(DATA, PADDED | END_STREAM, 1, bytes([pad]) + body)


HAND = {
    # framing
    "frame over MAX_FRAME_SIZE": (frame(0xFA, 0, 0, length=16385), goaway_with(E.FRAME_SIZE_ERROR)),
    "DATA over MAX_FRAME_SIZE": (headers(1, READ, False) + frame(DATA, 0, 1, b"\0" * 16385),
                                 goaway_with(E.FRAME_SIZE_ERROR)),
    "unknown type and flags": (frame(0xEE, 0xFF, 1, b"junk") + headers(1, GET), serves(1)),
    "unknown flags on PING": (frame(PING, 0xFE, 0, b"12345678") + headers(1, GET), serves(1)),
    "PING of 7 bytes": (frame(PING, 0, 0, b"1234567"), goaway_with(E.FRAME_SIZE_ERROR)),
    "PING on a stream": (frame(PING, 0, 1, b"12345678"), goaway_with(E.PROTOCOL_ERROR)),
    "SETTINGS on a stream": (frame(SETTINGS, 0, 1), goaway_with(E.PROTOCOL_ERROR)),
    "SETTINGS of 5 bytes": (frame(SETTINGS, 0, 0, b"\0\x03\0\0\0"), goaway_with(E.FRAME_SIZE_ERROR)),
    "SETTINGS ACK with a payload": (frame(SETTINGS, ACK, 0, b"\0\x03\0\0\0\x01"), goaway_with(E.FRAME_SIZE_ERROR)),
    "ENABLE_PUSH=2": (settings_frame((2, 2)), goaway_with(E.PROTOCOL_ERROR)),
    "INITIAL_WINDOW_SIZE>2^31-1": (settings_frame((4, 2 ** 31)), goaway_with(E.FLOW_CONTROL_ERROR)),
    "MAX_FRAME_SIZE too small": (settings_frame((5, 16383)), goaway_with(E.PROTOCOL_ERROR)),
    "MAX_FRAME_SIZE too big": (settings_frame((5, 2 ** 24)), goaway_with(E.PROTOCOL_ERROR)),
    "unknown SETTING": (settings_frame((0x99, 7)) + headers(1, GET), serves(1)),
    "RST_STREAM of 3 bytes": (headers(1, READ, False) + frame(RST, 0, 1, b"\0\0\0"),
                              goaway_with(E.FRAME_SIZE_ERROR)),
    "RST_STREAM on stream 0": (rst(0), goaway_with(E.PROTOCOL_ERROR)),
    "RST_STREAM on an idle stream": (rst(5), goaway_with(E.PROTOCOL_ERROR)),
    "WINDOW_UPDATE of 3 bytes": (frame(WINDOW, 0, 0, b"\0\0\x01"), goaway_with(E.FRAME_SIZE_ERROR)),
    "WINDOW_UPDATE overflows the connection": (window(0, 2 ** 31 - 1), goaway_with(E.FLOW_CONTROL_ERROR)),
    "WINDOW_UPDATE overflows a stream": (headers(1, READ, False) + window(1, 2 ** 31 - 1),
                                         reset_with(1, E.FLOW_CONTROL_ERROR, goaway_too=True)),
    "WINDOW_UPDATE 0 on a stream": (headers(1, READ, False) + window(1, 0) + headers(3, GET),
                                    reset_with(1, E.PROTOCOL_ERROR)),
    "WINDOW_UPDATE on an idle stream": (window(9, 1), goaway_with(E.PROTOCOL_ERROR)),
    "PRIORITY on itself": (frame(PRIORITY, 0, 1, (1).to_bytes(4, "big") + b"\x10"),
                           reset_with(1, E.PROTOCOL_ERROR, goaway_too=True)),
    "PRIORITY of 4 bytes": (frame(PRIORITY, 0, 1, b"\0\0\0\0"),
                            reset_with(1, E.FRAME_SIZE_ERROR, goaway_too=True)),
    "PRIORITY on an idle stream": (frame(PRIORITY, 0, 11, b"\0\0\0\0\x10") + headers(1, GET), serves(1)),
    "PUSH_PROMISE from the client": (headers(1, READ, False) + frame(PUSH, END_HEADERS, 1, b"\0\0\0\x02" + block(GET)),
                                     goaway_with(E.PROTOCOL_ERROR)),
    # streams
    "DATA on stream 0": (frame(DATA, 0, 0, b"x"), goaway_with(E.PROTOCOL_ERROR)),
    "DATA on an idle stream": (data(3, b"x"), goaway_with(E.PROTOCOL_ERROR)),
    "HEADERS on stream 0": (headers(0, GET), goaway_with(E.PROTOCOL_ERROR)),
    "HEADERS on an even stream": (headers(2, GET), goaway_with(E.PROTOCOL_ERROR)),
    "HEADERS with a decreasing id": (headers(5, GET) + headers(3, GET), goaway_with(E.PROTOCOL_ERROR)),
    "padding longer than the payload": (headers(1, READ, False) + _padded(10, b"abc"),
                                        goaway_with(E.PROTOCOL_ERROR)),
    "padding exactly the payload": (headers(1, READ, False) + _padded(3, b"abc"), serves(1)),
    "garbage HPACK": (frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff"),
                      goaway_with(E.COMPRESSION_ERROR)),
    "CONTINUATION without HEADERS": (frame(CONT, END_HEADERS, 1, block(GET)), goaway_with(E.PROTOCOL_ERROR)),
    "DATA inside a header block": (frame(HEADERS, END_STREAM, 1, block(GET)) + data(1, b"x"),
                                   goaway_with(E.PROTOCOL_ERROR)),
    "CONTINUATION on another stream": (frame(HEADERS, END_STREAM, 1, block(GET)) + frame(CONT, END_HEADERS, 3),
                                       goaway_with(E.PROTOCOL_ERROR)),
    "DATA after END_STREAM": (headers(1, READ, False) + data(1, b"ab", True) + data(1, b"cd"),
                              reset_with(1, E.STREAM_CLOSED, goaway_too=True)),
    "HEADERS on a finished stream": (headers(1, GET) + frame(PING, 0, 0, b"waitwait") + headers(1, GET),
                                     reset_with(1, E.STREAM_CLOSED, goaway_too=True)),
    "trailers without END_STREAM": (_trailers_open(), reset_with(1, E.PROTOCOL_ERROR)),
    "content-length mismatch": (_cl_mismatch(), reset_with(1, E.PROTOCOL_ERROR)),
    "RST_STREAM then DATA": (headers(1, READ, False) + rst(1) + data(1, b"more") + headers(3, GET),
                             reset_with(1, E.STREAM_CLOSED, goaway_too=True)),
    "no :path": (headers(1, GET[:1] + GET[2:]), reset_with(1, E.PROTOCOL_ERROR)),
    "two :method": (headers(1, GET + [(":method", "POST")]), reset_with(1, E.PROTOCOL_ERROR)),
    "pseudo after a field": (headers(1, [("x-a", "1")] + GET), reset_with(1, E.PROTOCOL_ERROR)),
    "unknown pseudo": (headers(1, GET + [(":bogus", "1")]), reset_with(1, E.PROTOCOL_ERROR)),
    "upper-case name": (headers(1, GET + [("X-Up", "1")]), reset_with(1, E.PROTOCOL_ERROR)),
    "connection": (headers(1, GET + [("connection", "close")]), reset_with(1, E.PROTOCOL_ERROR)),
    "te: gzip": (headers(1, GET + [("te", "gzip")]), reset_with(1, E.PROTOCOL_ERROR)),
    "te: trailers": (headers(1, GET + [("te", "trailers")]), serves(1)),
    "client GOAWAY then a new stream": (headers(1, READ, False) + goaway(1) + headers(3, GET) + data(1, b"x", True),
                                        reset_with(3, E.REFUSED_STREAM)),
    # bodies
    "WSGI reader, body in pieces": (headers(1, READ, False) + data(1, b"ab") + data(1, b"") + data(1, b"cd", True),
                                    serves(1)),
    "streaming answer, then a reset": (headers(1, STREAM) + rst(1) + headers(3, GET), serves(3)),
    "WebSocket then garbage DATA": (headers(1, WS, False) + data(1, b"\xff\x00garbage") + headers(3, GET),
                                    serves(3)),
    "WebSocket then a reset": (headers(1, WS, False) + rst(1) + headers(3, GET), serves(3)),
}


# in several writes, the app running in between (lists: each item one write, 5 ms apart)
HAND.update({
    "zero window, streaming answer, reset, more window": (
        [settings_frame((4, 0)) + headers(1, STREAM), rst(1) + settings_frame((4, 65535)) + headers(3, GET)],
        serves(3)),
    "client GOAWAY while an answer waits for window": (
        [settings_frame((4, 0)) + headers(1, STREAM), goaway(1) + window(1, 10)], serves()),
    "window shrinks below zero mid-answer, then opens": (
        [settings_frame((4, 100)) + headers(1, STREAM), settings_frame((4, 0)), settings_frame((4, 65535))],
        serves(1)),
    "WINDOW_UPDATE and PRIORITY after the stream ended": (
        [headers(1, GET), window(1, 100) + frame(PRIORITY, 0, 1, b"\0\0\0\0\x10") + headers(3, GET)],
        serves(1, 3)),
    "body after the answer": (
        [headers(1, GET[:1] + [(":method", "POST")] + GET[1:], False), data(1, b"late") + data(1, b"", True)
         + headers(3, GET)], serves(3)),
    "reader reset mid-body": ([headers(1, READ, False) + data(1, b"ab"), rst(1) + headers(3, GET)], serves(3)),
    "WebSocket, client END_STREAM": ([headers(1, WS, False), data(1, b"", True) + headers(3, GET)], serves(3)),
})


@pytest.mark.parametrize("name", list(HAND))
def test_hand_picked(srv, name):
    payload, expect = HAND[name]
    cuts: list[int] = []
    if isinstance(payload, list):
        for part in payload[:-1]:
            cuts.append((cuts[-1] if cuts else 0) + len(part))
        payload = b"".join(payload)
    out = exchange(srv.port, payload, linger=0.15, cuts=tuple(cuts))
    expect(out)
    check(srv, out, client_goaway="GOAWAY" in name)


# -- regressions: bugs this sweep found ----------------------------------------------------------------------
def test_reset_in_the_same_read_as_malformed_headers(srv):
    """The request's stream was already reset when its RequestReceived was handled (by the client's
    RST_STREAM, or by h2 for a second HEADERS that is not a trailer block, in the same read): resetting it
    again raised StreamClosedError, logged as our failure and answered GOAWAY INTERNAL_ERROR."""
    for payload in (headers(1, GET[:1]) + rst(1) + headers(3, GET),
                    frame(HEADERS, END_HEADERS, 1) * 2 + headers(3, GET)):
        out = exchange(srv.port, payload, linger=0.3)
        serves(3)(out)
        assert out.resets().get(1, E.PROTOCOL_ERROR) == E.PROTOCOL_ERROR
        check(srv, out)


@pytest.mark.parametrize("payload", [headers(1, WS, True), headers(1, WS, False) + data(1, b"", True)],
                         ids=["END_STREAM on the HEADERS", "END_STREAM in the same read"])
def test_websocket_stream_ended_before_the_handshake_is_done(srv, payload):
    """The client ends its side of an extended CONNECT before the WebSocket is set up on the stream (the
    INIT call runs on a worker): that END_STREAM went nowhere, so the WebSocket and the stream stayed open
    until the WebSocket's ping timeout. Now the protocol hears it as soon as it is on the stream."""
    out = exchange(srv.port, payload, linger=0.5)
    assert out.answered(1) or 1 in out.resets(), "the stream was left open"
    check(srv, out)


def test_a_client_that_does_not_read_is_not_read_either():
    """Requests keep coming while the client reads none of the answers: the server queued every answer in
    user space (16 KB for each 1-byte request here) until ``network_timeout``. Now it stops reading a client
    whose unsent bytes pass ``write_buffer_high`` until it catches up."""
    def whole(ex):
        ex.respond(200, [("content-type", "text/plain")], b"x" * 16000)

    with h2_server(dispatch=whole, write_buffer_high=64 * 1024) as s:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)     # the kernel holds little for us
        sock.connect(("127.0.0.1", s.port))
        try:
            encoder = hpack.Encoder()
            sock.sendall(PREFACE + settings_frame((4, 2 ** 31 - 1)) + window(0, 2 ** 31 - 1 - 65535))
            sid = 1
            for _ in range(20):                     # separate reads on the server
                batch = b""
                for _ in range(50):
                    batch += headers(sid, GET, True, encoder)
                    sid += 2
                sock.sendall(batch)
                time.sleep(0.02)

            def queued() -> int:
                loop = asyncio.get_running_loop()
                return max(p.transport.get_write_buffer_size() for p in CONNECTIONS
                           if p.loop is loop and p.transport is not None)
            time.sleep(0.3)
            n = s.call(queued)
            assert n < 3_000_000, f"{n} bytes queued: the server kept reading a client that does not read"
        finally:
            sock.close()


@pytest.mark.parametrize("provoke", [lambda sid: window(sid, 0), lambda sid: data(sid, b"x", True)],
                         ids=["WINDOW_UPDATE 0", "DATA after END_STREAM"])
def test_resets_the_client_provokes_count_as_rapid_resets(provoke):
    """Streams opened and then reset by the server for a client's stream error ("MadeYouReset",
    CVE-2025-8671) free their slots as fast as the client's own RST_STREAM, which ``h2_max_resets``
    bounds; they were not counted. Malformed requests count too."""
    with h2_server(app=plain, h2_max_resets=30, threads=2) as s:
        encoder = hpack.Encoder()
        parts = []
        for sid in range(1, 161, 4):
            parts.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, encoder.encode(GET)) + provoke(sid))
            parts.append(headers(sid + 2, GET + [("X-Bad", "1")], True, encoder))
        out = exchange(s.port, b"".join(parts), linger=0.2)
        goaway_with(E.ENHANCE_YOUR_CALM)(out)


def test_websocket_failing_on_a_stream_reset_in_the_same_read_does_not_freeze_the_server():
    """The WebSocket's close frame (for an unmasked client frame) went to a stream the client's RST_STREAM,
    later in the same read, had already closed in h2: the failed write reported the loss to the WebSocket
    at once, from inside its write, and ``connection_lost`` waited for the write lock its own thread held.
    The loop froze: no connection was served any more. A lost stream is now reported on the next loop
    turn, as asyncio's transports do."""
    with h2_server(app=ws_app(echo, (skitai.WS_SIMPLE, 60, ("m",)), plain=plain), threads=2) as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        try:
            sock.sendall(PREFACE + frame(SETTINGS) + headers(1, WS, False))
            buf = b""
            while not any(isinstance(f, HeadersFrame) and f.stream_id == 1 for f in frames_of(buf)):
                chunk = sock.recv(65536)
                assert chunk, "closed before the WebSocket's 200"
                buf += chunk
            sock.sendall(data(1, b"\x81\x01a") + rst(1) + frame(PING, 0, 0, PROBE))   # unmasked: close 1002
            while not any(isinstance(f, PingFrame) and "ACK" in f.flags for f in frames_of(buf)):
                chunk = sock.recv(65536)
                assert chunk, "closed instead of answering the PING"
                buf += chunk
        finally:
            sock.close()
        fresh = H2Client(s.port)
        try:
            assert fresh.response(fresh.request("/after"))[1] == b"fine"
        finally:
            fresh.close()


def test_oversized_frame_header_is_refused_before_its_payload(srv):
    """A frame header over SETTINGS_MAX_FRAME_SIZE: GOAWAY FRAME_SIZE_ERROR at once, not after buffering
    up to 16 MiB of a payload the client may never send (h2 checks the length only on a whole frame)."""
    out = exchange(srv.port, frame(DATA, 0, 1, length=2 ** 24 - 1), pad=False)
    goaway_with(E.FRAME_SIZE_ERROR)(out)
    check(srv, out)


# -- hypothesis: frames built, then mutated -----------------------------------------------------------------
SIDS = st.sampled_from([0, 1, 1, 1, 3, 3, 2, 5, 7, 2 ** 31 - 1])
FIELDS = st.sampled_from([("x-a", "1"), ("X-Up", "1"), ("connection", "close"), ("te", "gzip"),
                          ("te", "trailers"), (":path", "/"), (":method", "POST"), ("content-length", "3"),
                          ("content-length", "x"), ("host", "elsewhere"), ("x-nl", "a\nb"), (":bogus", "1")])
NAMES = st.sampled_from([":path", ":method", ":authority", ":scheme", ":protocol", "host", "content-length",
                         "cookie", "content-type", "transfer-encoding", "expect", "x-é", ""])
VALUES = st.one_of(st.sampled_from(["/%zz", "//a/../../b", "/a?b=%ff&c", "/ws", "*", "CONNECT", "HEAD", "OPTIONS",
                                    "localhost:99999", "[::1]:80", "5_0", "+5", " 1", "websocket", "100-continue",
                                    "chunked", "/\x7f\x80é", "a" * 300]),
                   st.text(st.characters(max_codepoint=255), max_size=12))
BASES = st.sampled_from([GET, READ, STREAM, WS, READ + [("content-length", "4")]])


@st.composite
def header_list(draw) -> list[tuple[str, str]]:
    hdrs = list(draw(BASES))
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.sampled_from(["drop", "add", "swap"]))
            if op == "drop" and hdrs:
                hdrs.pop(draw(st.integers(0, len(hdrs) - 1)))
            elif op == "add":
                field = draw(FIELDS) if draw(st.booleans()) else (draw(NAMES), draw(VALUES))
                hdrs.insert(draw(st.integers(0, len(hdrs))), field)
            elif len(hdrs) > 1:
                i = draw(st.integers(0, len(hdrs) - 2))
                hdrs[i], hdrs[i + 1] = hdrs[i + 1], hdrs[i]
    return hdrs


@st.composite
def one_frame(draw, encoder: hpack.Encoder) -> bytes:
    kind = draw(st.sampled_from(["headers", "headers", "data", "data", "priority", "rst", "settings", "ping",
                                 "goaway", "window", "continuation", "push", "unknown", "bytes"]))
    sid = draw(SIDS)
    end = draw(st.booleans())
    if kind == "headers":
        flags = END_HEADERS | (END_STREAM if end else 0)
        if draw(st.integers(0, 9)) == 0:
            flags &= ~END_HEADERS
        payload = encoder.encode(draw(header_list()))
        if draw(st.integers(0, 9)) == 0:
            payload = draw(st.binary(max_size=12))          # garbage HPACK
        f = frame(HEADERS, flags, sid, payload)
    elif kind == "data":
        payload = draw(st.binary(max_size=40))
        if draw(st.booleans()):
            pad = draw(st.integers(0, 60))
            f = frame(DATA, PADDED | (END_STREAM if end else 0), sid, bytes([pad]) + payload + b"\0" * min(pad, 20))
        else:
            f = frame(DATA, END_STREAM if end else 0, sid, payload)
    elif kind == "priority":
        f = frame(PRIORITY, 0, sid, draw(st.sampled_from([0, 1, 3, sid])).to_bytes(4, "big") + b"\x10")
    elif kind == "rst":
        f = rst(sid, draw(st.integers(0, 14)))
    elif kind == "settings":
        pairs = draw(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(
            [0, 1, 2, 100, 16383, 16384, 65535, 2 ** 24, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1])), max_size=3))
        f = settings_frame(*pairs) if not draw(st.integers(0, 5)) == 0 else frame(SETTINGS, ACK, 0)
    elif kind == "ping":
        f = frame(PING, draw(st.sampled_from([0, ACK])), 0, b"fuzzfuzz")
    elif kind == "goaway":
        f = goaway(draw(st.sampled_from([0, 1, 3, 2 ** 31 - 1])), draw(st.sampled_from([0, 1, 2, 0x99])))
    elif kind == "window":
        f = window(sid, draw(st.sampled_from([0, 1, 1000, 65535, 2 ** 30, 2 ** 31 - 1])))
    elif kind == "continuation":
        f = frame(CONT, END_HEADERS if end else 0, sid, encoder.encode([("x-c", "1")]))
    elif kind == "push":
        f = frame(PUSH, END_HEADERS, sid, (2).to_bytes(4, "big") + encoder.encode(GET))
    elif kind == "unknown":
        f = frame(draw(st.integers(10, 255)), draw(st.integers(0, 255)), sid, draw(st.binary(max_size=16)))
    else:
        return draw(st.binary(min_size=1, max_size=24))   # raw bytes where a frame should be
    if draw(st.integers(0, 7)) == 0:                       # mutate the frame header
        field = draw(st.sampled_from(["length", "type", "flags", "reserved"]))
        b = bytearray(f)
        if field == "length":
            n = max(0, int.from_bytes(b[:3], "big") + draw(st.sampled_from([-3, -1, 1, 5, 16385])))
            b[:3] = n.to_bytes(3, "big")
        elif field == "type":
            b[3] = draw(st.integers(0, 255))
        elif field == "flags":
            b[4] = draw(st.integers(0, 255))
        else:
            b[5] |= 0x80                                   # the reserved bit of the stream id
        f = bytes(b)
    return f


@st.composite
def sequence(draw) -> bytes:
    encoder = hpack.Encoder()
    return b"".join(draw(st.lists(one_frame(encoder), min_size=1, max_size=8)))


@st.composite
def scenario(draw) -> bytes:
    """Mostly well-formed: a few requests on rising stream ids (bodies for the reader, the streaming app, a
    WebSocket), with client control frames between them and one hostile frame somewhere."""
    encoder = hpack.Encoder()
    frames: list[bytes] = []
    if draw(st.booleans()):
        frames.append(settings_frame((4, draw(st.sampled_from([0, 1, 100, 65535]))),
                                     (5, draw(st.sampled_from([16384, 20000])))))
    for sid in range(1, 2 * draw(st.integers(1, 4)), 2):
        base = draw(BASES)
        body = draw(st.binary(max_size=30)) if base is not GET and base is not STREAM else b""
        if "content-length" in dict(base) and draw(st.booleans()):
            body = b"four"
        frames.append(frame(HEADERS, END_HEADERS | (0 if body or base is WS else END_STREAM), sid,
                            encoder.encode(base)))
        if body:
            frames.append(data(sid, body[:10]))
            frames.append(data(sid, body[10:], end_stream=draw(st.booleans())))
        for _ in range(draw(st.integers(0, 2))):
            frames.append(draw(st.sampled_from([
                rst(sid, 8), rst(sid, 0), window(sid, 100), window(0, 100), frame(PING, 0, 0, b"12345678"),
                frame(PRIORITY, 0, sid + 2, (sid).to_bytes(4, "big") + b"\x10"), goaway(sid),
                settings_frame((4, 0)), settings_frame((4, 1000)), frame(HEADERS, END_HEADERS | END_STREAM, sid,
                                                                          encoder.encode([("x-trailer", "1")])),
                data(sid, b"late", True)])))
    if draw(st.booleans()):
        frames.insert(draw(st.integers(0, len(frames))), draw(one_frame(encoder)))
    return b"".join(frames)


@st.composite
def split_sequence(draw) -> tuple[bytes, tuple[int, ...]]:
    payload = draw(st.one_of(sequence(), scenario()))
    cuts = draw(st.lists(st.integers(1, max(1, len(payload) - 1)), max_size=3)) if draw(st.booleans()) else []
    return payload, tuple(cuts)


# H2_FUZZ_EXAMPLES / H2_FUZZ_RANDOM=1: a longer or a fresh run by hand
@settings(max_examples=int(os.environ.get("H2_FUZZ_EXAMPLES", 200)), deadline=None,
          derandomize=not os.environ.get("H2_FUZZ_RANDOM"), database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=split_sequence())
def test_fuzzed_sequences(srv, case):
    payload, cuts = case
    def no_leak(out: Outcome) -> None:
        if out.alive and not out.closed:
            assert eventually(lambda: not leaked_streams(srv), 1), f"leaked streams {leaked_streams(srv)}"
    out = exchange(srv.port, payload, before_close=no_leak, cuts=cuts)
    check(srv, out, client_goaway=GOAWAY in frame_types(payload))
