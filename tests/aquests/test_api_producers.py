"""aquests.lib.producers (AQ-24): each producer alone, composed, and as a request body."""
from __future__ import annotations

import gzip
import io

import pytest

from aquests import aio
from aquests.lib import producers as P

from .http_support import start_app_server


def drain(p) -> bytes:
    out = []
    while data := p.more():
        out.append(data)
    assert p.more() == b""  # stays exhausted
    return b"".join(out)


def test_simple_and_file_producers(tmp_path):
    p = P.simple_producer(b"abcdefg", buffer_size=3)
    assert [p.more(), p.more(), p.more(), p.more()] == [b"abc", b"def", b"g", b""]
    assert len(P.simple_producer("한")) == 3
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 100)
    fobj = open(f, "rb")
    assert drain(P.file_producer(fobj, buffer_size=30)) == b"x" * 100
    assert fobj.closed
    with pytest.raises(ValueError):
        P.simple_producer(b"", buffer_size=0)


def test_composite_globbing_hooked():
    comp = P.composite_producer([P.simple_producer(b"ab", 1), P.simple_producer(b""), P.simple_producer(b"cd")])
    assert drain(comp) == b"abcd"
    glob = P.globbing_producer(P.simple_producer(b"0123456789", 2), buffer_size=5)
    assert [glob.more(), glob.more(), glob.more()] == [b"012345", b"6789", b""]
    seen = []
    hooked = P.hooked_producer(P.simple_producer(b"hello", 2), seen.append)
    assert drain(hooked) == b"hello" and seen == [5]


def test_chunked_and_gzipped():
    chunked = drain(P.chunked_producer(P.simple_producer(b"hello world", 5), footers=["X-Sum: 1"]))
    assert chunked == b"5\r\nhello\r\n5\r\n worl\r\n1\r\nd\r\n0\r\nX-Sum: 1\r\n\r\n"
    data = b"compress me " * 1000
    gz = drain(P.gzipped_producer(P.simple_producer(data, 100)))
    assert gzip.decompress(gz) == data and len(gz) < len(data) // 10
    assert P.compressed_producer is P.gzipped_producer
    with pytest.raises(ValueError):
        P.gzipped_producer(P.simple_producer(b""), level=10)


async def test_producer_as_request_body():
    app = start_app_server()
    try:
        body = P.composite_producer([P.simple_producer(b"part1,"), P.file_producer(io.BytesIO(b"part2"))])
        r = await aio.request("POST", f"{app.url}/echo", data=body)
        assert r.data["body"] == "part1,part2" and r.data["headers"]["transfer-encoding"] == "chunked"
    finally:
        app.stop()
