"""Reverse proxy mounts (SK-41): what a member gets and what the client gets back, over real sockets."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import socket
import threading
import time

import pytest
import requests

from skitai import launch
from skitai.runner import Running
from tests.integration.proxy_support import address, backends, front, pattern, root_app


class _HopHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        for name, value in (("Content-Type", "text/plain"), ("Content-Length", "3"), ("Connection", "X-Bar"),
                            ("X-Bar", "1"), ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "Basic"),
                            ("Trailer", "X-T"), ("Upgrade", "h2c"), ("X-Kept", "yes")):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(b"hop")

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def stdlib_backend():
    """A stdlib HTTP server that answers with hop-by-hop headers (skitai itself would not send them)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HopHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def one():
    with backends(1) as (member,), front([address(member)]) as f:
        yield f, member


def test_mount_point_is_stripped_and_query_kept(one):
    f, member = one
    d = requests.get(f.url + "/search/x/y%20z?q=1&r=a%2Fb", timeout=5).json()
    assert d["target"] == "/x/y%20z?q=1&r=a%2Fb"
    assert d["method"] == "GET" and d["port"] == member.port
    assert requests.get(f.url + "/search/?k=v", timeout=5).json()["target"] == "/?k=v"
    bare = requests.get(f.url + "/search", timeout=5, allow_redirects=False)
    assert bare.status_code == 301 and bare.headers["Location"] == "/search/"
    assert requests.get(f.url + "/other", timeout=5).text == "root app"      # the app at "/" is untouched


