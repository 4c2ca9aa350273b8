"""Hostile and broken peers against the WebSocket server and the static handler, over real sockets.

Each test is a bug that was found by probing: a client that never reads, a slow member of a room, tiny
fragments, a deflate bomb, a close nobody reads, a stop with a paused queue, a Range with thousands of digits,
a file that shrinks while sent.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import zlib

import pytest
import requests
import websockets.sync.client as wsc
from wsproto.events import BytesMessage, CloseConnection

import skitai
from skitai.handlers.static import StaticHandler
from skitai.websocket.designs import DEFAULT_BROKER
from skitai.websocket.protocol import CONNECTIONS
from tests.skitai_core.h2ws_support import ws_app, ws_events, ws_frame, ws_raw
from tests.support.server import ServerThread
from tests.support.net import eventually


def open_sockets(srv) -> list:
    """The server's open WebSockets, with their transport's buffered bytes (read on the loop)."""
    def look():
        return [(ws, ws.transport.get_write_buffer_size() if ws.transport else 0)
                for ws in list(CONNECTIONS) if ws.loop is srv.loop]
    return srv.call(look)


def frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """A masked client frame of any length (``ws_frame`` stops at 64 KiB), fast for big payloads."""
    n = len(payload)
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    mask = (key * (n // 4 + 1))[:n]
    return head + key + (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")


def padded_echo(size: int):
    def on_message(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        message = environ["websocket.message"]
        return [(message.encode() if isinstance(message, str) else message) + b"." * size]
    return on_message


# -- WebSocket -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [0, 4])
def test_client_that_never_reads_is_paused_then_cut(threads):
    """It keeps sending, never reads the answers: reading pauses at the write high-water mark (the
    answers stay bounded) and it is cut after network_timeout. Before: threads=0 buffered every answer
    (GBs), threads=4 waited network_timeout per answer and never cut."""
    with ServerThread(app=ws_app(padded_echo(16384)), threads=threads, network_timeout=1.0) as srv:
        sock, _, _ = ws_raw(srv.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(0.3)
        batch = b"".join(ws_frame(0x2, b"m") for _ in range(100))
        peak, started = 0, time.monotonic()
        try:
            while time.monotonic() - started < 3:
                sock.sendall(batch)
                peak = max([peak] + [size for _, size in open_sockets(srv)])
        except OSError:
            pass              # the server stopped reading (timeout) or already cut us
        assert peak < 2 * 1024 * 1024, f"{peak} bytes buffered for a client that does not read"
        assert eventually(lambda: not open_sockets(srv), 6), "the non-reading client was never cut"
        sock.close()


@pytest.mark.parametrize("threads", [4, 0])
def test_slow_member_does_not_stall_its_room(threads):
    """One member of a room never reads: the others keep getting every message at once, and the slow
    one is cut once it is ws_max_message_size + write_buffer_high behind. Before: with a pool every
    publish waited network_timeout on it; on the loop its backlog grew without bound."""
    room = f"slow{threads}"
    app = ws_app(padded_echo(60000), (skitai.WS_GROUPCHAT, 60, ("m", "room")))
    with ServerThread(app=app, threads=threads, network_timeout=8.0, ws_max_message_size=65536) as srv:
        slow, _, _ = ws_raw(srv.port, f"/ws?room={room}")
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with wsc.connect(f"ws://127.0.0.1:{srv.port}/ws?room={room}", max_size=None) as fast:
            assert eventually(lambda: len(DEFAULT_BROKER.rooms.get(f"/ws/{room}").clients) == 2, 5)
            for i in range(150):                    # 9 MB for each member
                fast.send(f"m{i}")
                assert fast.recv(timeout=4).startswith(f"m{i}".encode())
            assert eventually(lambda: list(DEFAULT_BROKER.rooms[f"/ws/{room}"].clients) == [
                max(DEFAULT_BROKER.rooms[f"/ws/{room}"].clients)], 4), "the slow member was never cut"
            fast.send("after")
            assert fast.recv(timeout=4).startswith(b"after")
        slow.close()


def test_tiny_fragments_are_coalesced():
    """A message sent one byte per fragment: the pieces kept while it is reassembled are joined in runs,
    not one object per byte (~40x the payload in memory). Before: one list entry per fragment."""
    count = 20000
    with ServerThread(app=ws_app(padded_echo(0)), threads=0) as srv:
        sock, _, rest = ws_raw(srv.port)
        first = ws_frame(0x2, b"a", fin=False)
        more = ws_frame(0x0, b"b", fin=False)
        sock.sendall(first + more * (count - 1))

        def parts():
            return [(ws._size, len(ws._parts)) for ws, _ in open_sockets(srv)]
        assert eventually(lambda: parts()[0][0] == count, 10)
        assert parts()[0][1] <= count // 64 + 64
        sock.sendall(ws_frame(0x0, b"c", fin=True))
        events = ws_events(sock, rest, timeout=10, until=lambda e: isinstance(e, BytesMessage))
        got = b"".join(e.data for e in events if isinstance(e, BytesMessage))
        assert got == b"a" + b"b" * (count - 1) + b"c"
        sock.close()


def test_deflate_bomb_stops_inflating_at_1009():
    """A 400 MB message compressed to ~400 KB: 1009 once the limit is passed, and nothing more of it is
    inflated (RFC 6455 7.1.7: no more processing after failing). Before: the server inflated all of it
    after sending 1009 (about a CPU second per 300 MB on the loop)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = deflate.compress(b"\0" * (1 << 20)) + deflate.flush(zlib.Z_FULL_FLUSH)   # restartable block
    bomb = (chunk * 400)[:-4]                 # permessage-deflate drops the final 00 00 ff ff
    with ServerThread(app=ws_app(padded_echo(0)), threads=0) as srv:
        sock, head, rest = ws_raw(srv.port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
        assert "permessage-deflate" in head
        cpu = srv.call(time.thread_time)
        try:
            sock.sendall(frame(0x2, bomb, rsv1=True))
        except OSError:
            pass
        events = ws_events(sock, rest, timeout=10, until=lambda e: isinstance(e, CloseConnection))
        assert [e.code for e in events if isinstance(e, CloseConnection)] == [1009]
        sock.close()
        assert eventually(lambda: not open_sockets(srv), 5)
        used = srv.call(time.thread_time) - cpu
        assert used < 0.4, f"the loop spent {used:.2f} CPU seconds on a message it had refused"


def test_close_that_cannot_flush_is_cut():
    """The server closes while its buffer holds bytes a non-reading client never takes (below the
    high-water mark, so no back-pressure fires): the socket is dropped network_timeout later. Before:
    transport.close() waited for the flush forever, holding the descriptor and the buffer."""
    def on_event(environ, event):
        if event == skitai.WS_EVT_OPEN:
            environ["websocket"].send(b"x" * (16 << 20))
            environ["websocket"].close()

    app = ws_app(padded_echo(0), on_event=on_event)
    with ServerThread(app=app, threads=2, network_timeout=0.5, write_buffer_high=64 << 20) as srv:
        sock, _, _ = ws_raw(srv.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert eventually(lambda: any(size for _, size in open_sockets(srv)), 5)   # bytes wait to go
        assert eventually(lambda: not open_sockets(srv), 5), "the unflushable close never ended"
        sock.close()


def test_stop_with_a_paused_queue_leaves_no_traceback(caplog):
    """The server stops while a handler is stuck and the connection's queue has paused reading; when the
    handler returns after the loop closed, the worker does not fail trying to resume reading on it."""
    gate, entered = threading.Event(), threading.Event()

    def stuck(environ, start_response):
        entered.set()
        gate.wait(10)
        start_response("200 OK", [])
        return []

    srv = ServerThread(app=ws_app(stuck), threads=2, ws_max_queue=4).start()
    try:
        sock, _, _ = ws_raw(srv.port)
        sock.sendall(b"".join(ws_frame(0x2, b"m") for _ in range(50)))
        assert entered.wait(5)
        assert eventually(lambda: all(ws._paused_by for ws, _ in open_sockets(srv)), 5)
    finally:
        srv.stop()
    with caplog.at_level(logging.ERROR):
        gate.set()
        time.sleep(0.5)                       # the worker drains the queue after the loop closed
    sock.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- static files ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    (root / "small.txt").write_bytes(b"0123456789")
    (root / "huge.bin").write_bytes(os.urandom(32 << 20))
    return root


@pytest.mark.parametrize("spec, status, body", [
    ("bytes=" + "1" * 5000 + "-", 416, None),             # a start past any end
    ("bytes=0-" + "9" * 5000, 200, b"0123456789"),        # an end past the end: the whole file
    ("bytes=-" + "9" * 5000, 200, b"0123456789"),         # a suffix longer than the file: the whole file
    ("bytes=2-" + "0" * 4990 + "3", 206, b"23"),          # leading zeros are still a small number
])
def test_range_with_thousands_of_digits(site, spec, status, body):
    """Before: ``int()`` refused numbers over 4300 digits and the answer was a 500 with a traceback."""
    handler = StaticHandler(str(site), "/", None, None)
    with ServerThread(dispatch=handler) as srv:
        r = requests.get(srv.url + "/small.txt", headers={"Range": spec})
        assert r.status_code == status
        if body is not None:
            assert r.content == body
    handler.close()


def test_file_shrinking_mid_send_is_a_warning_not_a_traceback(site, caplog):
    """The connection is cut before Content-Length (as before); the log holds one warning instead of a
    "handler failed" ERROR with a traceback."""
    handler = StaticHandler(str(site), "/", None, None)
    data = (site / "huge.bin").read_bytes()
    with caplog.at_level(logging.WARNING), ServerThread(dispatch=handler, network_timeout=5.0) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = len(s.recv(65536))
            time.sleep(0.2)
            os.truncate(site / "huge.bin", 1 << 20)
            while chunk := s.recv(1 << 20):
                got += len(chunk)
            assert got < len(data)
        (site / "huge.bin").write_bytes(data)
        assert requests.get(srv.url + "/small.txt").content == b"0123456789"
    handler.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("shrank" in r.getMessage() for r in caplog.records)
