"""Two safeguards of the server, over real sockets: ``Limits.max_connections`` (new clients wait in the listen
backlog while the cap is full; every protocol gives its place back when it closes) and response header
names (a name that is not a token is refused with 500; hop-by-hop fields an app must not set are dropped)."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time

import pytest
import trustme
import websockets.sync.client as wsc

from skitai.config import Config
from skitai.tls import make_ssl_context
from tests.skitai_core.h2ws_support import H2Client, h2_server, read_head, ws_app
from tests.support.server import ServerThread, parse_responses, raw_request

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["websocket.message"].encode()]


def read_answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One whole answer on a keep-alive connection (``socket.timeout`` when none comes)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a whole answer")
        data += chunk
        answers = parse_responses(data)
        if answers and answers[0].complete:
            return data


def keep_alive(port: int) -> socket.socket:
    """A connection that was answered once and stays open (so it is surely accepted and counted)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(GET)
    assert b" 200 " in read_answer(s)
    return s


def open_count(srv) -> int:
    return srv.call(lambda: srv.server.open_connections)


def wait_count(srv, want: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (n := open_count(srv)) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return n


# ---- max_connections ---------------------------------------------------------------------------
@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_waits_in_backlog_at_the_cap_and_is_served_when_one_closes(caplog, uvloop):
    caplog.set_level(logging.WARNING, logger="skitai.server")
    with h2_server(app=hello, threads=2, max_connections=2, keep_alive=60, uvloop=uvloop) as srv:
        a, b = keep_alive(srv.port), keep_alive(srv.port)
        assert open_count(srv) == 2
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)    # the kernel completes it
        c.sendall(GET)
        with pytest.raises(TimeoutError):
            read_answer(c, timeout=0.5)                   # held in the backlog: never accepted
        a.close()
        assert b" 200 " in read_answer(c)                 # accepted once a place was free, request intact
        d = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        d.sendall(GET)
        with pytest.raises(TimeoutError):
            read_answer(d, timeout=0.3)                   # full again: b and c
        c.close()
        assert b" 200 " in read_answer(d)
        for s in (b, d):
            s.close()
        assert wait_count(srv, 0) == 0
    warned = [r for r in caplog.records if "max_connections" in r.getMessage()]
    assert len(warned) == 1                               # once, not per held connection


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_websocket_and_http2_connections_give_their_place_back(uvloop):
    cap = 3
    app = ws_app(echo, plain=hello)
    with h2_server(app=app, threads=2, max_connections=cap, keep_alive=60, uvloop=uvloop) as srv:
        url = f"ws://127.0.0.1:{srv.port}/ws"
        for i in range(50):                               # WebSocket over HTTP/1.1 (hand-over after a 101)
            with wsc.connect(url, open_timeout=3, close_timeout=3) as ws:
                ws.send(f"m{i}")
                assert ws.recv(timeout=3) == f"m{i}"
        for _ in range(50):                               # HTTP/2 with prior knowledge
            cl = H2Client(srv.port)
            _, body = cl.response(cl.request("/"), timeout=3)
            assert body == b"hello"
            cl.sock.close()
        for _ in range(10):                               # h2c upgrade
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
                assert s.recv(65536).startswith(b"HTTP/1.1 101 ")
        assert wait_count(srv, 0) == 0                    # nothing leaked
        held = [keep_alive(srv.port) for _ in range(cap)] # the cap still admits `cap` new connections ...
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        extra.sendall(GET)
        with pytest.raises(TimeoutError):
            read_answer(extra, timeout=0.3)               # ... and no more
        held[0].close()
        assert b" 200 " in read_answer(extra)
        for s in (*held[1:], extra):
            s.close()


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_tls_connections_and_failed_handshakes_are_counted_right(tmp_path, uvloop):
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    server_ctx = make_ssl_context(Config(certfile=str(cert), keyfile=str(key)))
    with h2_server(app=hello, threads=2, ssl=server_ctx, max_connections=2, keep_alive=60, uvloop=uvloop) as srv:
        for alpn in (["h2"], ["http/1.1"]) * 10:           # ALPN h2 is handed over to HTTP/2 at once
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            ctx.set_alpn_protocols(alpn)
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                if alpn == ["h2"]:
                    cl = H2Client(srv.port, sock=s)
                    assert cl.response(cl.request("/"), timeout=3)[1] == b"hello"
                else:
                    s.sendall(GET)
                    assert b" 200 " in read_answer(s)
        for _ in range(5):                                # not TLS at all: the handshake fails
            assert raw_request(srv.port, GET, timeout=3) == b""
        assert wait_count(srv, 0) == 0


