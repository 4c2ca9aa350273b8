"""aquests.websocket: one-shot client against a real `websockets` server, and its failure paths."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import socket
import ssl
import threading
import time

import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from aquests import codes, websocket
from aquests.websocket import OPCODE_BINARY, OPCODE_TEXT, WSResponse, request
from tests.support.net import wait_port

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@contextlib.contextmanager
def ws_server(handler, ssl_context=None, **options):
    server = serve(handler, "127.0.0.1", 0, ssl=ssl_context, compression=None, **options)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        thread.join(5)


def echo(ws):
    for message in ws:
        ws.send(message)


def _accept_value(head: bytes) -> bytes:
    key = next((ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                if ln.lower().startswith(b"sec-websocket-key")), b"")
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


@contextlib.contextmanager
def _handshake_server(after_head):
    """A TCP server that reads each connection's request head and hands it to ``after_head(conn, head,
    stop)`` (an OSError there ends that connection). Yields (port, stop)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def run():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    if head:                 # else a port probe
                        after_head(conn, head, stop)
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], stop
    finally:
        stop.set()
        thread.join(5)
        sock.close()


@contextlib.contextmanager
def raw_server(reply: bytes, hold: bool = False):
    """A TCP server that reads a request head and answers ``reply`` (may be empty: just close).

    ``{accept}`` in the reply becomes the right Sec-WebSocket-Accept; ``hold`` keeps the
    connection open (reading nothing more) until the server stops.
    """
    def answer(conn, head, stop):
        conn.sendall(reply.replace(b"{accept}", _accept_value(head)))
        if hold:
            stop.wait(5)

    with _handshake_server(answer) as (port, _):
        yield port


@contextlib.contextmanager
def ping_flood_server(ping_payload: bytes):
    """Accepts the handshake, then writes PING frames as fast as the socket takes them and never
    reads a byte. Yields (port, dropped): ``dropped`` is set when the client's end went away."""
    dropped = threading.Event()
    frame = bytes([0x89, len(ping_payload)]) + ping_payload
    burst = frame * (65536 // len(frame))

    def flood(conn, head, stop):
        try:
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + _accept_value(head) + b"\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(burst)
                except TimeoutError:
                    continue  # the client's buffers are full: go on trying
        except OSError:
            dropped.set()

    with _handshake_server(flood) as (port, _):
        yield port, dropped


async def test_text_echo():
    with ws_server(echo) as port:
        resp = await request(f"ws://127.0.0.1:{port}/chat?x=1", "hello")
    assert isinstance(resp, WSResponse)
    assert resp.status_code == 200 and resp.ok
    assert resp.content == (OPCODE_TEXT, "hello")
    assert resp.data == "hello" and resp.text == "hello" and resp.opcode == 1
    assert resp.url == f"ws://127.0.0.1:{port}/chat?x=1"
    assert "websockets" in resp.get_header("server")


async def test_binary_echo_and_json():
    with ws_server(echo) as port:
        resp = await request(f"ws://127.0.0.1:{port}/", b"\x00\x01binary")
        js = await request(f"ws://127.0.0.1:{port}/", '{"a": 1}')
    assert resp.content == (OPCODE_BINARY, b"\x00\x01binary")
    assert js.json() == {"a": 1}


async def test_first_reply_is_returned_even_when_server_speaks_first():
    def welcome(ws):
        ws.send("Welcome Client 0")
        echo(ws)

    with ws_server(welcome) as port:
        resp = await request(f"ws://127.0.0.1:{port}/", "hi")
    assert resp.content == (1, "Welcome Client 0")


async def test_ping_is_answered_and_fragments_reassembled():
    seen = {}

    def handler(ws):
        message = ws.recv()
        seen["pong"] = ws.ping().wait(3)
        ws.send(iter(["frag-", "mented-", message]))

    with ws_server(handler) as port:
        resp = await request(f"ws://127.0.0.1:{port}/", "reply")
    assert seen["pong"] is True
    assert resp.content == (1, "frag-mented-reply")


async def test_close_handshake_is_clean():
    closed = {}
    done = threading.Event()

    def handler(ws):
        ws.send(ws.recv())
        try:
            ws.recv()
        except ConnectionClosed as e:
            closed["code"] = e.rcvd.code if e.rcvd else None
        done.set()

    with ws_server(handler) as port:
        resp = await request(f"ws://127.0.0.1:{port}/", "bye")
        assert done.wait(3)
    assert resp.status_code == 200
    assert closed["code"] == 1000


async def test_headers_and_subprotocol_are_sent():
    got = {}

    def handler(ws):
        got["auth"] = ws.request.headers.get("Authorization")
        got["proto"] = ws.subprotocol
        echo(ws)

    with ws_server(handler, subprotocols=["chat.v1"]) as port:
        resp = await request(f"ws://127.0.0.1:{port}/", "x", headers={"Authorization": "Bearer t"},
                             subprotocols=["chat.v1"])
    assert resp.status_code == 200
    assert got == {"auth": "Bearer t", "proto": "chat.v1"}


async def test_wss_with_trusted_and_untrusted_certificate(tmp_path):
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with ws_server(echo, server_ctx) as port:
        resp = await request(f"wss://127.0.0.1:{port}/", "secret", verify=client_ctx)
        bad = await request(f"wss://127.0.0.1:{port}/", "secret")
        forced = await request(f"ws://127.0.0.1:{port}/", "secret", verify=client_ctx, force_tls=True)
    assert resp.content == (1, "secret")
    assert forced.content == (1, "secret")
    assert bad.status_code == codes.TLS_FAILED and "certificate" in bad.reason


async def test_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=3)
    assert resp.status_code == codes.CONNECTION_REFUSED
    assert not resp.ok and resp.data is None


