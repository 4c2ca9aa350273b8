"""WebSocket limits and close paths: 1009, 1007, 1002, fragments, PING/PONG, idle timeout, close codes."""
from __future__ import annotations

import time

import pytest
import websockets.sync.client as wsc
from websockets.exceptions import ConnectionClosed
from wsproto.events import CloseConnection, Ping, TextMessage

import skitai
from tests.skitai_core.h2ws_support import ws_events, ws_frame, ws_raw
from tests.support.server import ServerThread


def make_app(timeout=60):
    def app(environ, start_response):
        event = environ.get("websocket.event")
        if event == skitai.WS_EVT_INIT:
            environ["websocket.config"] = (skitai.WS_SIMPLE, timeout, ("m",))
        message = environ.get("websocket.message")
        binary = isinstance(message, bytes)
        start_response("200 OK", [("Content-Type", "application/octet-stream" if binary else "text/plain")])
        if event is not None:
            return []
        return [message if binary else ("echo:" + message).encode()]
    return app


@pytest.fixture(scope="module")
def srv():
    with ServerThread(app=make_app(), ws_max_message_size=1000) as s:
        yield s


def close_code(ws) -> int | None:
    """The code of the server's close frame (None: the TCP connection ended without one)."""
    got = []
    with pytest.raises(ConnectionClosed):
        for _ in range(5):
            got.append(ws.recv(timeout=10))
    assert not got, f"messages before the close: {got!r}"
    return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None


def test_too_big_is_1009(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/", max_size=None) as ws:
        ws.send("y" * 1001)
        assert close_code(ws) == 1009


def test_fragments_are_reassembled_and_counted(srv):
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
        ws.send(["ab", "cd", "ef"])
        assert ws.recv(timeout=10) == "echo:abcdef"
        ws.send([b"\x01" * 400, b"\x02" * 400])
        assert ws.recv(timeout=10) == b"\x01" * 400 + b"\x02" * 400
        try:
            ws.send(["z" * 600, "z" * 600])                   # each fragment fits, the message does not
        except ConnectionClosed:
            pass        # the 1009 may arrive before the client sends its closing (empty, FIN) fragment
        assert close_code(ws) == 1009


def test_invalid_utf8_is_1007(srv):
    sock, head, rest = ws_raw(srv.port)
    try:
        sock.sendall(ws_frame(0x1, b"\xff\xfeok"))
        events = ws_events(sock, rest, until=lambda e: isinstance(e, CloseConnection))
        assert [e.code for e in events if isinstance(e, CloseConnection)] == [1007]
    finally:
        sock.close()


def test_unmasked_client_frame_is_1002(srv):
    sock, head, rest = ws_raw(srv.port)
    try:
        sock.sendall(ws_frame(0x1, b"hello", mask=False))
        events = ws_events(sock, rest, until=lambda e: isinstance(e, CloseConnection))
        assert [e.code for e in events if isinstance(e, CloseConnection)] == [1002]
    finally:
        sock.close()


def test_ping_is_answered_and_close_code_echoed(srv):
    sock, head, rest = ws_raw(srv.port)
    try:
        sock.sendall(ws_frame(0x9, b"are you there"))
        sock.sendall(ws_frame(0x1, b"hi"))
        events = ws_events(sock, rest, until=lambda e: isinstance(e, TextMessage))
        assert any(type(e).__name__ == "Pong" and e.payload == b"are you there" for e in events)
        sock.sendall(ws_frame(0x8, (4000).to_bytes(2, "big") + b"bye"))
        events = ws_events(sock, b"", until=lambda e: isinstance(e, CloseConnection))
        assert [e.code for e in events if isinstance(e, CloseConnection)] == [4000]
        assert sock.recv(10) == b""                            # and the server closed the TCP side
    finally:
        sock.close()


def test_client_close_handshake_with_websockets(srv):
    ws = wsc.connect(f"ws://127.0.0.1:{srv.port}/")
    ws.send("a")
    ws.recv(timeout=10)
    ws.close(code=4001, reason="done")
    assert ws.protocol.close_rcvd.code == 4001


def test_server_pings_and_drops_a_silent_peer():
    with ServerThread(app=make_app(), ws_ping_interval=0.2, ws_ping_timeout=0.3) as s:
        sock, head, rest = ws_raw(s.port)
        try:
            t = time.monotonic()
            events = ws_events(sock, rest, timeout=3)           # never answers: read until the drop
            assert any(isinstance(e, Ping) for e in events)
            assert 0.3 < time.monotonic() - t < 2.5
        finally:
            sock.close()
        with wsc.connect(f"ws://127.0.0.1:{s.port}/") as ws:     # a pong-answering client stays
            time.sleep(0.8)
            ws.send("still")
            assert ws.recv(timeout=10) == "echo:still"


def test_idle_timeout_closes_with_1001():
    with ServerThread(app=make_app(timeout=0.4)) as s, wsc.connect(f"ws://127.0.0.1:{s.port}/") as ws:
        t = time.monotonic()
        assert close_code(ws) == 1001
        assert 0.3 < time.monotonic() - t < 2.5


def test_shutdown_closes_with_1001(srv):
    from skitai.websocket.protocol import close_all
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
        ws.send("a")
        ws.recv(timeout=10)
        srv.call(close_all)
        assert close_code(ws) == 1001


def test_deflate_bomb_is_1009(srv):
    """A small compressed message that inflates past the limit is stopped like a big one."""
    with wsc.connect(f"ws://127.0.0.1:{srv.port}/", max_size=None) as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.send("a" * 50_000)                      # compresses to a few hundred bytes
        assert close_code(ws) == 1009
