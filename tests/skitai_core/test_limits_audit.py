"""Limits that had a default but no test crossing them (the limits audit).

Each test sets a small value, crosses it with a real client, checks the documented answer, and checks that
the server goes on serving another client (or another stream of the same connection).
"""
from __future__ import annotations

import logging
import socket
import time

import h2.events
import hpack
import httpx
import pytest
import requests
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, HeadersFrame, PingFrame, SettingsFrame

import skitai
from skitai.config import Limits
from tests.skitai_core.h2ws_support import H2Client, frames_of, h2_server, ws_app, ws_raw

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQ = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "localhost")]


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine %d" % len(body)]


def still_serves(srv) -> None:
    c = H2Client(srv.port)
    try:
        assert c.response(c.request("/again"))[1] == b"fine 0"
    finally:
        c.close()




def raw_h2(port: int, *frames: bytes, wait: float = 3.0) -> list:
    """Preface, our frames, then every frame the server sends until it closes (or ``wait`` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(PREFACE + SettingsFrame(0).serialize() + b"".join(frames))
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return frames_of(data)


def goaway(frames: list):
    return next((ErrorCodes(f.error_code) for f in frames if f.type == 0x7), None)


def server_settings(frames: list) -> dict:
    return next(f.settings for f in frames if f.type == 0x4 and "ACK" not in f.flags)


# ---- HTTP/2 --------------------------------------------------------------------------------------------

def test_h2_flood_window_is_the_span_the_flood_counters_run_over():
    assert Limits().h2_flood_window == 10.0
    pings = b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(4))
    # 4 + 4 PINGs with a pause longer than the window between them: never more than 5 in one window
    with h2_server(app=app, h2_max_pings=5, h2_flood_window=0.3) as srv:
        c = H2Client(srv.port)
        try:
            c.sock.sendall(pings)
            time.sleep(0.5)
            c.sock.sendall(pings)
            assert c.response(c.request("/"))[1] == b"fine 0"
            assert c.goaway() is None
            c.sock.sendall(pings + pings)                  # 8 in one window: over
            c.read(lambda e: isinstance(e, h2.events.ConnectionTerminated), 3)
            assert c.goaway_code() == ErrorCodes.ENHANCE_YOUR_CALM
        finally:
            c.close()
        still_serves(srv)
    # the same pattern inside a long window is a flood
    with h2_server(app=app, h2_max_pings=5, h2_flood_window=10) as srv:
        c = H2Client(srv.port)
        try:
            c.sock.sendall(pings)
            time.sleep(0.5)
            c.sock.sendall(pings)
            c.read(lambda e: isinstance(e, h2.events.ConnectionTerminated), 3)
            assert c.goaway_code() == ErrorCodes.ENHANCE_YOUR_CALM
        finally:
            c.close()


@pytest.mark.parametrize(("limit", "update", "ok"), [(4096, 4096, True), (4096, 8192, False),
                                                     (8192, 8192, True), (8192, 65536, False)])
def test_h2_header_table_size_is_advertised_and_a_bigger_table_is_a_compression_error(limit, update, ok):
    assert Limits().h2_header_table_size == 4096
    enc = hpack.Encoder()
    enc.header_table_size = update                    # the block starts with a table size update
    block = enc.encode(REQ)
    headers = HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
    with h2_server(app=app, h2_header_table_size=limit) as srv:
        frames = raw_h2(srv.port, headers, wait=1.5)
        assert server_settings(frames)[0x1] == limit   # SETTINGS_HEADER_TABLE_SIZE
        answered = any(f.type == 0x1 and f.stream_id == 1 for f in frames)
        assert answered is ok
        assert (goaway(frames) == ErrorCodes.COMPRESSION_ERROR) is not ok
        still_serves(srv)


def test_h2_window_size_is_advertised_and_data_beyond_it_is_a_flow_control_error():
    assert Limits().h2_window_size == 256 * 1024
    window = 16 * 1024
    head = HeadersFrame(1, hpack.Encoder().encode([(":method", "POST"), *REQ[1:]]), flags=["END_HEADERS"])
    body = [DataFrame(1, b"x" * 16384).serialize() for _ in range(window // 16384 + 1)]   # one frame too many
    with h2_server(app=app, h2_window_size=window) as srv:
        frames = raw_h2(srv.port, head.serialize(), *body)
        assert server_settings(frames)[0x4] == window  # SETTINGS_INITIAL_WINDOW_SIZE
        reset = [f for f in frames if f.type == 0x3 and f.stream_id == 1]
        assert goaway(frames) == ErrorCodes.FLOW_CONTROL_ERROR or \
            (reset and reset[0].error_code == ErrorCodes.FLOW_CONTROL_ERROR), frames
        still_serves(srv)


def test_h2_body_over_max_body_size_is_413_and_the_connection_goes_on():
    with h2_server(app=app, max_body_size=1000) as srv:
        c = H2Client(srv.port)
        try:
            big = c.request("/up", method="POST", body=b"x" * 5000)                    # streamed over
            headers, _ = c.response(big)
            assert headers[":status"] == "413"
            declared = c.request("/up", method="POST", body=b"x" * 10, end=False,
                                 headers=[("content-length", str(10 ** 12))])          # said at once
            headers, _ = c.response(declared)
            assert headers[":status"] == "413"
            fits = c.request("/up", method="POST", body=b"x" * 1000)
            assert c.response(fits) == ({":status": "200", **c.response(fits)[0]}, b"fine 1000")
            assert c.goaway() is None
        finally:
            c.close()


def catching(environ, start_response):
    """An app that catches the failed read and answers anyway (as frameworks do)."""
    try:
        body = environ["wsgi.input"].read()
    except OSError:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"caught"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine %d" % len(body)]


@pytest.mark.parametrize("threads", [0, 1])
@pytest.mark.parametrize("the_app", [app, catching], ids=["raises", "catches"])
def test_h2_request_body_that_stops_arriving_is_408_after_network_timeout(threads, the_app, caplog):
    # before: nothing timed it: the worker reading wsgi.input waited for ever (threads=1: the server answered
    # no one else), and the connection never went idle
    with h2_server(app=the_app, threads=threads, network_timeout=0.5) as srv:
        c = H2Client(srv.port)
        try:
            t0 = time.monotonic()
            stalled = c.request("/up", method="POST", body=b"abc", end=False)
            headers, _ = c.response(stalled, timeout=4)
            assert headers.get(":status") == "408" and time.monotonic() - t0 < 2.5
            assert any(isinstance(e, h2.events.StreamReset) and e.stream_id == stalled for e in c.events) or \
                any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stalled for e in c.events)
            assert c.response(c.request("/next"))[1] == b"fine 0"      # same connection, next stream
            r = httpx.post(srv.url + "/other", content=b"12345", timeout=3)
            assert r.text == "fine 5"
        finally:
            c.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_h2_slow_but_steady_body_and_a_body_paused_by_the_app_are_not_timed_out():
    chunks = []

    def slow_reader(environ, start_response):
        time.sleep(1.0)                                   # longer than network_timeout before reading
        body = environ["wsgi.input"].read()
        chunks.append(len(body))
        start_response("200 OK", [])
        return [b"fine %d" % len(body)]

    with h2_server(app=slow_reader, threads=2, network_timeout=0.5, h2_window_size=65535) as srv:
        c = H2Client(srv.port)
        try:
            sid = c.request("/up", method="POST", body=b"x" * 100, end=False)
            for _ in range(4):                            # a byte every 0.2 s: slow, never stalled
                time.sleep(0.2)
                c.conn.send_data(sid, b"y")
                c.flush()
            c.conn.end_stream(sid)
            c.flush()
            assert c.response(sid, timeout=5)[1] == b"fine 104"
            # a body bigger than the window, sent at once: the app does not read for a second, so the
            # client waits on the window we hold; that is not its stall
            big = c.request("/up", method="POST", end=False)
            left = 600 * 1024
            while left:                                   # as fast as the windows we give allow
                room = min(c.conn.local_flow_control_window(big), c.conn.max_outbound_frame_size, left)
                if room <= 0:
                    c.read(lambda e: isinstance(e, h2.events.WindowUpdated), timeout=3)
                    continue
                c.conn.send_data(big, b"z" * room, end_stream=room == left)
                c.flush()
                left -= room
            assert c.response(big, timeout=5)[1] == b"fine %d" % (600 * 1024)
        finally:
            c.close()


# ---- WebSocket -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("deflate", [True, False])
def test_ws_deflate_accepts_or_declines_permessage_deflate(deflate):
    assert Limits().ws_deflate is True
    echo = ws_app(lambda environ, start_response: (start_response("200 OK", []), [b"x"])[1],
                  config=(skitai.WS_SIMPLE, 60, ("m",)))
    with h2_server(app=echo, ws_deflate=deflate) as srv:
        sock, head, _ = ws_raw(srv.port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
        sock.close()
        assert head.startswith("HTTP/1.1 101 ")
        assert ("permessage-deflate" in head.lower()) is deflate


# ---- the reverse proxy's WebSocket tunnel: a refusal body over MAX_REFUSAL_BODY ------------------------

def test_a_refused_upgrade_with_a_body_over_max_refusal_body_is_502():
    from skitai.handlers import tunnel
    from tests.integration.test_proxy_hardening import misbehaving

    size = tunnel.MAX_REFUSAL_BODY + 1

    def reply(member, sock, path):
        sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % size)
        try:
            sock.sendall(b"n" * size)
        except OSError:
            pass                                           # the proxy stopped reading: what we want

    ws_headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    with misbehaving(reply) as (member, f):
        r = requests.get(f.url + "/search/ws", timeout=5, headers=ws_headers)
        assert r.status_code == 502, (r.status_code, r.content[:200])
        assert requests.get(f.url + "/", timeout=5).status_code == 200           # the front serves on


# ---- cachefs (was GET caching): bodies over MAX_OBJECT are never cached ---------------------------------

def test_cachefs_never_keeps_a_body_over_max_object(tmp_path):
    from skitai import was
    from skitai.services.httpcache import MAX_OBJECT
    from tests.integration.was_support import front, get_json, query, routed
    from tests.support.server import ServerThread

    assert MAX_OBJECT == 10 * 1024 * 1024
    hits = []

    def upstream(exchange):
        hits.append(exchange.request.query)
        size = int(exchange.request.query.split("=")[1])
        exchange.respond(200, [("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=60")],
                         b"x" * size)

    def fetch(env):
        before = len(hits)
        r = was.get(f"{up.url}/b?n={query(env)['n']}").getwait(10)
        return {"network": len(hits) - before, "lookup": r.get_header("X-Skitaid-Cache-Lookup"),
                "size": len(r.content)}

    with ServerThread(upstream) as up, \
            front(routed({"/c": fetch}), cachefs={"memmax": 64, "diskmax": 64, "path": str(tmp_path)}) as url:
        small = [get_json(url + "/c", params={"n": 1000}) for _ in range(2)]
        big = [get_json(url + "/c", params={"n": MAX_OBJECT + 1}, timeout=20) for _ in range(2)]
        at = [get_json(url + "/c", params={"n": MAX_OBJECT}, timeout=20) for _ in range(2)]
    assert [(s["network"], s["lookup"]) for s in small] == [(1, None), (0, "MEM_HIT")]
    assert [(b["network"], b["lookup"], b["size"]) for b in big] == [(1, None, MAX_OBJECT + 1)] * 2
    assert [a["network"] for a in at] == [1, 0] and at[1]["size"] == MAX_OBJECT
