"""HTTP/2 streams against real servers: prior knowledge, h2c upgrade, many streams, bodies, trailers, push."""
from __future__ import annotations

import os
import socket
import tempfile

import h2.events
import h2.settings
import httpx
import pytest

from tests.skitai_core.h2ws_support import H2Client, h2_server


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        inp, data = environ["wsgi.input"], b""
        while len(data) < n:
            chunk = inp.read(min(65536, n - len(data)))
            if not chunk:
                break
            data += chunk
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%d\n" % i for i in range(1000))
    if path == "/file":
        f = open(environ["test.file"], "rb") if "test.file" in environ else open(__file__, "rb")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](f)
    if path == "/env":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['SERVER_PROTOCOL']} {environ['wsgi.url_scheme']} {environ.get('HTTP_HOST')}".encode()]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "keep-alive")])
    return [b"Hello " + path.encode()]


@pytest.fixture
def srv():
    with h2_server(app=wsgi_app) as s:
        yield s


def test_prior_knowledge_hello(srv):
    c = H2Client(srv.port)
    try:
        headers, body = c.response(c.request("/hello"))
        assert headers[":status"] == "200" and body == b"Hello /hello"
        assert "connection" not in headers and headers["server"].startswith("Skitai")
        headers, body = c.response(c.request("/env"))
        assert body == b"HTTP/2 http localhost"
    finally:
        c.close()


def test_many_concurrent_streams_on_one_connection(srv):
    c = H2Client(srv.port)
    try:
        sids = [c.request(f"/n{i}") for i in range(60)]
        for i, sid in enumerate(sids):
            headers, body = c.response(sid)
            assert body == f"Hello /n{i}".encode()
    finally:
        c.close()


def test_httpx_http2_bodies_and_streams(srv):
    with httpx.Client(http2=True, http1=False, timeout=10) as cl:
        r = cl.get(f"{srv.url}/x")
        assert r.http_version == "HTTP/2" and r.text == "Hello /x"
        payload = os.urandom(200_000)
        r = cl.post(f"{srv.url}/echo", content=payload)
        assert r.content == payload
        r = cl.get(f"{srv.url}/stream")
        assert r.text.splitlines()[-1] == "999"
        r = cl.get(f"{srv.url}/file")
        with open(__file__, "rb") as f:
            assert r.content == f.read()
        r = cl.head(f"{srv.url}/x")
        assert r.status_code == 200 and r.content == b""


def test_big_upload_is_paced_by_flow_control():
    """3 MB through a 64 KiB-read handler: credit comes back only as the app reads."""
    seen = {}

    def dispatch(ex):
        async def run():
            n = 0
            while True:
                chunk = await ex.request.body.aread(65536)
                if not chunk:
                    break
                n += len(chunk)
            seen["held"] = ex.credit.held
            ex.respond(200, [], str(n).encode())
        return run()

    with h2_server(dispatch) as s, httpx.Client(http2=True, http1=False, timeout=10) as cl:
        r = cl.post(f"{s.url}/up", content=b"y" * 3_000_000)
        assert r.text == "3000000" and seen["held"] == 0


def test_h2c_upgrade_makes_the_request_stream_1(srv):
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        import h2.config
        import h2.connection
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        settings = conn.initiate_upgrade_connection().rstrip(b"=")
        sock.sendall(b"GET /up HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, rest = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101") and b"upgrade: h2c" in head.lower()
        c = H2Client(srv.port, sock=sock, conn=conn)      # sends the preface queued by the upgrade
        if rest:
            c.events.extend(conn.receive_data(rest))
        headers, body = c.response(1)
        assert headers[":status"] == "200" and body == b"Hello /up"
        headers, body = c.response(c.request("/next"))
        assert body == b"Hello /next"
    finally:
        sock.close()


@pytest.mark.parametrize("extra", [{}, {"HTTP2-Settings": "not base64!"}, {"HTTP2-Settings": "AAMA"}])
def test_h2c_upgrade_without_valid_settings_stays_http1(srv, extra):
    r = httpx.get(f"{srv.url}/plain", headers={"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
                                               **extra})
    assert r.status_code == 200 and r.http_version == "HTTP/1.1" and r.text == "Hello /plain"


def test_trailers_both_ways():
    def dispatch(ex):
        async def run():
            while await ex.request.body.aread(65536):
                pass
            ex.start(200, [("Content-Type", "text/plain"), ("Trailer", "x-checksum")])
            await ex.write(b"body")
            ex.trailers = [("x-checksum", "abc"), ("x-got", dict(ex.request_trailers or [])
                                                    .get("x-client", "none"))]
            ex.end()
        return run()

    with h2_server(dispatch) as s:
        c = H2Client(s.port)
        try:
            sid = c.request("/t", "POST", body=b"data", end=False)
            c.conn.send_headers(sid, [("x-client", "yes")], end_stream=True)
            c.flush()
            headers, body = c.response(sid)
            trailers = [e for e in c.events if isinstance(e, h2.events.TrailersReceived)]
            assert body == b"body" and dict(trailers[0].headers) == {"x-checksum": "abc", "x-got": "yes"}
        finally:
            c.close()


