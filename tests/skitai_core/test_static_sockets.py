"""Static files behind the real HTTP/1.1 server: requests and raw sockets on 127.0.0.1."""
import hashlib
import os
import socket

import pytest
import requests

from skitai.handlers.maxage import MaxAges
from skitai.handlers.static import StaticHandler
from tests.support.server import ServerThread

SMALL = os.urandom(4096)
BIG = os.urandom(3 * 1024 * 1024 + 17)        # over the memory-cache limit: goes out by sendfile


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("static")
    root = base / "www"
    for d in ("css", "docs", "js", "jsx", "images", ".git", ".well-known"):
        (root / d).mkdir(parents=True)
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "docs" / "index.html").write_bytes(b"docs")
    (root / "css" / "site.css").write_bytes(b"body{}")
    (root / "js" / "app.js").write_bytes(b"1;")
    (root / "jsx" / "app.js").write_bytes(b"2;")
    (root / "images" / "x.svg").write_bytes(b"<svg/>")
    (root / "small.bin").write_bytes(SMALL)
    (root / "big.bin").write_bytes(BIG)
    (root / "data.json").write_bytes(b"{}")
    (root / "mod.wasm").write_bytes(b"\0asm")
    (root / "font.woff2").write_bytes(b"wOF2")
    (root / "a b.txt").write_bytes(b"space")
    (root / "%2e%2e").write_bytes(b"literal")
    (root / ".env").write_bytes(b"SECRET")
    (root / ".git" / "config").write_bytes(b"SECRET")
    (root / ".well-known" / "security.txt").write_bytes(b"contact")
    (base / "secret.txt").write_bytes(b"SECRET")
    (root / "leak.txt").symlink_to(base / "secret.txt")
    (root / "leakdir").symlink_to(base)
    return root


@pytest.fixture(scope="module")
def server(site):
    handler = StaticHandler(str(site), "/", MaxAges({"/": 300, "/js": 0, "/images": 3600}), None)
    with ServerThread(dispatch=handler) as srv:
        yield srv
    handler.close()


