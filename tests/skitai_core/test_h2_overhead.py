"""DATA (and CONTINUATION) frames carrying next to no payload for an open stream (``h2_max_small_frames``):
useful to h2, so no other limit counts them, but each costs a parse and an event. Past an allowance per
flood window they must carry a payload on average; a flood of 1-byte frames ends in GOAWAY ENHANCE_YOUR_CALM
while another client is served, and uploads, large or in small gRPC-like messages, go through.
"""
from __future__ import annotations

import time

import h2.events
import httpx
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame

from skitai.config import Limits
from tests.skitai_core.h2ws_support import H2Client, h2_server
from tests.skitai_core.test_h2_floods import bystander, calm, held_open

BIG = 4 * 1024 * 1024


def app(environ, start_response):
    body = environ["wsgi.input"].read()          # a POST whose body does not come holds its stream open
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine %d" % len(body)]


@pytest.fixture(scope="module")
def srv():
    with h2_server(app=app, threads=8) as s:          # the default limits
        yield s


def client(srv):
    return H2Client(srv.port)


def finish(c, sid) -> bytes:
    c.conn.send_data(sid, b"", end_stream=True)
    c.flush()
    return c.response(sid)[1]


def test_a_flood_of_one_byte_data_frames_is_calmed_and_others_are_served(srv, caplog):
    assert Limits().h2_max_small_frames == 2000
    with bystander(srv):
        c = client(srv)
        try:
            sid = held_open(c)
            t = time.monotonic()
            c.sock.sendall(DataFrame(sid, b"x").serialize() * 25000)     # ~250 KB, within the stream window
            assert calm(c) == ErrorCodes.ENHANCE_YOUR_CALM
            assert time.monotonic() - t < 2.0
        finally:
            c.close()
    assert any("small frames" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_a_flood_spread_over_many_small_reads_is_calmed_too(srv):
    """Each write of 100 frames arrives as a read of its own, more or less; the few frames a read gets free
    do not add up to a way around the limit."""
    c = client(srv)
    try:
        sid = held_open(c)
        chunk = DataFrame(sid, b"x").serialize() * 100
        for _ in range(250):
            try:
                c.sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.001)
        assert calm(c) == ErrorCodes.ENHANCE_YOUR_CALM
    finally:
        c.close()


def upload(c, sid: int, body: bytes, frame: int = 16384) -> None:
    """``body`` in DATA frames of ``frame`` bytes, as the flow-control windows allow."""
    sent = 0
    while sent < len(body):
        n = min(frame, c.conn.local_flow_control_window(sid), len(body) - sent)
        if n <= 0:
            c.read(lambda e: isinstance(e, h2.events.WindowUpdated), 5)
            continue
        c.conn.send_data(sid, body[sent:sent + n], end_stream=sent + n == len(body))
        c.flush()
        sent += n


def test_a_large_upload_in_full_frames_is_not_a_flood(srv):
    c = client(srv)
    try:
        for _ in range(2):
            sid = c.request("/", method="POST", end=False)
            upload(c, sid, b"u" * BIG)
            assert c.response(sid)[1] == b"fine %d" % BIG
        assert c.goaway() is None
    finally:
        c.close()


def test_uploads_with_httpx_are_not_a_flood(srv):
    def pieces(size: int, n: int):
        for _ in range(n):
            yield b"p" * size

    with httpx.Client(http1=False, http2=True, timeout=10) as hc:
        r = hc.post(srv.url + "/", content=b"u" * BIG)
        assert r.http_version == "HTTP/2" and r.text == "fine %d" % BIG
        for _ in range(200):                      # many small requests on one connection
            assert hc.post(srv.url + "/", content=b"tiny").text == "fine 4"
        r = hc.post(srv.url + "/", content=pieces(1024, 1024))      # streamed in 1 KiB frames
        assert r.text == "fine %d" % (1024 * 1024)


def test_a_grpc_like_stream_of_small_messages_is_not_a_flood(srv):
    """2000 DATA frames of 20 bytes (a 5-byte gRPC prefix and a small message) over ~2 s, ten at a time,
    then a burst of 1000 more in one write: a busy bidi or client stream, not a flood."""
    c = client(srv)
    try:
        sid = held_open(c)
        message = DataFrame(sid, b"\x00\x00\x00\x00\x0f" + b"m" * 15).serialize()
        deadline = time.monotonic()
        for _ in range(200):
            c.sock.sendall(message * 10)
            deadline += 0.01
            time.sleep(max(0.0, deadline - time.monotonic()))
        c.sock.sendall(message * 1000)
        assert finish(c, sid) == b"fine %d" % (3000 * 20)
        assert c.goaway() is None
    finally:
        c.close()


def test_many_small_requests_in_bulk_are_not_a_flood(srv):
    """Rounds of 90 POSTs with a 4-byte body each, written at once (a benchmark, a gRPC client with
    unary calls): ~2700 DATA frames of 4 bytes, the most of them in bulk, each paid for by its request."""
    c = client(srv)
    try:
        for _ in range(30):
            sids = []
            for _ in range(90):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, [(":method", "POST"), (":path", "/"), (":scheme", "http"),
                                          (":authority", "localhost")])
                c.conn.send_data(sid, b"tiny", end_stream=True)
                sids.append(sid)
            c.flush()
            for sid in sids:
                assert c.response(sid)[1] == b"fine 4"
            c.events.clear()
        assert c.goaway() is None
    finally:
        c.close()