def push_dispatch(ex):
    if ex.request.path == "/page":
        ex.push("/a.png")
        ex.push("/b.png")
        return ex.respond(200, [("Content-Type", "text/html")], b'<img src="/a.png"><img src="/b.png">')
    return ex.respond(200, [("Content-Type", "image/png")], b"PNG" + ex.request.path.encode())


def test_server_push_when_enabled():
    with h2_server(push_dispatch) as s:
        c = H2Client(s.port)
        try:
            sid = c.request("/page")
            c.response(sid)
            promises = [e for e in c.events if isinstance(e, h2.events.PushedStreamReceived)]
            assert [dict(p.headers)[":path"] for p in promises] == ["/a.png", "/b.png"]
            for p in promises:
                headers, body = c.response(p.pushed_stream_id)
                assert body == b"PNG" + dict(p.headers)[":path"].encode()
        finally:
            c.close()


def test_push_is_ignored_when_the_client_disables_it_and_on_http1():
    with h2_server(push_dispatch) as s:
        c = H2Client(s.port, settings={h2.settings.SettingCodes.ENABLE_PUSH: 0})
        try:
            c.read(lambda e: isinstance(e, h2.events.SettingsAcknowledged), 2)
            headers, body = c.response(c.request("/page"))
            assert headers[":status"] == "200"
            assert not [e for e in c.events if isinstance(e, h2.events.PushedStreamReceived)]
        finally:
            c.close()
        assert httpx.get(f"{s.url}/page").status_code == 200


def test_push_from_a_wsgi_app_via_the_exchange():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/promise":
            environ["skitai.exchange"].push("/images/A.png")      # what was.response.hint_promise does
            start_response("200 OK", [("Content-Type", "text/html")])
            return [b'Promise Sent<br><br><img src="/images/A.png">']
        start_response("200 OK", [("Content-Type", "image/png")])
        return [b"A-PNG"]

    with h2_server(app=app) as s:
        c = H2Client(s.port)
        try:
            headers, body = c.response(c.request("/promise"))
            assert body.startswith(b"Promise Sent")
            (promise,) = [e for e in c.events if isinstance(e, h2.events.PushedStreamReceived)]
            assert c.response(promise.pushed_stream_id)[1] == b"A-PNG"
        finally:
            c.close()
        assert httpx.get(f"{s.url}/promise").status_code == 200          # HTTP/1.1: push is a no-op


def test_goaway_on_shutdown_lets_streams_finish():
    import threading
    gate = threading.Event()

    def app(environ, start_response):
        gate.wait(5)
        start_response("200 OK", [])
        return [b"late"]

    s = h2_server(app=app).start()
    c = H2Client(s.port)
    try:
        sid = c.request("/slow")
        c.read(lambda e: isinstance(e, h2.events.RemoteSettingsChanged), 2)
        from skitai.http2 import goaway_all
        s.call(goaway_all)
        gate.set()
        c.read(timeout=3)                      # until the server closes
        from hyperframe.frame import DataFrame, GoAwayFrame
        frames = c.frames()
        goaway = [f for f in frames if isinstance(f, GoAwayFrame)]
        assert goaway and goaway[0].error_code == 0 and goaway[0].last_stream_id == sid
        assert b"late" in b"".join(f.data for f in frames if isinstance(f, DataFrame))   # still answered
    finally:
        c.close()
        s.stop()


def test_big_file_over_h2_with_sendfile_chunks():
    with tempfile.NamedTemporaryFile() as f:
        data = os.urandom(1_500_000)
        f.write(data)
        f.flush()

        def dispatch(ex):
            async def run():
                with open(f.name, "rb") as fh:
                    ex.start(200, [("Content-Length", str(len(data)))])
                    await ex.sendfile(fh, 0, len(data))
                    ex.end()
            return run()

        with h2_server(dispatch) as s, httpx.Client(http2=True, http1=False, timeout=10) as cl:
            assert cl.get(f"{s.url}/f").content == data


def test_idle_connection_gets_goaway():
    with h2_server(app=wsgi_app, h2_idle_timeout=0.3) as s:
        c = H2Client(s.port)
        try:
            assert c.response(c.request("/x"))[1] == b"Hello /x"
            c.read(timeout=3)                              # until the server closes
            assert c.goaway_code() == 0
        finally:
            c.close()


def test_transaction_ids_keep_the_connection_number():
    seen = []

    def dispatch(ex):
        seen.append(ex.request.gtxnid)
        ex.respond(200, [], b"ok")

    with h2_server(dispatch) as s:
        for _ in range(2):
            c = H2Client(s.port)
            try:
                c.response(c.request("/a"))
                c.response(c.request("/b"))
            finally:
                c.close()
    assert seen[0].endswith("-R1") and seen[1].endswith("-R2") and seen[0].split("-")[1] != seen[2].split("-")[1]
    assert seen[0] == "GTID-C1-R1"