def raw(server, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` as is and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            got = s.recv(65536)
            if not got:
                break
            chunks.append(got)
    return b"".join(chunks)


def raw_get(server, target: str, method: str = "GET", extra: str = "") -> tuple[int, dict, bytes]:
    reply = raw(server, f"{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode("latin-1"))
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_get_small_and_big(server):
    r = requests.get(server.url + "/small.bin")
    assert r.status_code == 200 and r.content == SMALL
    assert r.headers["Content-Length"] == "4096" and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Cache-Control"] == "max-age=300" and "Expires" in r.headers
    assert r.headers["Server"] and r.headers["Date"]
    r = requests.get(server.url + "/big.bin")
    assert r.status_code == 200 and len(r.content) == len(BIG)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(BIG).digest()


def test_keep_alive_many_in_a_row(server):
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(server.url + "/big.bin").content == BIG
            assert s.get(server.url + "/small.bin").content == SMALL
            assert s.get(server.url + "/css/site.css").content == b"body{}"


def test_pipelined(server):
    req = b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" \
          b"GET /css/site.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw(server, req)
    assert reply.count(b"HTTP/1.1 200") == 3
    assert SMALL in reply and BIG in reply and reply.endswith(b"body{}")
    assert reply.index(SMALL) < reply.index(BIG)


@pytest.mark.parametrize("name", ["/small.bin", "/big.bin"])
def test_head(server, name):
    get = requests.get(server.url + name)
    head = requests.head(server.url + name)
    assert head.status_code == 200 and head.content == b""
    for field in ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Cache-Control"):
        assert head.headers[field] == get.headers[field]
    status, headers, body = raw_get(server, name, "HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == get.headers["Content-Length"]


@pytest.mark.parametrize("name, ctype", [
    ("/css/site.css", "text/css; charset=utf-8"), ("/js/app.js", "text/javascript; charset=utf-8"),
    ("/data.json", "application/json; charset=utf-8"), ("/images/x.svg", "image/svg+xml; charset=utf-8"),
    ("/mod.wasm", "application/wasm"), ("/font.woff2", "font/woff2"), ("/small.bin", "application/octet-stream"),
    ("/", "text/html; charset=utf-8"),
])
def test_content_types(server, name, ctype):
    assert requests.get(server.url + name).headers["Content-Type"] == ctype


def test_max_age_rules(server):
    get = lambda p: requests.get(server.url + p).headers
    assert get("/css/site.css")["Cache-Control"] == "max-age=300"
    assert get("/images/x.svg")["Cache-Control"] == "max-age=3600"
    assert get("/jsx/app.js")["Cache-Control"] == "max-age=300"
    js = get("/js/app.js")
    assert "Cache-Control" not in js and "Expires" not in js


@pytest.mark.parametrize("name", ["/small.bin", "/big.bin"])
def test_conditional(server, name):
    first = requests.get(server.url + name)
    etag, lm = first.headers["ETag"], first.headers["Last-Modified"]
    r = requests.get(server.url + name, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == etag
    r = requests.get(server.url + name, headers={"If-Modified-Since": lm})
    assert r.status_code == 304
    r = requests.get(server.url + name, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert r.status_code == 200 and len(r.content) == int(first.headers["Content-Length"])
    assert requests.get(server.url + name, headers={"If-Match": '"x"'}).status_code == 412
    status, headers, body = raw_get(server, name, extra=f"If-None-Match: {etag}\r\n")
    assert status == 304 and body == b"" and "transfer-encoding" not in headers


def test_newer_file_gets_200(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"old")
    with ServerThread(dispatch=StaticHandler(str(tmp_path), "/", None, None, revalidate=0)) as srv:
        first = requests.get(srv.url + "/f.txt")
        (tmp_path / "f.txt").write_bytes(b"newer")
        later = os.stat(tmp_path / "f.txt").st_mtime + 10
        os.utime(tmp_path / "f.txt", (later, later))
        r = requests.get(srv.url + "/f.txt", headers={"If-Modified-Since": first.headers["Last-Modified"]})
        assert r.status_code == 200 and r.content == b"newer"
        r = requests.get(srv.url + "/f.txt", headers={"If-None-Match": first.headers["ETag"]})
        assert r.status_code == 200 and r.headers["ETag"] != first.headers["ETag"]


@pytest.mark.parametrize("name, data", [("/small.bin", SMALL), ("/big.bin", BIG)])
def test_ranges(server, name, data):
    size = len(data)
    r = requests.get(server.url + name, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{size}" and r.headers["Content-Length"] == "100"
    r = requests.get(server.url + name, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = requests.get(server.url + name, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == data[1000:]
    r = requests.get(server.url + name, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    r = requests.get(server.url + name, headers={"Range": "bytes=0-0,10-10"})
    assert r.status_code == 200 and r.content == data
    etag = r.headers["ETag"]
    r = requests.get(server.url + name, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status_code == 206 and r.content == data[:10]
    r = requests.get(server.url + name, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == data


def test_index_and_redirect(server):
    assert requests.get(server.url + "/").content == b"<h1>home</h1>"
    assert requests.get(server.url + "/docs/").content == b"docs"
    r = requests.get(server.url + "/docs?x=1&y=2", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "/docs/?x=1&y=2"
    r = requests.get(server.url + "/docs")
    assert r.status_code == 200 and r.url.endswith("/docs/") and r.content == b"docs"


def test_methods(server):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        r = requests.request(method, server.url + "/small.bin", data=b"x")
        assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


def test_odd_names(server):
    assert requests.get(server.url + "/a%20b.txt").content == b"space"
    assert requests.get(server.url + "/%252e%252e").content == b"literal"      # decoded once only
    assert requests.get(server.url + "/.well-known/security.txt").content == b"contact"


TRAVERSALS = [
    "/../secret.txt", "/..%2fsecret.txt", "/%2e%2e/secret.txt", "/%2E%2e/secret.txt", "/%2e%2e%2fsecret.txt",
    "/css/../../secret.txt", "/css/%2e%2e/%2e%2e/secret.txt", "/%252e%252e/secret.txt", "//etc/passwd",
    "/leak.txt", "/leakdir/secret.txt", "/.env", "/.git/config", "/%2eenv", "/etc/passwd",
    "/..;/secret.txt", "/./secret.txt", "/css/./site.css/..", "/%2e%2e%5csecret.txt",
    "/..%5csecret.txt", "/..\\secret.txt", "/%00", "/small.bin%00.txt", "/%c0%ae%c0%ae/secret.txt",
    "/%c0%af", "/%e0%80%ae%e0%80%ae/secret.txt", "/%25c0%25ae/secret.txt", "/%ff%fe", "/%2e%2e%00/",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_never_escapes(server, target):
    status, _, body = raw_get(server, target)
    assert status in (400, 404), (target, status)
    assert b"SECRET" not in body and b"root:" not in body


def test_traversal_absolute_form(server):
    status, _, body = raw_get(server, "http://x/../secret.txt")
    assert status in (400, 404) and b"SECRET" not in body


def test_client_leaving_mid_file_harms_nobody(site, caplog):
    import time

    with ServerThread(dispatch=StaticHandler(str(site), "/", None, None)) as srv:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(1024).startswith(b"HTTP/1.1 200")
        assert requests.get(srv.url + "/big.bin", headers={"Connection": "close"}).content == BIG
        deadline = time.monotonic() + 5
        while srv.call(lambda: len(srv.server.connections)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.call(lambda: len(srv.server.connections)) == 0      # nothing left holding a file open
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_concurrent_big_and_small(server):
    from concurrent.futures import ThreadPoolExecutor

    def fetch(i):
        name, data = ("/big.bin", BIG) if i % 2 else ("/small.bin", SMALL)
        with requests.Session() as s:
            return all(s.get(server.url + name).content == data for _ in range(3))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(fetch, range(16)))


def test_plain_asyncio_loop(site):
    with ServerThread(dispatch=StaticHandler(str(site), "/", None, None), uvloop=False) as srv:
        assert requests.get(srv.url + "/big.bin").content == BIG
        r = requests.get(srv.url + "/big.bin", headers={"Range": "bytes=5-"})
        assert r.status_code == 206 and r.content == BIG[5:]


def test_http10(server):
    reply = raw(server, b"GET /css/site.css HTTP/1.0\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b"body{}"
    assert b"Expires: " in head and b"Cache-Control: max-age=300" in head
    reply = raw(server, b"GET /big.bin HTTP/1.0\r\n\r\n")
    assert reply.partition(b"\r\n\r\n")[2] == BIG


def test_http2_prior_knowledge(site):
    httpx = pytest.importorskip("httpx")
    from tests.skitai_core.h2ws_support import h2_server

    with h2_server(StaticHandler(str(site), "/", {"/": 60}, None)) as srv:
        with httpx.Client(http1=False, http2=True) as client:
            r = client.get(srv.url + "/big.bin")
            assert r.http_version == "HTTP/2" and r.status_code == 200 and r.content == BIG
            r = client.get(srv.url + "/small.bin", headers={"Range": "bytes=1-2"})
            assert r.status_code == 206 and r.content == SMALL[1:3]
            etag = r.headers["etag"]
            r = client.get(srv.url + "/small.bin", headers={"If-None-Match": etag})
            assert r.status_code == 304 and r.headers["cache-control"] == "max-age=60"
            r = client.head(srv.url + "/big.bin")
            assert r.status_code == 200 and r.headers["content-length"] == str(len(BIG)) and r.content == b""