async def test_handshake_rejected_by_plain_http_server():
    reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
    with raw_server(reply) as port:
        wait_port(port)
        resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=3)
    assert resp.status_code == codes.PROTOCOL_ERROR
    assert "rejected" in resp.reason and "404" in resp.reason


async def test_handshake_with_wrong_accept_key():
    reply = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: " + base64.b64encode(b"x" * 20) + b"\r\n\r\n")
    with raw_server(reply) as port:
        wait_port(port)
        resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=3)
    assert resp.status_code == codes.PROTOCOL_ERROR and "handshake" in resp.reason


async def test_server_closing_during_handshake():
    with raw_server(b"") as port:
        wait_port(port)
        resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=3)
    assert resp.status_code == codes.CONNECTION_CLOSED


async def test_server_closes_without_replying():
    def rude(ws):
        ws.recv()
        ws.close(1011, "gone")

    with ws_server(rude) as port:
        resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=3)
    assert resp.status_code == codes.CONNECTION_CLOSED
    assert "1011" in resp.reason and "gone" in resp.reason


async def test_timeout_when_no_reply():
    release = threading.Event()

    def silent(ws):
        ws.recv()
        release.wait(5)

    with ws_server(silent) as port:
        try:
            resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=0.5)
        finally:
            release.set()
    assert resp.status_code == codes.TIMEOUT


async def test_reply_larger_than_max_size():
    def big(ws):
        ws.recv()
        ws.send("y" * 5000)

    with ws_server(big) as port:
        resp = await request(f"ws://127.0.0.1:{port}/", "x", max_size=1000)
    assert resp.status_code == codes.PROTOCOL_ERROR and "max_size" in resp.reason


async def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unsupported WebSocket URL"):
        await request("ftp://127.0.0.1/", "x")
    with pytest.raises(TypeError):
        await request("ws://127.0.0.1/", 123)
    with pytest.raises(ValueError):
        await request("ws://127.0.0.1/", "x", timeout=0)
    with pytest.raises(ValueError):
        await request("ws:///nohost", "x")


async def test_server_ignoring_our_close_costs_at_most_close_timeout(monkeypatch):
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.3)
    reply = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: {accept}\r\n\r\n" + b"\x81\x02hi")  # one unmasked text frame
    with raw_server(reply, hold=True) as port:
        wait_port(port)
        started = time.monotonic()
        resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=5)
        took = time.monotonic() - started
    assert resp.content == (1, "hi")
    assert 0.25 < took < 1.5


@pytest.mark.parametrize("ping_payload", [b"", b"p" * 125], ids=["empty-pings", "125-byte-pings"])
async def test_ping_flood_from_a_server_that_never_reads_ends_within_the_timeout(ping_payload):
    """Pings answered one by one filled the unread socket, and the buffered bytes of tiny frames
    kept the loop busy past the deadline: the call took 3.5-5.5 s for a 1.5 s timeout."""
    ticks: list[float] = []

    async def ticker():  # another task on the same loop: it must keep running meanwhile
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    with ping_flood_server(ping_payload) as (port, dropped):
        wait_port(port)
        other = asyncio.ensure_future(ticker())
        started = time.monotonic()
        resp = await request(f"ws://127.0.0.1:{port}/", "x", timeout=1.5)
        took = time.monotonic() - started
        other.cancel()
        assert resp.status_code == codes.TIMEOUT, resp.reason
        assert took < 2.0
        assert dropped.wait(1)  # the connection is gone: the server's writes fail
    assert max(b - a for a, b in zip(ticks, ticks[1:])) < 0.5
