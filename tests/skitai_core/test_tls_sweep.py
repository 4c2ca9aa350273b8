"""TLS sweep: misbehaving clients against ``enable_ssl`` (ALPN h2/http1.1) and the ``enable_forward`` listener.

Every case checks that the bad client gets a clear end (an alert, a close, a 4xx, a GOAWAY) within its limit
and that the server goes on serving another client.
"""
from __future__ import annotations

import logging
import shutil
import socket
import ssl
import struct
import subprocess
import time

import h2.config
import h2.connection
import httpx
import pytest
import trustme

from skitai.config import Config, Limits
from skitai.forward import ForwardToHTTPS
from tests.skitai_core.h2ws_support import H2Client, h2_server
from tests.support.net import eventually
from tests.support.tls import server_context
from tests.support.server import ServerThread, raw_request

BIG = 8 << 20


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/big":
        return [b"x" * BIG]
    return [f"{environ['wsgi.url_scheme']} {environ['SERVER_PROTOCOL']}".encode()]


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca, tmp_path_factory):
    return server_context(ca, tmp_path_factory.mktemp("tls"))


def client_ctx(ca, alpn=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_socket(port: int, ctx: ssl.SSLContext, sni: str = "127.0.0.1", timeout: float = 5.0) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=sni)


def served(ca, port: int, http2: bool = False) -> str:
    """Another, well-behaved client is answered."""
    with httpx.Client(http2=http2, verify=client_ctx(ca, ["h2", "http/1.1"] if http2 else ["http/1.1"]),
                      timeout=3) as cl:
        return cl.get(f"https://127.0.0.1:{port}/").text