def test_small_post_body_is_forwarded(one):
    f, _ = one
    body = b"a=1&b=" + b"x" * 5000
    d = requests.post(f.url + "/search/form", data=body, timeout=5,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
    assert d["method"] == "POST" and d["size"] == len(body)
    assert d["sha256"] == hashlib.sha256(body).hexdigest()
    assert d["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert d["headers"]["content-length"] == str(len(body))


def test_chunked_request_body_is_forwarded(one):
    f, _ = one
    parts = [b"alpha-", b"beta-", b"gamma" * 1000]
    d = requests.put(f.url + "/search/up", data=iter(parts), timeout=5).json()
    whole = b"".join(parts)
    assert d["method"] == "PUT" and d["size"] == len(whole)
    assert d["sha256"] == hashlib.sha256(whole).hexdigest()


def test_large_post_body_is_streamed_through(one):
    f, _ = one
    body = pattern(5 * 1024 * 1024 + 17)
    d = requests.post(f.url + "/search/upload", data=body, timeout=20).json()
    assert d["size"] == len(body) and d["sha256"] == hashlib.sha256(body).hexdigest()
    assert d["headers"]["content-length"] == str(len(body))      # streamed with its length, not chunked

    def gen():
        for i in range(0, len(body), 300_000):
            yield body[i:i + 300_000]
    d = requests.post(f.url + "/search/upload", data=gen(), timeout=20).json()   # chunked and large
    assert d["size"] == len(body) and d["sha256"] == hashlib.sha256(body).hexdigest()


def test_large_response_is_streamed_back(one):
    f, _ = one
    n = 12 * 1024 * 1024 + 5
    with requests.get(f.url + "/search/big", params={"n": n}, stream=True, timeout=20) as r:
        assert r.status_code == 200
        h = hashlib.sha256()
        got = 0
        for chunk in r.iter_content(256 * 1024):
            h.update(chunk)
            got += len(chunk)
    assert got == n and h.hexdigest() == hashlib.sha256(pattern(n)).hexdigest()


def test_hop_by_hop_headers_are_dropped_both_ways(one):
    f, _ = one
    d = requests.get(f.url + "/search/h", timeout=5, headers={
        "Connection": "keep-alive, X-Foo", "X-Foo": "secret", "Keep-Alive": "timeout=5", "TE": "trailers",
        "Proxy-Authorization": "Basic abc", "Proxy-Foo": "1", "X-Custom": "kept"}).json()
    sent = d["headers"]
    for name in ("connection", "x-foo", "keep-alive", "te", "proxy-authorization", "proxy-foo", "transfer-encoding"):
        assert name not in sent, (name, sent)
    assert sent["x-custom"] == "kept"


def test_hop_by_hop_response_headers_are_dropped():
    with stdlib_backend() as member, front([member]) as f:
        r = requests.get(f.url + "/search/hop", timeout=5)
    back = {k.lower() for k in r.headers}
    assert r.text == "hop" and r.headers["X-Kept"] == "yes"
    assert not back & {"x-bar", "keep-alive", "proxy-authenticate", "trailer", "upgrade"}, r.headers
    assert r.headers.get("Connection", "keep-alive").lower() == "keep-alive"


def test_forwarded_headers_and_host(one):
    f, member = one
    d = requests.get(f.url + "/search/fw", timeout=5, headers={"X-Forwarded-For": "10.0.0.1"}).json()
    sent = d["headers"]
    assert sent["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == f"127.0.0.1:{f.port}"
    assert sent["host"] == address(member)                   # the member's own name (ProxyPass style)
    assert sent["via"] == "1.1 skitai"
    assert "x-forwarded-for" in requests.get(f.url + "/search/fw", timeout=5).json()["headers"]


def test_transaction_ids_are_forwarded(one):
    f, _ = one
    sent = requests.get(f.url + "/search/t", timeout=5).json()["headers"]
    assert sent["x-gtxn-id"].startswith("GTID-C") and sent["x-ltxn-id"] == "1001"     # minted here: 1000 + 1
    sent = requests.get(f.url + "/search/t", timeout=5,
                        headers={"X-Gtxn-Id": "GTID-EXT-9", "X-Ltxn-Id": "2001"}).json()["headers"]
    assert sent["x-gtxn-id"] == "GTID-EXT-9" and sent["x-ltxn-id"] == "3002"           # 2001 + 1000 + 1


def test_status_headers_and_head_pass_through(one):
    f, _ = one
    r = requests.get(f.url + "/search/missing?status=404", timeout=5)
    assert r.status_code == 404 and r.json()["path"] == "/missing"
    r = requests.delete(f.url + "/search/gone?status=500", timeout=5)
    assert r.status_code == 500 and r.json()["method"] == "DELETE"
    get = requests.get(f.url + "/search/hop", timeout=5)
    head = requests.head(f.url + "/search/hop", timeout=5)
    assert head.status_code == 200 and head.content == b"" and get.content == b"hop"
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == "3"
    assert head.headers["X-Kept"] == "yes"


def test_keep_alive_connection_serves_many_proxied_requests(one):
    f, _ = one
    with requests.Session() as s:
        for i in range(20):
            assert s.get(f"{f.url}/search/k{i}", timeout=5).json()["path"] == f"/k{i}"


def test_preserve_host_sends_the_clients_host():
    with backends(1) as (member,), front([address(member)], preserve_host=True) as f:
        d = requests.get(f.url + "/search/h", timeout=5, headers={"Host": "www.example.com"}).json()
    assert d["headers"]["host"] == "www.example.com" and d["headers"]["x-forwarded-host"] == "www.example.com"


def test_launch_api_mounts_a_cluster_as_a_path():
    with backends(2) as members:
        launch.reset()
        try:
            config = launch.apply_run(address="127.0.0.1", port=0, threads=2,
                                      mount=[("/", root_app), ("/search", "@mysearch")],
                                      clusters={"@mysearch": ("http", [address(m) for m in members])})
            with Running(config) as srv:
                ports = {requests.get(f"http://127.0.0.1:{srv.port}/search/q", timeout=5).json()["port"]
                         for _ in range(12)}
        finally:
            launch.reset()
    assert ports <= {m.port for m in members} and ports


def test_slow_client_holds_the_member_back_and_leaving_frees_it():
    with backends(1) as (member,), front([address(member)]) as f:
        with socket.create_connection(("127.0.0.1", f.port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.sendall(b"GET /search/big?n=500000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            # the client reads nothing more: the member's progress must come to a halt, far below the 500 MB
            deadline, first = time.monotonic() + 15, -1
            while member.progress["big"] != first and time.monotonic() < deadline:
                first = member.progress["big"]
                time.sleep(0.3)
            assert member.progress["big"] == first < 64 * 1024 * 1024   # back-pressure reached the member
        cluster = f.cluster()
        for _ in range(100):
            if cluster.status()["members"][0]["inflight"] == 0:
                break
            time.sleep(0.05)
        st = cluster.status()["members"][0]
        assert st["inflight"] == 0 and not st["dead"], st
        assert requests.get(f.url + "/search/after", timeout=5).json()["path"] == "/after"
