"""Floods of frames that cost a parse but do nothing for a request (``h2_max_noop_frames``, CVE-2019-9518)
and connections kept open without a stream (``h2_idle_timeout``), on real sockets with raw frames.

Every flood ends in GOAWAY ENHANCE_YOUR_CALM while another client, on its own connection, is answered
promptly meanwhile; a large download acknowledged frame by frame does not count as a flood.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import h2.events
import h2.settings
import hpack
import httpx
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (ContinuationFrame, DataFrame, ExtensionFrame, HeadersFrame, PingFrame,
                              PriorityFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from skitai.config import Limits
from tests.skitai_core.h2ws_support import H2Client, h2_server

LIMIT = 100
BIG = 4 * 1024 * 1024
GET = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "localhost")]
POST = [(":method", "POST"), *GET[1:]]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * BIG]
    body = environ["wsgi.input"].read()          # a POST whose body does not come holds its stream open
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine %d" % len(body)]


@pytest.fixture(scope="module")
def srv():
    with h2_server(app=app, threads=8, h2_max_noop_frames=LIMIT, h2_max_concurrent_streams=4) as s:
        yield s


@contextmanager
def bystander(srv):
    """A well-behaved HTTP/2 client (httpx) on its own connection, asking all along; yields its latencies."""
    latencies: list[float] = []
    stop = threading.Event()

    def run():
        with httpx.Client(http1=False, http2=True, timeout=5) as client:
            while not stop.is_set():
                t = time.monotonic()
                r = client.get(srv.url + "/")
                latencies.append(time.monotonic() - t)
                assert r.http_version == "HTTP/2" and r.text == "fine 0"
                time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while not latencies and thread.is_alive():
        time.sleep(0.01)
    try:
        yield latencies
    finally:
        seen = len(latencies)
        deadline = time.monotonic() + 2
        while len(latencies) < seen + 2 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)                      # served after the flood too
        stop.set()
        thread.join(5)
    assert len(latencies) >= seen + 2, "the other client was not served"
    assert max(latencies) < 1.0, f"the other client waited {max(latencies):.2f}s"


def calm(c: H2Client, timeout: float = 5.0):
    c.read(lambda e: isinstance(e, h2.events.ConnectionTerminated), timeout)
    return c.goaway_code()


def answered(c: H2Client) -> int:
    """A stream answered in full (that stream is closed then, on both sides)."""
    sid = c.request("/")
    assert c.response(sid)[1] == b"fine 0"
    return sid


def held_open(c: H2Client) -> int:
    """A POST whose body never comes: its stream stays open (the app waits for the body)."""
    return c.request("/", method="POST", end=False)


def closed_data(c):
    sid = answered(c)
    return [DataFrame(sid, b"x") for _ in range(3000)]


def empty_data(c):
    sid = held_open(c)
    return [DataFrame(sid, b"") for _ in range(3000)]


def padding_only_data(c):
    sid = held_open(c)
    return [DataFrame(sid, b"", pad_length=8, flags=["PADDED"]) for _ in range(3000)]


def priority(c):
    return [PriorityFrame(1 + 2 * (i % 50), depends_on=0, stream_weight=16) for i in range(3000)]


def window_update_conn(c):
    return [WindowUpdateFrame(0, window_increment=1) for _ in range(3000)]


def window_update_closed(c):
    sid = answered(c)
    return [WindowUpdateFrame(sid, window_increment=1) for _ in range(3000)]


def window_update_open(c):
    sid = held_open(c)
    return [WindowUpdateFrame(sid, window_increment=1) for _ in range(3000)]


def unknown_type(c):
    return [ExtensionFrame(0x20 + i % 8, 0, 0, b"") for i in range(3000)]


def headers_on_reset_stream(c):
    sid = held_open(c)
    c.sock.sendall(RstStreamFrame(sid, error_code=ErrorCodes.CANCEL).serialize())
    block = hpack.Encoder().encode(GET)
    return [HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]) for _ in range(3000)]


def ping_acks(c):
    return [PingFrame(0, opaque_data=b"12345678", flags=["ACK"]) for _ in range(3000)]


def settings_acks(c):
    c.read(lambda e: isinstance(e, h2.events.SettingsAcknowledged), 2)   # the one we asked for first
    return [SettingsFrame(0, flags=["ACK"]) for _ in range(3000)]


def refused_streams(c):
    for _ in range(4):                            # h2_max_concurrent_streams, all held open
        held_open(c)
    encoder, sid = hpack.Encoder(), 9
    frames = []
    for _ in range(1000):
        sid += 2
        frames.append(HeadersFrame(sid, encoder.encode(GET), flags=["END_HEADERS", "END_STREAM"]))
    return frames


FLOODS = [closed_data, empty_data, padding_only_data, priority, window_update_conn, window_update_closed,
          window_update_open, unknown_type, headers_on_reset_stream, ping_acks, settings_acks, refused_streams]


@pytest.mark.parametrize("make", FLOODS, ids=[f.__name__ for f in FLOODS])
def test_a_flood_of_frames_that_do_nothing_is_calmed_and_others_are_served(srv, make, caplog):
    with bystander(srv):
        c = H2Client(srv.port)
        try:
            payload = b"".join(f.serialize() for f in make(c))
            c.sock.sendall(payload)
            assert calm(c) == ErrorCodes.ENHANCE_YOUR_CALM
        finally:
            c.close()
    assert any("flood of frames that do nothing" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


def test_the_limit_cuts_one_read_short(srv):
    """~20k frames in one write: parsing stops at the limit (a RST_STREAM answers each DATA on the closed
    stream, so their count shows how far the server read), not after the whole buffer."""
    c = H2Client(srv.port)
    try:
        sid = answered(c)
        payload = DataFrame(sid, b"").serialize() * 20000
        t = time.monotonic()
        c.sock.sendall(payload)
        assert calm(c) == ErrorCodes.ENHANCE_YOUR_CALM
        took = time.monotonic() - t
        resets = sum(1 for f in c.frames() if isinstance(f, RstStreamFrame))
        assert resets <= LIMIT + 2, f"{resets} frames of the read were parsed"
        assert took < 1.0
    finally:
        c.close()


def test_frames_under_the_limit_are_fine(srv):
    assert Limits().h2_max_noop_frames == 1000
    c = H2Client(srv.port)
    try:
        sid = answered(c)
        c.sock.sendall(b"".join(f.serialize() for f in [DataFrame(sid, b"x")] * (LIMIT // 2)
                                + [PriorityFrame(3, depends_on=0, stream_weight=16)] * (LIMIT // 3)))
        assert answered(c)
        assert c.goaway() is None
    finally:
        c.close()


def test_a_large_download_acknowledged_frame_by_frame_is_not_a_flood(srv):
    """A small client window: every DATA frame needs the client's WINDOW_UPDATEs, and this client sends
    four per frame (stream and connection, each in two halves), far more than LIMIT in all."""
    c = H2Client(srv.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    c.auto_ack = False
    updates = 0
    try:
        sid = c.request("/big")
        got, done = 0, False
        c.sock.settimeout(5)
        while not done:
            data = c.sock.recv(65536)
            assert data, "closed"
            for e in c.conn.receive_data(data):
                if isinstance(e, h2.events.DataReceived):
                    got += len(e.data)
                    n = e.flow_controlled_length
                    for part in (n // 2, n - n // 2):
                        if part:
                            c.conn.increment_flow_control_window(part)
                            updates += 1
                            if e.stream_ended is None:
                                c.conn.increment_flow_control_window(part, stream_id=sid)
                                updates += 1
                elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    done = True
            c.flush()
        assert got == BIG
        assert updates > 10 * LIMIT
        assert answered(c) and c.goaway() is None
    finally:
        c.close()


def test_a_large_download_with_httpx_is_not_a_flood(srv):
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        for _ in range(2):
            r = client.get(srv.url + "/big")
            assert r.http_version == "HTTP/2" and len(r.content) == BIG
        assert client.get(srv.url + "/").text == "fine 0"


# ---- h2_idle_timeout ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def idle_srv():
    with h2_server(app=app, threads=8, h2_idle_timeout=0.5, header_timeout=0.5, network_timeout=5) as s:
        yield s


def closed_within(c: H2Client, seconds: float, step=None) -> float:
    """Seconds until the server closes; ``step()`` runs every 0.1 s meanwhile."""
    t = next_step = time.monotonic()
    c.sock.settimeout(0.02)
    while time.monotonic() - t < seconds:
        if step is not None and time.monotonic() >= next_step:
            next_step += 0.1
            step()
        try:
            data = c.sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - t
        if not data:
            return time.monotonic() - t
        c.all_raw += data
    raise AssertionError(f"still open after {seconds}s")


def trickle(c: H2Client, data: bytes):
    """A step sending ``data`` one byte at a time, all but its last byte."""
    left = iter(data[:-1])

    def step():
        byte = next(left, None)
        if byte is not None:
            c.sock.sendall(bytes([byte]))
    return step


def test_pings_do_not_keep_a_connection_without_streams_open(idle_srv):
    c = H2Client(idle_srv.port)
    try:
        sent = []

        def ping():
            sent.append(len(sent).to_bytes(8, "big"))
            c.sock.sendall(PingFrame(0, opaque_data=sent[-1]).serialize())

        took = closed_within(c, 2.0, ping)
        assert took < 1.2
        assert c.goaway_code() == ErrorCodes.NO_ERROR
        acks = [f for f in c.frames() if isinstance(f, PingFrame) and "ACK" in f.flags]
        assert len(acks) >= 3                   # PINGs are still answered meanwhile
    finally:
        c.close()


def test_window_updates_and_settings_do_not_keep_it_open_either(idle_srv):
    c = H2Client(idle_srv.port)
    try:
        answered(c)
        frames = iter([WindowUpdateFrame(0, window_increment=1), SettingsFrame(0, settings={4: 65535})] * 20)
        took = closed_within(c, 2.0, lambda: c.sock.sendall(next(frames).serialize()))
        assert took < 1.2
        assert c.goaway_code() == ErrorCodes.NO_ERROR
    finally:
        c.close()


def test_a_trickled_partial_frame_without_streams_is_closed(idle_srv):
    c = H2Client(idle_srv.port)
    try:
        took = closed_within(c, 2.0, trickle(c, PingFrame(0, opaque_data=b"12345678").serialize()))
        assert took < 1.2
        assert c.goaway_code() == ErrorCodes.NO_ERROR
    finally:
        c.close()


def test_a_trickled_header_block_is_closed_after_header_timeout_even_with_a_stream_open(idle_srv):
    c = H2Client(idle_srv.port)
    try:
        held_open(c)                            # an open stream: the idle timeout does not apply
        block = hpack.Encoder().encode(GET)
        c.sock.sendall(HeadersFrame(3, block[:2]).serialize())        # no END_HEADERS
        took = closed_within(c, 2.0, trickle(c, ContinuationFrame(3, block[2:], flags=["END_HEADERS"]).serialize()))
        assert took < 1.2
        assert c.goaway_code() == ErrorCodes.NO_ERROR
    finally:
        c.close()


def test_an_open_stream_keeps_the_connection_and_the_clock_starts_when_it_ends(idle_srv):
    """Pinged all along after its stream ended, the connection still closes h2_idle_timeout later."""
    c = H2Client(idle_srv.port)
    try:
        sid = held_open(c)
        time.sleep(1.0)                         # twice h2_idle_timeout, with a stream open: kept
        c.conn.send_data(sid, b"abc", end_stream=True)
        c.flush()
        assert c.response(sid)[1] == b"fine 3"
        assert c.goaway() is None
        took = closed_within(c, 2.0, lambda: c.sock.sendall(PingFrame(0, opaque_data=b"12345678").serialize()))
        assert 0.3 < took < 1.2
        assert c.goaway_code() == ErrorCodes.NO_ERROR
    finally:
        c.close()