def read_until_closed(sock, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and how long that took."""
    sock.settimeout(timeout)
    t0, data = time.monotonic(), b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ssl.SSLError, ConnectionResetError, TimeoutError):
        pass
    return data, time.monotonic() - t0


def no_errors(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# ---- plain HTTP, stalled handshakes --------------------------------------------------------------------

@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_plain_http_to_the_tls_port_is_closed_at_once_and_others_are_served(ca, server_ctx, caplog, uvloop):
    with h2_server(app=app, ssl=server_ctx, uvloop=uvloop) as s:
        t0 = time.monotonic()
        assert raw_request(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5) == b""
        assert time.monotonic() - t0 < 2            # a clean close, not a wait for some timeout
        assert served(ca, s.port) == "https HTTP/1.1"
        assert eventually(lambda: s.server.open_connections == 0, 3)
    assert no_errors(caplog) == []


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_silent_or_stalled_handshake_is_cut_after_tls_handshake_timeout(ca, server_ctx, uvloop):
    """Before: asyncio's fixed 60 s on both loops, whatever the limits, holding a max_connections place."""
    assert Limits().tls_handshake_timeout == 10.0
    out = ssl.MemoryBIO()
    obj = client_ctx(ca).wrap_bio(ssl.MemoryBIO(), out, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    client_hello = out.read()
    with h2_server(app=app, ssl=server_ctx, uvloop=uvloop, tls_handshake_timeout=0.5, max_connections=3) as s:
        silent = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        half = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        try:
            half.sendall(client_hello[:len(client_hello) // 2])
            assert served(ca, s.port) == "https HTTP/1.1"        # meanwhile, others are served
            for sock in (silent, half):                           # both cut by the server, in time
                data, took = read_until_closed(sock, 1.5)
                assert data == b"" and took < 1.4, took
        finally:
            silent.close()
            half.close()
        assert eventually(lambda: s.server.open_connections == 0, 3)
        assert served(ca, s.port) == "https HTTP/1.1"


def test_asyncio_loop_keeps_enforcing_timeouts_after_an_idle_tls_connection_is_closed(ca, server_ctx):
    """The tick closed a closing TLS transport again on every pass; asyncio's drops its state on a second
    close(), the next check raised, and the tick was never scheduled again: no timeout for anyone."""
    with h2_server(app=app, ssl=server_ctx, uvloop=False, keep_alive=0.3, header_timeout=0.5) as s:
        idle = tls_socket(s.port, client_ctx(ca, ["http/1.1"]))
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(1000).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.8)                       # closed for keep-alive; the client never sends close_notify
        slow = tls_socket(s.port, client_ctx(ca, ["http/1.1"]))
        try:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")              # a head that never ends
            data, took = read_until_closed(slow, 1.5)
            assert data.startswith(b"HTTP/1.1 408 ") and took < 1.4, (data[:40], took)
        finally:
            slow.close()
            idle.close()


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_an_idle_tls_close_the_client_never_answers_frees_its_place_in_time(ca, server_ctx, uvloop):
    """Closed for keep-alive, a TLS connection waits for the client's close_notify: tls_handshake_timeout
    at most (before: the loop's fixed 30 s, holding a max_connections place)."""
    with h2_server(app=app, ssl=server_ctx, uvloop=uvloop, keep_alive=0.2, tls_handshake_timeout=0.5) as s:
        idle = tls_socket(s.port, client_ctx(ca, ["http/1.1"]))
        try:
            idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(1000).startswith(b"HTTP/1.1 200 ")
            assert s.server.open_connections == 1
            assert eventually(lambda: s.server.open_connections == 0, 4)    # the client stays silent
        finally:
            idle.close()


# ---- ALPN, versions, SNI, renegotiation ----------------------------------------------------------------

@pytest.mark.parametrize(("offer", "chosen"), [(None, None), (["spdy/3", "foo"], None), (["http/1.1"], "http/1.1")])
def test_a_client_offering_no_or_only_unknown_alpn_gets_http11(ca, server_ctx, offer, chosen):
    with h2_server(app=app, ssl=server_ctx) as s:
        with tls_socket(s.port, client_ctx(ca, offer)) as t:
            assert t.selected_alpn_protocol() == chosen
            t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = read_until_closed(t, 5)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"https HTTP/1.1")
        assert served(ca, s.port, http2=True) == "https HTTP/2"


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_1_0_and_1_1_are_refused(ca, server_ctx, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.warns(DeprecationWarning):
        ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with h2_server(app=app, ssl=server_ctx) as s:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            tls_socket(s.port, ctx).close()
        assert served(ca, s.port) == "https HTTP/1.1"
        assert eventually(lambda: s.server.open_connections == 0, 3)


def test_an_unknown_sni_name_gets_the_one_certificate_and_is_served(ca, server_ctx):
    ctx = client_ctx(ca, ["http/1.1"])
    ctx.check_hostname = False                   # the certificate is for 127.0.0.1/localhost only
    with h2_server(app=app, ssl=server_ctx) as s, tls_socket(s.port, ctx, sni="unknown.example.org") as t:
        t.sendall(b"GET / HTTP/1.1\r\nHost: unknown.example.org\r\nConnection: close\r\n\r\n")
        data, _ = read_until_closed(t, 5)
        assert data.startswith(b"HTTP/1.1 200 ")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_client_initiated_renegotiation_is_refused(ca, server_ctx):
    with h2_server(app=app, ssl=server_ctx) as s:
        # s_client reads "R" at the start of a line as "renegotiate now"; the GET follows on the same session
        proc = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{s.port}", "-tls1_2", "-no_ign_eof"],
            input=b"R\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", capture_output=True, timeout=10)
        out = proc.stdout + proc.stderr
        assert b"RENEGOTIATING" in out and b"no renegotiation" in out, out[-600:]
        assert b"HTTP/1.1 200" not in out
        assert served(ca, s.port) == "https HTTP/1.1"


# ---- clients leaving without close_notify --------------------------------------------------------------

def _abort(sock: ssl.SSLSocket) -> None:
    """Close the TCP connection with a reset: no close_notify, the answer still coming."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    socket.socket.close(sock)


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_clients_leaving_mid_answer_without_close_notify(ca, server_ctx, caplog, uvloop):
    with h2_server(app=app, ssl=server_ctx, threads=2, uvloop=uvloop) as s:
        for _ in range(3):
            t = tls_socket(s.port, client_ctx(ca, ["http/1.1"]))
            t.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            assert t.recv(1000)
            _abort(t)
        t = tls_socket(s.port, client_ctx(ca, ["h2"]))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/big"), (":scheme", "https"), (":authority", "x")],
                          end_stream=True)
        t.sendall(conn.data_to_send())
        assert t.recv(1000)
        _abort(t)
        assert served(ca, s.port) == "https HTTP/1.1" and served(ca, s.port, http2=True) == "https HTTP/2"
        assert eventually(lambda: s.server.open_connections == 0, 3)
    assert no_errors(caplog) == []


# ---- HTTP/2 over TLS: a client that stalls after the preface -------------------------------------------

@pytest.mark.parametrize("sent", [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"PRI * HTTP/2.0\r\n"],
                         ids=["preface", "half-preface"])
def test_h2_client_stalling_after_the_preface_is_closed_after_h2_idle_timeout(ca, server_ctx, sent):
    with h2_server(app=app, ssl=server_ctx, h2_idle_timeout=0.5) as s:
        t = tls_socket(s.port, client_ctx(ca, ["h2"]))
        assert t.selected_alpn_protocol() == "h2"
        t.sendall(sent)
        data, took = read_until_closed(t, 5)
        t.close()
        assert took < 2.5, took
        assert data[3:4] == b"\x04"                   # our SETTINGS came first ...
        assert b"\x07\x00\x00\x00\x00\x00" in data    # ... and a GOAWAY frame (type 7) before the close
        assert served(ca, s.port, http2=True) == "https HTTP/2"


def test_h2_over_tls_stalled_request_body_is_408_and_frees_the_worker(ca, server_ctx):
    def reader(environ, start_response):
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got %d" % len(data)]

    with h2_server(app=reader, ssl=server_ctx, threads=1, network_timeout=0.5) as s:
        t = tls_socket(s.port, client_ctx(ca, ["h2"]))
        c = H2Client(s.port, sock=t)
        sid = c.request("/up", method="POST", body=b"abc", end=False)     # ... and nothing more
        headers, _ = c.response(sid, timeout=4)
        assert headers.get(":status") == "408"
        with httpx.Client(http2=True, verify=client_ctx(ca, ["h2"]), timeout=3) as cl:   # the one worker is free
            assert cl.post(f"https://127.0.0.1:{s.port}/", content=b"12345").text == "got 5"
        c.close()


# ---- the forward listener: nothing the client sends is reflected raw into Location ----------------------

def forward_answer(port: int, request: bytes) -> tuple[bytes, bytes]:
    data = raw_request(port, request, timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(("target", "host", "status", "location"), [
    (b"/%0d%0aSet-Cookie:%20a=1", b"ex.com", 301, b"https://ex.com/%0d%0aSet-Cookie:%20a=1"),
    (b"/a?x=%0D%0AX:1", b"ex.com", 301, b"https://ex.com/a?x=%0D%0AX:1"),
    (b"/a<b>\"c\"{|}^`", b"ex.com", 301, b"https://ex.com/a%3Cb%3E%22c%22%7B%7C%7D%5E%60"),
    (b"//evil.example/x", b"ex.com:80", 301, b"https://ex.com//evil.example/x"),
    (b"http://user@evil.example/", b"ex.com", 400, None),
    (b"*", b"ex.com", 308, b"https://ex.com/"),
])
def test_forward_redirect_never_reflects_raw_input(target, host, status, location):
    method = b"OPTIONS" if target == b"*" else b"GET"
    with ServerThread(ForwardToHTTPS(Config(forward_port=80, forward_to=443))) as s:
        head, body = forward_answer(s.port, method + b" " + target + b" HTTP/1.1\r\nHost: " + host +
                                    b"\r\nConnection: close\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status), head
        lines = head.split(b"\r\n")
        locations = [v for n, _, v in (ln.partition(b": ") for ln in lines) if n.lower() == b"location"]
        assert locations == ([location] if location else [])
        assert not any(n.lower() == b"set-cookie" or n == b"X" for n, _, _ in (ln.partition(b": ") for ln in lines))
        assert httpx.get(f"{s.url}/ok", headers={"Host": "ex.com"}).headers["location"] == "https://ex.com/ok"


def test_forward_connect_is_405_and_a_huge_target_is_414():
    with ServerThread(ForwardToHTTPS(Config(forward_port=80, forward_to=443)), max_request_line=1024) as s:
        head, _ = forward_answer(s.port, b"CONNECT ex.com:443 HTTP/1.1\r\nHost: ex.com:443\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD" in head and b"Location" not in head
        head, body = forward_answer(s.port, b"GET /" + b"%0a" * 2000 + b" HTTP/1.1\r\nHost: ex.com\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 414 ") and len(head) + len(body) < 1024 and b"Location" not in head
        for bad_host in (b"ex.com\rX-Injected: 1", b"ex.com\x00", b"a b", b"ex.com/evil", b"u@ex.com"):
            head, _ = forward_answer(s.port, b"GET / HTTP/1.1\r\nHost: " + bad_host + b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 ") and b"X-Injected" not in head, head
        assert httpx.get(f"{s.url}/ok", headers={"Host": "ex.com"}).headers["location"] == "https://ex.com/ok"
