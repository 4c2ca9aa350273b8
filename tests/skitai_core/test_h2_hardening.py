"""HTTP/2 conformance and robustness at the edges (RFC 9113): malformed requests cost one stream, not the
connection; the app never takes a short body for a whole one; a client that stops reading cannot make the
server buffer without bound or hold a connection forever."""
from __future__ import annotations

import asyncio
import base64
import socket
import struct
import threading
import time

import h2.events
import h2.settings
import hpack
import httpx
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame

from skitai.http2.protocol import CONNECTIONS
from tests.skitai_core.h2ws_support import H2Client, h2_server
from tests.support.net import eventually

GET = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "localhost")]
POST = [(":method", "POST"), (":path", "/body"), (":scheme", "http"), (":authority", "localhost")]


class RawH2:
    """Frames written by hand (what a well-behaved h2 client refuses to send), frames read back parsed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.frames: list[Frame] = []
        self.closed = False
        self._buf = b""

    def headers(self, sid: int, headers, end_stream: bool = True) -> None:
        frame = HeadersFrame(sid, data=self.encoder.encode(headers), flags=["END_HEADERS"])
        if end_stream:
            frame.flags.add("END_STREAM")
        self.sock.sendall(frame.serialize())

    def data(self, sid: int, payload: bytes, end_stream: bool = False) -> None:
        self.sock.sendall(DataFrame(sid, data=payload, flags=["END_STREAM"] if end_stream else []).serialize())

    def read_until(self, done, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done() and not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return
            if not chunk:
                self.closed = True
            self._buf += chunk
            while len(self._buf) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self._buf[:9]))
                if len(self._buf) < 9 + length:
                    break
                frame.parse_body(memoryview(self._buf[9:9 + length]))
                self._buf = self._buf[9 + length:]
                if isinstance(frame, HeadersFrame):
                    frame.decoded = dict(self.decoder.decode(frame.data, raw=False))
                self.frames.append(frame)

    def reset_of(self, sid: int):
        return next((f for f in self.frames if isinstance(f, RstStreamFrame) and f.stream_id == sid), None)

    def goaway(self):
        return next((f for f in self.frames if isinstance(f, GoAwayFrame)), None)

    def answer(self, sid: int) -> tuple[str, bytes]:
        """``(:status, body)`` of stream ``sid`` once it ended."""
        def ended():
            return any(f.stream_id == sid and "END_STREAM" in f.flags for f in self.frames
                       if isinstance(f, HeadersFrame | DataFrame))
        self.read_until(ended)
        status = next(f.decoded[":status"] for f in self.frames if isinstance(f, HeadersFrame) and f.stream_id == sid)
        return status, b"".join(f.data for f in self.frames if isinstance(f, DataFrame) and f.stream_id == sid)

    def close(self) -> None:
        self.sock.close()


def live_connections(srv) -> int:
    """HTTP/2 connections of ``srv`` that still have a transport."""
    def count():
        loop = asyncio.get_running_loop()
        return sum(1 for p in list(CONNECTIONS) if p.loop is loop and p.transport is not None)
    return srv.call(count)


# -- malformed requests are stream errors (RFC 9113 8.1.1) --------------------------------------------------
seen: list[tuple[str, object]] = []
reading = threading.Event()


def body_app(environ, start_response):
    reading.set()
    try:
        data = environ["wsgi.input"].read()
    except Exception as exc:          # the stream was reset under the reader: what it must see
        seen.append(("error", type(exc).__name__))
        raise
    seen.append(("complete", data))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d bytes" % len(data)]


def _short_then_end(c: RawH2) -> None:
    c.headers(1, POST + [("content-length", "10")], end_stream=False)
    c.data(1, b"12345", end_stream=True)


def _too_long(c: RawH2) -> None:
    c.headers(1, POST + [("content-length", "3")], end_stream=False)
    c.data(1, b"12345", end_stream=True)


def _headers_only(c: RawH2) -> None:
    c.headers(1, POST + [("content-length", "5")], end_stream=True)


def _short_then_trailers(c: RawH2) -> None:
    c.headers(1, POST + [("content-length", "10")], end_stream=False)
    c.data(1, b"12345")
    c.headers(1, [("x-checksum", "1")], end_stream=True)


def _trailers_without_end_stream(c: RawH2) -> None:
    c.headers(1, POST, end_stream=False)
    c.data(1, b"12345")
    c.headers(1, [("x-checksum", "1")], end_stream=False)


def _not_a_number(c: RawH2) -> None:
    c.headers(1, POST + [("content-length", "5x")], end_stream=False)
    c.data(1, b"12345", end_stream=True)


def _short_later(c: RawH2) -> None:
    """The app is already reading when the short body ends."""
    c.headers(1, POST + [("content-length", "10")], end_stream=False)
    c.data(1, b"12345")
    assert reading.wait(5)
    c.data(1, b"678", end_stream=True)


@pytest.mark.parametrize("send", [_short_then_end, _too_long, _headers_only, _short_then_trailers,
                                  _trailers_without_end_stream, _not_a_number, _short_later])
def test_body_that_breaks_content_length_or_trailer_rules_resets_only_its_stream(send):
    seen.clear()
    reading.clear()
    with h2_server(app=body_app, threads=2) as srv:
        c = RawH2(srv.port)
        try:
            send(c)
            c.read_until(lambda: c.reset_of(1) is not None)
            rst = c.reset_of(1)
            assert rst is not None and rst.error_code == ErrorCodes.PROTOCOL_ERROR
            c.headers(3, POST + [("content-length", "4")], end_stream=False)
            c.data(3, b"next", end_stream=True)
            assert c.answer(3) == ("200", b"4 bytes")          # the connection serves on
            assert c.goaway() is None
        finally:
            c.close()
    assert seen[-1] == ("complete", b"next")
    assert all(kind == "error" for kind, _ in seen[:-1])        # never a short body taken as whole


# -- pseudo-header rules our header check was missing (RFC 9113 8.3.1, 8.5) ----------------------------------
def plain_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["REQUEST_METHOD"].encode()]


@pytest.mark.parametrize("headers", [
    [(":method", "CONNECT"), (":scheme", "http"), (":path", "/"), (":authority", "localhost:80")],
    [(":method", "CONNECT")],
    [(":method", "GET"), (":path", "relative"), (":scheme", "http"), (":authority", "localhost")],
    [(":method", "GET"), (":path", "*"), (":scheme", "http"), (":authority", "localhost")],
    GET + [("host", "elsewhere.example")],
    [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "a b")],          # not a host
    [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "user@localhost")],
    [(":method", "GET"), (":path", "/"), (":scheme", "http"), ("host", "localhost/admin")],
])
def test_malformed_pseudo_headers_are_a_stream_error(headers):
    with h2_server(app=plain_app) as srv:
        c = RawH2(srv.port)
        try:
            c.headers(1, headers)
            c.read_until(lambda: c.reset_of(1) is not None or any(
                isinstance(f, HeadersFrame) and f.stream_id == 1 for f in c.frames))
            rst = c.reset_of(1)
            assert rst is not None and rst.error_code == ErrorCodes.PROTOCOL_ERROR
            c.headers(3, [(":method", "OPTIONS"), (":path", "*"), (":scheme", "http"), (":authority", "localhost"),
                          ("host", "LOCALHOST")])
            assert c.answer(3) == ("200", b"OPTIONS")
        finally:
            c.close()


# -- h2c upgrade ----------------------------------------------------------------------------------------------
def _settings_header(*pairs: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(b"".join(struct.pack(">HL", k, v) for k, v in pairs)).decode().rstrip("=")


@pytest.mark.parametrize("pairs", [((2, 2),), ((4, 2 ** 31),), ((3, 10), (5, 100))])
def test_h2c_upgrade_with_out_of_range_settings_stays_http1(pairs):
    """ENABLE_PUSH=2, INITIAL_WINDOW_SIZE over 2^31-1, MAX_FRAME_SIZE under 16384: no 101 and a hang."""
    with h2_server(app=plain_app) as srv:
        r = httpx.get(f"{srv.url}/", timeout=3, headers={
            "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": _settings_header(*pairs)})
        assert r.status_code == 200 and r.http_version == "HTTP/1.1" and r.text == "GET"


# -- a client that stops reading ---------------------------------------------------------------------------
def _stalled_client(port: int) -> H2Client:
    """Windows wide open, then never reads the socket: only TCP back-pressure can stop the server."""
    c = H2Client(port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2 ** 31 - 1})
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.conn.increment_flow_control_window(2 ** 31 - 1 - 65535)
    c.flush()
    return c


def test_async_producer_is_paused_by_a_client_that_does_not_read():
    chunk, count = 64 * 1024, 1000         # 65 MB if nothing stops it
    written = [0]

    def dispatch(ex):
        async def run():
            ex.start(200, [])
            try:
                for _ in range(count):
                    await ex.write(b"w" * chunk)
                    written[0] += chunk
            except ConnectionError:
                return
            ex.end()
        return run()

    with h2_server(dispatch) as srv:
        c = _stalled_client(srv.port)
        try:
            c.request("/big")
            time.sleep(0.5)
            assert written[0] < 16 * 1024 * 1024      # the transport's buffer and the kernel's, no more
        finally:
            c.close()


def test_connection_not_read_is_closed_after_network_timeout_and_frees_the_worker():
    closed = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/forever":
            return plain_app(environ, start_response)

        def body():
            try:
                while True:
                    yield b"s" * 65536
            finally:
                closed.set()
        start_response("200 OK", [])
        return body()

    with h2_server(app=app, threads=2, network_timeout=0.3) as srv:
        c = _stalled_client(srv.port)
        try:
            c.request("/forever")
            assert eventually(lambda: live_connections(srv) == 1)     # served, then stuck
            assert eventually(lambda: live_connections(srv) == 0)     # aborted after network_timeout
            assert closed.wait(5)
        finally:
            c.close()
        still = H2Client(srv.port)
        try:
            assert still.response(still.request("/x"), timeout=2)[0][":status"] == "200"
        finally:
            still.close()


# -- extended CONNECT for a protocol we do not carry ------------------------------------------------------------
def test_unknown_protocol_answer_closes_the_stream():
    """The 501 ends our side; the client's side of the stream must not stay open for ever (RFC 9113 8.1)."""
    with h2_server(app=plain_app) as srv:
        c = H2Client(srv.port)
        try:
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "x-custom"), (":scheme", "http"),
                                      (":path", "/"), (":authority", "localhost")])
            c.flush()
            c.read(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid, 3)
            assert c.response(sid)[0][":status"] == "501"
            resets = [e for e in c.events if isinstance(e, h2.events.StreamReset) and e.stream_id == sid]
            assert resets and resets[0].error_code == ErrorCodes.NO_ERROR
        finally:
            c.close()


def test_bad_trailer_names_reset_the_stream_not_the_connection():
    # before: trailers went out unchecked (h2 does not check what we send): a name with a space broke
    # the client's whole connection
    def dispatch(ex):
        ex.start(200, [("Content-Type", "text/plain")])
        if ex.request.path == "/bad":
            ex.trailers = [("grpc status", "0")]
        else:
            ex.trailers = [("Grpc-Status", "0")]
        ex.end(b"body")

    with h2_server(dispatch) as s:
        c = H2Client(s.port)
        try:
            bad = c.request("/bad")
            c.response(bad)
            resets = [e for e in c.events if isinstance(e, h2.events.StreamReset) and e.stream_id == bad]
            assert resets and resets[0].error_code == ErrorCodes.INTERNAL_ERROR
            good = c.request("/good")
            headers, body = c.response(good)
            trailers = [e for e in c.events if isinstance(e, h2.events.TrailersReceived) and e.stream_id == good]
            assert body == b"body" and dict(trailers[0].headers) == {"grpc-status": "0"}
        finally:
            c.close()

