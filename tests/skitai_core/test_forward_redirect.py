"""enable_forward(80, 443): every request on the forward port is redirected to HTTPS."""
from __future__ import annotations

import socket

import httpx

from skitai.config import Config
from skitai.forward import ForwardToHTTPS
from tests.support.server import ServerThread


def forward(to: int, domain: str | None = None) -> ForwardToHTTPS:
    return ForwardToHTTPS(Config(forward_port=80, forward_to=to, forward_domain=domain))


def test_get_is_301_with_host_path_and_query_kept():
    with ServerThread(forward(443)) as s:
        r = httpx.get(f"{s.url}/a/b?x=1&y=%20", headers={"Host": "example.com:8080"})
        assert r.status_code == 301 and r.headers["location"] == "https://example.com/a/b?x=1&y=%20"
        r = httpx.head(f"{s.url}/h", headers={"Host": "example.com"})
        assert r.status_code == 301 and r.content == b""


def test_post_is_308_so_the_method_and_body_survive():
    with ServerThread(forward(8443)) as s:
        r = httpx.post(f"{s.url}/form", content=b"a=1", headers={"Host": "example.com"})
        assert r.status_code == 308 and r.headers["location"] == "https://example.com:8443/form"


def test_forward_domain_and_missing_host():
    with ServerThread(forward(443, "secure.example.org")) as s:
        r = httpx.get(f"{s.url}/x", headers={"Host": "other.example"})
        assert r.headers["location"] == "https://secure.example.org/x"
    with ServerThread(forward(443)) as s, socket.create_connection(("127.0.0.1", s.port)) as c:
        c.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        data = c.recv(4096)
        assert data.startswith(b"HTTP/1.1 301") and b"Location: https://localhost/old\r\n" in data
