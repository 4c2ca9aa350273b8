"""An HTTP/2 client (httpx, h2c prior knowledge) through a reverse proxy mount: the member still gets
HTTP/1.1, the answer streams back on the client's stream, a cut answer resets only that stream."""
from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.integration.proxy_support import address, backends, front, pattern


@pytest.fixture(scope="module")
def proxied():
    with backends(2) as members, front([address(m) for m in members]) as f:
        with httpx.Client(http1=False, http2=True, base_url=f.url, timeout=10) as client:
            yield client, members


def test_get_and_query_over_http2(proxied):
    client, members = proxied
    r = client.get("/search/a/b", params={"q": "x y"})
    assert r.http_version == "HTTP/2" and r.status_code == 200
    d = r.json()
    assert d["target"] == "/a/b?q=x+y" and d["port"] in {m.port for m in members}
    assert d["headers"]["x-forwarded-proto"] == "http" and d["headers"]["x-ltxn-id"] == "1001"
    assert d["headers"]["x-forwarded-host"].startswith("127.0.0.1")
    assert not {"connection", "te", "http2-settings"} & set(d["headers"])


def test_post_bodies_over_http2(proxied):
    client, _ = proxied
    for size in (10, 2 * 1024 * 1024 + 3):
        body = pattern(size)
        d = client.post("/search/up", content=body).json()
        assert d["size"] == size and d["sha256"] == hashlib.sha256(body).hexdigest()


def test_large_answer_and_head_over_http2(proxied):
    client, _ = proxied
    n = 5 * 1024 * 1024
    with client.stream("GET", "/search/big", params={"n": n}) as r:
        h = hashlib.sha256()
        for chunk in r.iter_bytes():
            h.update(chunk)
    assert r.http_version == "HTTP/2" and h.hexdigest() == hashlib.sha256(pattern(n)).hexdigest()
    head = client.head("/search/hop")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "3"


def test_cut_answer_resets_only_its_stream(proxied):
    client, _ = proxied
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", "/search/cut", params={"n": 2_000_000}) as r:
            for _ in r.iter_bytes():
                pass
    assert client.get("/search/after").json()["path"] == "/after"     # same connection, still usable
