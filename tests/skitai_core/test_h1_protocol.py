"""HTTP/1.x over real sockets: keep-alive, pipelining, chunked bodies, 100-continue, HEAD, headers,
timeouts, streaming, sendfile, the upgrade and prior-knowledge hooks, graceful stop."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from email.utils import parsedate_to_datetime

import pytest
import requests

import skitai

from skitai.http import accesslog
from tests.support.net import free_port
from tests.support.server import ServerThread, parse_responses, raw_request


def echo_dispatch(exchange):
    req = exchange.request
    body = f"{req.method} {req.path} {req.query} {req.version} c{req.conn_no} r{req.req_no}".encode()
    exchange.respond(200, [("Content-Type", "text/plain")], body)


async def body_echo(exchange):
    data = await exchange.request.body.aread()
    exchange.respond(200, [("Content-Type", "application/octet-stream")], data)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def recv_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One response with a Content-Length body."""
    data = recv_until(sock, b"\r\n\r\n", timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture(params=[True, False], ids=["uvloop", "asyncio"])
def echo_server(request):
    with ServerThread(echo_dispatch, uvloop=request.param) as srv:
        yield srv


def test_http11_keep_alive_reuses_connection(echo_server):
    with requests.Session() as s:
        r1 = s.get(echo_server.url + "/a?x=1")
        r2 = s.get(echo_server.url + "/b")
    assert r1.status_code == 200 and r1.text.startswith("GET /a x=1 1.1 c")
    c1, c2 = r1.text.split()[-2], r2.text.split()[-2]
    assert c1 == c2 and r2.text.endswith("r2")
    assert "connection" not in {k.lower() for k in r1.headers}


def test_date_and_server_headers(echo_server):
    r = requests.get(echo_server.url + "/")
    assert r.headers["Server"] == skitai.NAME
    assert abs(parsedate_to_datetime(r.headers["Date"]).timestamp() - time.time()) < 3


def test_http10_closes_by_default():
    with ServerThread(echo_dispatch) as srv:
        data = raw_request(srv.port, b"GET /x HTTP/1.0\r\n\r\n")
    (resp,) = parse_responses(data)
    assert resp.status == 200 and resp.headers["connection"] == "close"
    assert resp.body.startswith(b"GET /x  1.0")


def test_http10_keep_alive_when_asked_and_length_known():
    def stream(exchange):
        if exchange.request.path == "/stream":
            exchange.start(200, [("Content-Type", "text/plain")])
            exchange.end(b"streamed")
        else:
            echo_dispatch(exchange)

    with ServerThread(stream) as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = recv_response(s)
        assert b"Connection: keep-alive" in first
        s.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        rest = recv_until(s, b"never")
        assert b"Connection: close" in rest and rest.endswith(b"streamed")


def test_connection_close_from_client(echo_server):
    data = raw_request(echo_server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (resp,) = parse_responses(data)
    assert resp.status == 200 and resp.headers["connection"] == "close"


def test_pipelined_requests_answer_in_order():
    async def slow_first(exchange):
        if exchange.request.path == "/slow":
            await asyncio.sleep(0.2)
        echo_dispatch(exchange)

    with ServerThread(slow_first) as srv:
        reqs = b"".join(f"GET /{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in ("slow", "b", "c"))
        data = raw_request(srv.port, reqs + b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    bodies = [r.body.split()[1] for r in parse_responses(data)]
    assert bodies == [b"/slow", b"/b", b"/c", b"/d"]


def test_pipelining_queue_is_bounded_but_all_answered():
    with ServerThread(echo_dispatch, max_pipelined=4) as srv:
        n = 200
        reqs = b"".join(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(n))
        data = raw_request(srv.port, reqs + b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    paths = [r.body.split()[1] for r in parse_responses(data)]
    assert paths == [f"/{i}".encode() for i in range(n)] + [b"/end"]


def test_chunked_request_body_and_chunked_response():
    async def dispatch(exchange):
        data = await exchange.request.body.aread()
        exchange.start(200, [("Content-Type", "text/plain")])
        for i in range(0, len(data), 1000):
            await exchange.write(data[i:i + 1000])
        exchange.end()

    payload = os.urandom(50_000)
    with ServerThread(dispatch) as srv:
        r = requests.post(srv.url + "/", data=iter([payload[i:i + 7000] for i in range(0, 50_000, 7000)]))
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert r.content == payload
        # the connection is still good afterwards
        raw = raw_request(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
                                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, second = parse_responses(raw)
    assert first.body == b"abcde" and second.status == 200


def test_expect_100_continue_sent_when_body_is_read():
    with ServerThread(body_echo) as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = recv_until(s, b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        resp = recv_response(s)
        assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"hello")


def test_expect_100_continue_not_sent_when_answered_without_reading():
    def refuse(exchange):
        exchange.respond(403, [("Content-Type", "text/plain")], b"no")

    with ServerThread(refuse) as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
        data = recv_until(s, b"never", timeout=5)
    assert b"100 Continue" not in data
    (resp,) = parse_responses(data)
    assert resp.status == 403 and resp.headers["connection"] == "close"


def test_head_has_get_headers_and_no_body():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * 1234]

    with ServerThread(app=app) as srv:
        get = requests.get(srv.url + "/")
        head = requests.head(srv.url + "/")
        assert head.headers["Content-Length"] == get.headers["Content-Length"] == "1234"
        assert head.headers["Content-Type"] == get.headers["Content-Type"]
        data = raw_request(srv.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                                     b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head_part, _, rest = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 1234" in head_part
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"x" * 1234)


def test_handler_exception_gives_500_and_connection_survives_for_others(caplog):
    def boom(exchange):
        if exchange.request.path == "/boom":
            raise RuntimeError("kaboom")
        echo_dispatch(exchange)

    with ServerThread(boom) as srv:
        with caplog.at_level(logging.ERROR, logger="skitai.server"):
            r = requests.get(srv.url + "/boom")
        assert r.status_code == 500 and "kaboom" not in r.text
        assert requests.get(srv.url + "/ok").status_code == 200
    assert any("kaboom" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records)


def test_keep_alive_timeout_closes_idle_connection():
    with ServerThread(echo_dispatch, keep_alive=0.3) as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        recv_response(s)
        start = time.monotonic()
        s.settimeout(5)
        assert s.recv(100) == b""
        assert time.monotonic() - start < 4          # the default keep-alive would be 30 s


def test_network_timeout_on_incomplete_head_gives_408():
    with ServerThread(echo_dispatch, network_timeout=0.3, keep_alive=5) as srv:
        start = time.monotonic()
        data = raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", timeout=5)
    assert data.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - start < 4


def test_network_timeout_on_stalled_body():
    with ServerThread(body_echo, network_timeout=0.3) as srv:
        data = raw_request(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", timeout=5)
    assert data.startswith(b"HTTP/1.1 408")


def test_slow_reader_is_cut_and_does_not_block_others():
    stopped = threading.Event()

    async def big(exchange):
        if exchange.request.path != "/big":
            return echo_dispatch(exchange)
        exchange.start(200, [("Content-Type", "application/octet-stream")])
        chunk = b"x" * 65536
        try:
            for _ in range(2000):              # 128 MiB: far more than the socket buffers hold
                await exchange.write(chunk)
            exchange.end()
        finally:
            stopped.set()

    with ServerThread(big, network_timeout=0.5) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        try:
            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")   # ... and never read
            t0 = time.monotonic()
            for _ in range(20):
                assert requests.get(srv.url + "/small", timeout=2).status_code == 200
            assert time.monotonic() - t0 < 5
            assert stopped.wait(5)             # the writer was released when the server gave up
            assert time.monotonic() - t0 < 5
            deadline = time.monotonic() + 3
            while srv.call(lambda: len(srv.server.connections)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert srv.call(lambda: len(srv.server.connections)) == 0
        finally:
            s.close()


def test_slowloris_does_not_block_others():
    with ServerThread(echo_dispatch, network_timeout=5) as srv:
        slow = []
        try:
            for _ in range(30):
                s = socket.create_connection(("127.0.0.1", srv.port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
                slow.append(s)
            for _ in range(3):
                for s in slow:
                    s.sendall(b"X-A: b\r\n")
                t0 = time.monotonic()
                assert requests.get(srv.url + "/", timeout=4).status_code == 200
                assert time.monotonic() - t0 < 3       # blocked, it would wait for the 5 s timeout
        finally:
            for s in slow:
                s.close()


def test_slow_body_does_not_block_others():
    with ServerThread(app=lambda e, sr: (sr("200 OK", []), [e["wsgi.input"].read()])[1], threads=2) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        try:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            for _ in range(5):
                assert requests.post(srv.url + "/", data=b"quick", timeout=2).content == b"quick"
        finally:
            s.close()


def test_sendfile_fixed_and_chunked(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def dispatch(exchange):
        with open(path, "rb") as f:
            if exchange.request.path == "/fixed":
                exchange.start(200, [("Content-Length", str(len(data) - 100))])
                await exchange.sendfile(f, 100, len(data) - 100)
            else:
                exchange.start(200, [])
                await exchange.sendfile(f, 0, 1000)
                await exchange.sendfile(f, 1000, len(data) - 1000)
            exchange.end()

    for uv in (True, False):
        with ServerThread(dispatch, uvloop=uv) as srv, requests.Session() as s:
            r = s.get(srv.url + "/fixed")
            assert r.content == data[100:]
            r = s.get(srv.url + "/chunked")
            assert r.headers["Transfer-Encoding"] == "chunked" and r.content == data


class EchoProtocol(asyncio.Protocol):
    """What another protocol (HTTP/2, WebSocket) would be after the hand-over: echoes bytes back."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(b"echo:" + data)


def test_upgrade_hook_hands_over_the_transport():
    def upgrade(exchange):
        assert exchange.request.upgrade == "echo"
        exchange.upgrade(EchoProtocol, headers=[("Upgrade", "echo"), ("Connection", "Upgrade")])

    with ServerThread(echo_dispatch, upgrades={"echo": upgrade}) as srv, \
            socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst")
        data = recv_until(s, b"echo:first")
        assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Upgrade: echo\r\n" in data and b"Connection: Upgrade\r\n" in data
        s.sendall(b"more")
        assert recv_until(s, b"echo:more").endswith(b"echo:more")


def test_upgrade_from_a_handler_in_the_chain():
    def dispatch(exchange):
        if exchange.request.headers.get("upgrade") == "echo":
            return exchange.upgrade(EchoProtocol, headers=[("Upgrade", "echo"), ("Connection", "Upgrade")])
        return echo_dispatch(exchange)

    with ServerThread(dispatch) as srv, socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        assert recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 101")
        s.sendall(b"ping")
        assert recv_until(s, b"echo:ping").endswith(b"echo:ping")


def test_upgrade_declined_continues_http11():
    with ServerThread(echo_dispatch, upgrades={"echo": echo_dispatch}) as srv:
        data = raw_request(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
                                     b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        unknown = raw_request(srv.port, b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                        b"Upgrade: other\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [r.body.split()[1] for r in parse_responses(data)] == [b"/a", b"/b"]
    assert [r.body.split()[1] for r in parse_responses(unknown)] == [b"/c", b"/d"]


def test_h2_prior_knowledge_hook_gets_every_byte():
    got = []

    class Capture(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            got.append(data)
            if b"".join(got).endswith(b"FRAMES"):
                self.transport.write(b"ok")
                self.transport.close()

    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    with ServerThread(echo_dispatch, h2_prior_knowledge=Capture) as srv:
        data = raw_request(srv.port, [preface[:10], preface[10:] + b"FRAMES"], pause=0.1)
        assert data == b"ok" and b"".join(got) == preface + b"FRAMES"
        assert requests.get(srv.url + "/").status_code == 200


def test_h2_preface_without_hook_is_505():
    with ServerThread(echo_dispatch) as srv:
        data = raw_request(srv.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 505")


def test_graceful_stop_finishes_inflight_request():
    started = threading.Event()

    async def slow(exchange):
        started.set()
        await asyncio.sleep(0.5)
        exchange.respond(200, [], b"done")

    srv = ServerThread(slow).start()
    result = {}
    t = threading.Thread(target=lambda: result.update(r=requests.get(srv.url + "/", timeout=5)))
    t.start()
    assert started.wait(5)
    srv.stop()
    t.join(5)
    assert result["r"].status_code == 200 and result["r"].text == "done"
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/", timeout=1)


def test_request_log_line(caplog):
    caplog.set_level(logging.INFO, logger="skitai.request")
    with ServerThread(echo_dispatch) as srv:
        accesslog.refresh()
        requests.get(srv.url + "/p?q=1", headers={"User-Agent": "tester/1"})
        requests.get(srv.url + "/t", headers={"X-Gtxn-Id": "GTID-C9-R9", "X-Ltxn-Id": "1001"})
        requests.get(srv.url + "/bad", headers={"X-Gtxn-Id": "G1", "X-Ltxn-Id": "junk"})
        time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "skitai.request"]
    assert len(lines) == 3
    f = lines[0].split()
    assert f[0].startswith("127.0.0.1:") and f[1] == f"127.0.0.1:{srv.port}"
    assert f[2:9] == ["GET", "/p?q=1", "HTTP/1.1", "200", "0", f[7], f[8]]
    assert int(f[7]) > 0 and f[8].startswith("GTID-C") and "-R1" in f[8]
    assert f[9] == "1000" and f[10] == "-" and f[11] == "-" and f[12] == '"tester/1"'
    assert f[13].endswith("ms") and f[14].endswith("ms")
    assert lines[1].split()[8:10] == ["GTID-C9-R9", "2001"]
    assert lines[2].split()[8:10] == ["G1", "1000"]


def test_tls_and_sendfile_fallback(tmp_path):
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    data = os.urandom(1 << 20)
    (tmp_path / "f").write_bytes(data)

    async def dispatch(exchange):
        if exchange.request.path == "/file":
            with open(tmp_path / "f", "rb") as f:
                exchange.start(200, [("Content-Length", str(len(data)))])
                await exchange.sendfile(f, 0, len(data))
                exchange.end()
        else:
            exchange.respond(200, [], exchange.request.scheme.encode())

    with ServerThread(dispatch, ssl=ctx) as srv, requests.Session() as s:
        assert s.get(srv.url + "/", verify=str(ca_file)).text == "https"
        assert s.get(srv.url + "/file", verify=str(ca_file)).content == data


def test_reuse_port_lets_two_servers_share_a_port():
    from skitai.config import Config
    from skitai.http.server import serve

    async def main():
        port = free_port()
        cfg = Config(address="127.0.0.1", port=port, workers=2)
        a = await serve(cfg, echo_dispatch)
        b = await serve(cfg, echo_dispatch)
        try:
            assert a.port == b.port == port
        finally:
            for srv in (a, b):
                srv.close()
                await srv.wait_closed()

    asyncio.run(main())


def test_absolute_form_target_and_http10_without_host(echo_server):
    data = raw_request(echo_server.port, b"GET http://example.com/abs?q=2 HTTP/1.1\r\nHost: example.com\r\n"
                                         b"Connection: close\r\n\r\n")
    assert parse_responses(data)[0].body.startswith(b"GET /abs q=2 1.1")
    data = raw_request(echo_server.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert parse_responses(data)[0].status == 200
