"""WebSocket upgrades through a cluster mount are tunnelled to a member (SK-41), with fail-over while
connecting and the member's refusal passed on."""
from __future__ import annotations

import contextlib
import json

import pytest
import websockets.sync.client as wsc
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.proxy_support import address, backends, front, ws_server
from tests.support.net import free_port


@contextlib.contextmanager
def ws_member():
    member, stop = ws_server()
    try:
        yield member
    finally:
        stop()


@pytest.fixture(scope="module")
def proxied():
    dead = f"127.0.0.1:{free_port()}"
    with ws_member() as member, front([dead + " 50", member]) as f:
        yield f, member, dead


def test_messages_cross_the_tunnel(proxied):
    f, member, dead = proxied
    with wsc.connect(f"ws://127.0.0.1:{f.port}/search/chat?room=1", max_size=None, open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["path"] == "/chat?room=1"
        assert hello["headers"]["x-forwarded-for"] == "127.0.0.1" and hello["headers"]["x-ltxn-id"] == "1001"
        ws.send("text")
        assert ws.recv(timeout=5) == "text"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=5) == b"\x00\x01binary"
        big = bytes(range(256)) * 16384                # 4 MiB each way: back-pressure on both sides
        ws.send(big)
        assert ws.recv(timeout=10) == big
    # the dead member weighs 50 to 1, so it is almost always tried first; keep connecting until it was
    status = {m["address"]: m for m in f.cluster().status()["members"]}
    for _ in range(30):
        if status[dead]["failures"]:
            break
        with wsc.connect(f"ws://127.0.0.1:{f.port}/search/chat", open_timeout=5) as ws:
            ws.recv(timeout=5)
        status = {m["address"]: m for m in f.cluster().status()["members"]}
    assert status[dead]["dead"] and status[dead]["failures"] == 1      # failed over while connecting
    assert status[member]["inflight"] == 0 or _settles(f, member)


def _settles(f, member) -> bool:
    import time
    for _ in range(100):
        if {m["address"]: m for m in f.cluster().status()["members"]}[member]["inflight"] == 0:
            return True
        time.sleep(0.02)
    return False


def test_many_tunnels_at_once(proxied):
    f, _, _ = proxied
    sockets = [wsc.connect(f"ws://127.0.0.1:{f.port}/search/n{i}", open_timeout=5) for i in range(8)]
    try:
        for i, ws in enumerate(sockets):
            assert json.loads(ws.recv(timeout=5))["path"] == f"/n{i}"
            ws.send(f"m{i}")
        assert [ws.recv(timeout=5) for ws in sockets] == [f"m{i}" for i in range(8)]
    finally:
        for ws in sockets:
            ws.close()


def test_member_closing_closes_the_client():
    member, stop = ws_server()
    try:
        with front([member]) as f:
            ws = wsc.connect(f"ws://127.0.0.1:{f.port}/search/x", open_timeout=5)
            ws.recv(timeout=5)
            stop()
            with pytest.raises(ConnectionClosed):  # the member went away: the client's side ends too
                ws.recv(timeout=5)
            assert _settles(f, member)
    finally:
        stop()


def test_server_shutdown_closes_open_tunnels():
    with ws_member() as member:
        with front([member]) as f:
            ws = wsc.connect(f"ws://127.0.0.1:{f.port}/search/x", open_timeout=5)
            ws.recv(timeout=5)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_a_member_refusing_the_upgrade_is_passed_on():
    with backends(1) as (plain,), front([address(plain)]) as f:
        with pytest.raises(InvalidStatus) as info:
            wsc.connect(f"ws://127.0.0.1:{f.port}/search/x?status=403", open_timeout=5)
    assert info.value.response.status_code == 403
    assert json.loads(info.value.response.body)["path"] == "/x"


def test_a_websocket_over_http2_is_tunnelled_to_an_http11_member(proxied):
    """RFC 8441 on the client's side (a stream of an h2c connection), RFC 6455 to the member."""
    from wsproto.frame_protocol import Opcode

    from tests.skitai_core.h2ws_support import H2Client, WSStream
    f, member, dead = proxied
    for _ in range(5):                        # the dead member may be tried first: that costs a 502
        c = H2Client(f.port)
        ws = WSStream(c, "/search/chat?room=2")
        head = ws.answer()
        if head.get(":status") == "200":
            break
    assert head[":status"] == "200" and "sec-websocket-accept" not in head
    opcode, hello = ws.recv()
    assert opcode is Opcode.TEXT and json.loads(hello)["path"] == "/chat?room=2"
    ws.send("over h2")
    assert ws.recv() == (Opcode.TEXT, "over h2")
    big = bytes(range(256)) * 4096                 # 1 MiB each way, under both flow controls
    ws.send(big)
    assert ws.recv(timeout=10) == (Opcode.BINARY, big)
    headers, body = c.response(c.request("/"))     # the same connection still serves plain requests
    assert headers[":status"] == "200"
