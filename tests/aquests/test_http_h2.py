"""HTTP/2 against hypercorn: h2c prior knowledge, TLS with ALPN, many streams, flow control."""
from __future__ import annotations

import asyncio
import hashlib
import os

import aquests

from .http_support import raw_server


async def test_h2c_prior_knowledge_many_streams_one_connection(h2c):
    async with aquests.Session(http2=True) as s:
        rs = await asyncio.gather(*(s.get(f"{h2c}/echo?i={i}") for i in range(50)))
        assert all(r.status_code == 200 and r.version == "2" for r in rs)
        assert [r.data["path"] for r in rs] == ["/echo"] * 50
        assert rs[0].data["http_version"] == "2"
        assert s.client.pools.count() == 1


async def test_h2_stream_limit_opens_more_connections(h2c):
    async with aquests.Session(http2=True, http2_streams=2) as s:
        rs = await asyncio.gather(*(s.get(f"{h2c}/echo") for i in range(6)))
        assert all(r.status_code == 200 for r in rs)
        assert 2 <= s.client.pools.count() <= 3


async def test_h2_large_bodies_both_ways_respect_flow_control(h2c):
    blob = os.urandom(5 * 1024 * 1024 + 3)  # larger than any default window
    async with aquests.Session(http2=True) as s:
        r = await s.request("POST", f"{h2c}/echo", data=blob)
        assert r.data["len"] == len(blob) and r.data["body_md5"] == hashlib.md5(blob).hexdigest()
        size = 9 * 1024 * 1024
        r = await s.get(f"{h2c}/big", params={"size": size})
        assert len(r.content) == size
        r = await s.get(f"{h2c}/big", params={"size": size}, stream=True)
        n = 0
        async for chunk in r.stream:
            n += len(chunk)
        assert n == size


async def test_h2_streamed_request_body(h2c):
    async def gen():
        for _ in range(10):
            yield b"0123456789" * 1000
    async with aquests.Session(http2=True) as s:
        r = await s.request("PUT", f"{h2c}/echo", data=gen())
        assert r.data["len"] == 100000 and r.data["method"] == "PUT"


async def test_https_negotiates_h2_by_alpn(h2tls):
    url, cafile = h2tls
    async with aquests.Session(verify=cafile) as s:
        r = await s.post(f"{url}/echo", {"x": 1})
        assert r.status_code == 200 and r.version == "2" and r.data["http_version"] == "2"
        assert r.data["len"] == 8
    async with aquests.Session(verify=cafile, force_http1=True) as s:
        r = await s.get(f"{url}/echo")
        assert r.version == "1.1" and r.data["http_version"] == "1.1"


async def test_h2_connection_lost_fails_streams_then_recovers(h2c):
    port = int(h2c.rsplit(":", 1)[1])
    async with aquests.Session(http2=True) as s:
        assert (await s.get(f"{h2c}/echo")).status_code == 200
        # kill the pooled connection's transport under it
        pool = next(iter(s.client.pools.pools.values()))
        pool.h2conns[0].transport.abort()
        await asyncio.sleep(0.05)
        r = await s.get(f"{h2c}/echo")
        assert r.status_code == 200, r.reason
        assert port


def test_standalone_fetchall_over_h2c(h2c):
    got = []
    aquests.configure(workers=8, callback=got.append, http2=True, http2_constreams=8)
    for i in range(20):
        aquests.get(f"{h2c}/echo", params={"i": i})
    aquests.fetchall()
    assert len(got) == 20 and all(r.status_code == 200 and r.version == "2" for r in got)
    assert sorted(int(r.data["path"] == "/echo") for r in got) == [1] * 20


async def test_h2c_to_a_server_that_answers_garbage():
    from aquests import codes

    async def not_h2(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + b"\x00" * 64)
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()
    async with raw_server([not_h2]) as url, aquests.Session(http2=True, timeout=2) as s:
        r = await s.get(url)
    assert r.status_code == codes.PROTOCOL_ERROR and "HTTP/2 protocol error" in r.reason


async def test_h2_trailers(h2c):
    async with aquests.Session(http2=True) as s:
        r = await s.get(f"{h2c}/trailers", headers={"TE": "trailers"})
        assert r.content == b"with trailers"
        assert r.trailers is not None and r.trailers["x-checksum"] == "abc123"
        r = await s.get(f"{h2c}/trailers", headers={"TE": "trailers"}, stream=True)
        assert await r.stream.read() == b"with trailers"
        assert r.trailers["x-checksum"] == "abc123"  # known once the body has been read
