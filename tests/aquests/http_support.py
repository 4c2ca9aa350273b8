"""Real servers for the aquests HTTP tests: a stdlib HTTP/1.1 app server, hypercorn for HTTP/2,
and TLS material from trustme. Used by test_http_*/test_api_* (owner: aquests-http)."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from urllib.request import parse_http_list, parse_keqv_list

import pytest

REALM = "aq-test"
NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
USER, PASSWORD = "hans", "secret pw"


def _digest_ok(header: str, method: str) -> bool:
    params = parse_keqv_list(parse_http_list(header[len("Digest "):]))
    ha1 = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{params['uri']}".encode()).hexdigest()
    expect = hashlib.md5(
        f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}".encode()).hexdigest()
    return params.get("username") == USER and params.get("response") == expect


class AppHandler(BaseHTTPRequestHandler):
    """Routes used by the tests (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body go in two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain", headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path, q = parts.path, parse_qs(parts.query)
        body = self._body()
        if path == "/echo":
            info = {"method": self.command, "path": self.path, "query": {k: v[0] for k, v in q.items()},
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("latin-1"), "len": len(body),
                    "client_port": self.client_address[1]}
            self._send(200, json.dumps(info).encode(), "application/json")
        elif path == "/status":
            self._send(int(q["code"][0]), b"status page")
        elif path == "/redirect":
            n = int(q.get("n", ["1"])[0])
            code = int(q.get("code", ["302"])[0])
            loc = f"/redirect?n={n - 1}&code={code}" if n > 1 else "/echo"
            self._send(code, b"", headers=[("Location", loc)])
        elif path == "/basic":
            import base64
            want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") == want:
                self._send(200, b"basic ok")
            else:
                self._send(401, b"", headers=[("WWW-Authenticate", f'Basic realm="{REALM}"')])
        elif path == "/digest":
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Digest ") and _digest_ok(auth, self.command):
                self._send(200, b"digest ok")
            else:
                self._send(401, b"", headers=[("WWW-Authenticate",
                                              f'Digest realm="{REALM}", qop="auth", nonce="{NONCE}", '
                                              f'opaque="5ccc069c403ebaf9f0171e9517f40e41"')])
        elif path == "/bearer":
            ok = self.headers.get("Authorization") == "Bearer tok123"
            self._send(200 if ok else 401, b"bearer")
        elif path == "/setcookie":
            self._send(200, b"set", headers=[("Set-Cookie", "sid=abc123; Path=/"),
                                             ("Set-Cookie", "lang=ko; Path=/")])
        elif path == "/cache":
            self._send(200, b"c", headers=[("Cache-Control", "public, max-age=120")])
        elif path == "/big":
            size = int(q["size"][0])
            chunk = b"x" * 65536
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left = size
            while left:
                n = min(left, len(chunk))
                self.wfile.write(chunk[:n])
                left -= n
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/slow":
            time.sleep(float(q.get("s", ["2"])[0]))
            self._send(200, b"slow")
        elif path == "/xml":
            self._send(200, b"<a>1</a>", "text/xml")
        elif path == "/typed":
            ctype, body = TYPED[q["kind"][0]]
            self._send(200, body, ctype)
        elif path == "/gauge":
            self.server.gauge.hold(float(q.get("hold", ["0.5"])[0]), int(q["over"][0]))
            self._send(200, b"held")
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_TRACE = _route


TYPED = {  # /typed?kind=K answers (content type, body): how Response.data/text decode them
    "json": ("application/json; charset=utf-8", '{"k": "한"}'.encode()),
    "problem": ("application/problem+json", b'{"title": "bad"}'),
    "badjson": ("application/json", b"{nope"),
    "euckr": ("text/plain; charset=euc-kr", "한글".encode("euc-kr")),
    "xmlrpc": ("text/xml", xmlrpc.client.dumps((5,), methodresponse=True).encode()),
    "fault": ("text/xml", xmlrpc.client.dumps(xmlrpc.client.Fault(3, "no way")).encode()),
}


class Gauge:
    """Counts requests inside ``/gauge`` at once (``peak``), holding each until more than ``over``
    are inside or ``hold`` seconds pass: a client that lets too many out is caught for sure."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.current = self.peak = self.served = 0
        self.exceeded = False

    def hold(self, seconds: float, over: int) -> None:
        with self.cond:
            self.current += 1
            self.peak = max(self.peak, self.current)
            if self.current > over:
                self.exceeded = True
                self.cond.notify_all()
            self.cond.wait_for(lambda: self.exceeded, timeout=seconds)
            self.current -= 1
            self.served += 1


class ThreadedServer:
    """Run a ThreadingHTTPServer-like server in a daemon thread; ``stop()`` shuts it down."""

    def __init__(self, server) -> None:
        self.server = server
        self.server.daemon_threads = True
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class AppServer(ThreadingHTTPServer):
    request_queue_size = 128  # many concurrent connects without SYN retries
    gauge = Gauge()  # tests set a fresh one: ``app.server.gauge = Gauge()``

    def handle_error(self, request, client_address) -> None:  # clients that hang up are expected
        pass


def start_app_server() -> ThreadedServer:
    return ThreadedServer(AppServer(("127.0.0.1", 0), AppHandler))


@pytest.fixture(scope="module")
def app():
    """The app server over plain HTTP/1.1."""
    srv = start_app_server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def tls_app():
    """(https URL, CA bundle path) of the app server behind TLS."""
    with tls_app_server() as served:
        yield served


@contextlib.contextmanager
def tls_app_server():
    """The app server behind TLS with a trustme certificate; yields (https URL, CA bundle path)."""
    import ssl

    import trustme
    ca = trustme.CA()
    srv = AppServer(("127.0.0.1", 0), AppHandler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = ThreadedServer(srv)
    with ca.cert_pem.tempfile() as ca_file:
        try:
            yield f"https://127.0.0.1:{t.port}", ca_file
        finally:
            t.stop()


# -- HTTP/2 through hypercorn -------------------------------------------------------------------
async def h2_app(scope, receive, send) -> None:
    """A tiny ASGI app: /echo returns what it got; /big?size= streams bytes; /trailers sends trailers."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    q = parse_qs(scope["query_string"].decode())
    if scope["path"] == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"with trailers", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")],
                    "more_trailers": False})
        return
    if scope["path"] == "/big":
        size = int(q["size"][0])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(size).encode())]})
        chunk = b"y" * 65536
        while size:
            n = min(size, len(chunk))
            size -= n
            await send({"type": "http.response.body", "body": chunk[:n], "more_body": bool(size)})
        return
    if scope["path"] == "/hold":  # keeps the stream open a while, so requests overlap
        await asyncio.sleep(float(q.get("s", ["0.3"])[0]))
    info = {"method": scope["method"], "path": scope["path"], "http_version": scope["http_version"],
            "client_port": scope["client"][1],
            "len": len(body), "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "body_md5": hashlib.md5(body).hexdigest()}
    data = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class Hypercorn:
    """hypercorn serving :func:`h2_app` in its own thread and loop (h2c prior knowledge, or TLS+ALPN)."""

    def __init__(self, port: int, certfile: str | None = None, keyfile: str | None = None) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        cfg = Config()
        cfg.bind = [f"127.0.0.1:{port}"]
        cfg.accesslog = None
        cfg.errorlog = None
        cfg.loglevel = "ERROR"
        if certfile:
            cfg.certfile, cfg.keyfile = certfile, keyfile
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.stop_ev: asyncio.Event | None = None

        async def main() -> None:
            self.stop_ev = asyncio.Event()
            await serve(h2_app, cfg, shutdown_trigger=self.stop_ev.wait)

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.stop_ev is not None:
            self.loop.call_soon_threadsafe(self.stop_ev.set)
        self.thread.join(5)


@pytest.fixture(scope="module")
def h2c():
    """hypercorn over h2c (prior knowledge) and HTTP/1.1: its base URL."""
    from tests.support.net import free_port, wait_port
    port = free_port()
    srv = Hypercorn(port)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def h2tls(tmp_path_factory):
    """hypercorn behind TLS (h2 by ALPN): (https URL, CA bundle path)."""
    import trustme

    from tests.support.net import free_port, wait_port
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    certfile, keyfile, cafile = d / "cert.pem", d / "key.pem", d / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    port = free_port()
    srv = Hypercorn(port, str(certfile), str(keyfile))
    try:
        wait_port(port)
        yield f"https://127.0.0.1:{port}", str(cafile)
    finally:
        srv.stop()


# -- misbehaving servers -----------------------------------------------------------------------
GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@contextlib.asynccontextmanager
async def raw_server(replies):
    """Serve each accepted connection with the next item of ``replies``: bytes to send then close,
    or an async fn(reader, writer)."""
    it = iter(replies)

    async def handle(reader, writer):
        reply = next(it, GOOD)
        try:
            if callable(reply):
                await reply(reader, writer)
            else:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.close()