class SlottedEcho(asyncio.Protocol):
    """A hand-over target without ``__dict__`` (the count cannot be hooked into it directly)."""

    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def test_a_protocol_without_dict_is_counted_too():
    def to_echo(exchange):
        exchange.upgrade(SlottedEcho, headers=[("Upgrade", "echo"), ("Connection", "Upgrade")])

    with ServerThread(dispatch=lambda ex: ex.error(404), upgrades={"echo": to_echo}, max_connections=1) as srv:
        for i in range(5):                                # cap 1: each waits for the one before to close
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                head = read_head(s)
                assert head.startswith(b"HTTP/1.1 101 ") and b"\r\nUpgrade: echo\r\n" in head
                s.sendall(b"ping%d" % i)
                assert s.recv(100) == b"ping%d" % i
        assert wait_count(srv, 0) == 0


# ---- response header names -----------------------------------------------------------------------
HEADERS = {
    "/space": [("X Foo:Bar", "v")],
    "/colon": [("X-Foo:", "v")],
    "/empty": [("", "v")],
    "/tab": [("X-Foo\t", "v")],
    "/del": [("X-Foo\x7f", "v")],
    "/latin": [("X-Fo\u00f6", "v")],
    "/slash": [("X/Foo", "v")],
    "/tokens": [("X-A!#$%&'*+.^_`|~09z", "ok")],
    "/hop": [("Keep-Alive", "timeout=5"), ("Upgrade", "foo"), ("Proxy-Connection", "keep-alive"),
             ("TE", "trailers"), ("Trailer", "X-Check"), ("X-Kept", "yes")],
}
BAD = ["/space", "/colon", "/empty", "/tab", "/del", "/latin", "/slash"]
HOP = {"keep-alive", "upgrade", "proxy-connection", "te", "trailer"}


def headers_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")] + HEADERS[environ["PATH_INFO"]])
    return [b"body"]


@pytest.fixture(scope="module")
def header_server():
    with h2_server(app=headers_app, threads=2) as srv:
        yield srv


def h1_get(port: int, path: str):
    data = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    (answer,) = parse_responses(data)
    return answer


@pytest.mark.parametrize("path", BAD)
def test_h1_refuses_header_names_that_are_not_tokens(header_server, path):
    answer = h1_get(header_server.port, path)
    assert answer.status == 500
    assert {n for n, _ in answer.header_list} <= {"server", "date", "content-type", "content-length", "connection"}


def test_h1_sends_token_names_and_drops_hop_by_hop_fields(header_server):
    for _ in range(2):                                    # the second answer comes from the caches
        ok = h1_get(header_server.port, "/tokens")
        assert ok.status == 200 and ok.headers["x-a!#$%&'*+.^_`|~09z"] == "ok"
        hop = h1_get(header_server.port, "/hop")
        assert hop.status == 200 and hop.body == b"body" and hop.headers["x-kept"] == "yes"
        assert not HOP & {n for n, _ in hop.header_list}
    s = socket.create_connection(("127.0.0.1", header_server.port), timeout=5)
    with s:                                               # the connection stays keep-alive after it
        s.sendall(b"GET /hop HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_answer(s)
        assert b"Connection: close" not in first and b"\r\nUpgrade:" not in first
        s.sendall(b"GET /tokens HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 200 " in read_answer(s)


def test_h2_applies_the_same_rules(header_server):
    cl = H2Client(header_server.port)
    try:
        for path in BAD:
            headers, _ = cl.response(cl.request(path), timeout=3)
            assert headers[":status"] == "500", path
        headers, _ = cl.response(cl.request("/tokens"), timeout=3)
        assert headers[":status"] == "200" and headers["x-a!#$%&'*+.^_`|~09z"] == "ok"
        headers, body = cl.response(cl.request("/hop"), timeout=3)
        assert headers[":status"] == "200" and body == b"body" and headers["x-kept"] == "yes"
        assert not HOP & set(headers)
    finally:
        cl.sock.close()
