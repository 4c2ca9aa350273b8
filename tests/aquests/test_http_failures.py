"""Bad input ends as a failed response with a clear reason, and the pool recovers.

Raw asyncio servers misbehave on purpose; TLS uses trustme certificates.
"""
from __future__ import annotations

import asyncio

import pytest

import aquests
from aquests import codes

from .http_support import GOOD, raw_server, start_app_server

async def test_malformed_status_line_then_recovers():
    async with raw_server([b"HTTP/1.1 abc\r\n\r\n", GOOD]) as url, aquests.Session() as s:
        r = await s.get(url)
        assert r.status_code == codes.PROTOCOL_ERROR and "malformed response" in r.reason
        assert r.raise_for_status is not None and not r.ok
        r = await s.get(url)
        assert r.status_code == 200 and r.content == b"ok"


async def test_garbage_instead_of_http():
    async with raw_server([b"SSH-2.0-OpenSSH\r\n\r\n"]) as url:
        r = await aquests.aio.get(url)
        assert r.status_code == codes.PROTOCOL_ERROR


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: nine\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n",
])
async def test_malformed_framing(reply):
    async with raw_server([reply]) as url:
        r = await aquests.aio.get(url)
        assert r.status_code == codes.PROTOCOL_ERROR and r.reason.startswith("Protocol Error: malformed response")


async def test_oversized_headers_default_limit_and_custom():
    huge = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 0\r\n\r\n"
    medium = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 3000 + b"\r\nContent-Length: 0\r\n\r\n"
    async with raw_server([huge, medium, medium]) as url:
        r = await aquests.aio.get(url)
        assert r.status_code == codes.PROTOCOL_ERROR and "65536-byte limit" in r.reason
        async with aquests.Session(max_header_size=2048) as s:
            r = await s.get(url)
            assert r.status_code == codes.PROTOCOL_ERROR and "2048-byte limit" in r.reason
        r = await aquests.aio.get(url)  # default limit lets 3 KB through
        assert r.status_code == 200


async def test_body_size_limit():
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"z" * 5000
    async with raw_server([body, body]) as url:
        async with aquests.Session(max_body_size=1000) as s:
            r = await s.get(url)
            assert r.status_code == codes.PROTOCOL_ERROR and "1000-byte limit" in r.reason
            r = await s.get(url, stream=True)  # streaming is not bound by it
            assert len(await r.stream.read()) == 5000


async def test_server_closes_mid_body_then_recovers():
    async with raw_server([b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a bit", GOOD]) as url, \
            aquests.Session() as s:
        r = await s.get(url)
        assert r.status_code == codes.CONNECTION_CLOSED and "mid-body" in r.reason
        r = await s.get(url)
        assert r.status_code == 200


async def test_server_closes_mid_body_while_streaming():
    async with raw_server([b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a bit"]) as url:
        r = await aquests.aio.get(url, stream=True)
        assert r.status_code == 200
        with pytest.raises(aquests.http.errors.ConnectionClosed, match="mid-body"):
            await r.stream.read()


async def test_server_closes_before_answering():
    async def hang_up(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
    async with raw_server([hang_up, hang_up]) as url:
        r = await aquests.aio.get(url)
        assert r.status_code == codes.CONNECTION_CLOSED and "before sending a response" in r.reason


async def test_body_until_close_is_accepted():
    async with raw_server([b"HTTP/1.0 200 OK\r\n\r\nread until close"]) as url:
        r = await aquests.aio.get(url)
        assert r.status_code == 200 and r.content == b"read until close"


async def test_stale_keepalive_connection_is_retried():
    async def once_then_close(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        await writer.drain()
        await asyncio.sleep(0.05)  # then drop the idle keep-alive connection
    async with raw_server([once_then_close]) as url, aquests.Session() as s:
        assert (await s.get(url)).content == b"first"
        await asyncio.sleep(0.2)
        r = await s.get(url)
        assert r.status_code == 200 and r.content == b"ok"


async def test_timeout_then_recovers():
    async def slow(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(2)
    async with raw_server([slow]) as url, aquests.Session(timeout=0.3) as s:
        r = await s.get(url)
        assert r.status_code == codes.TIMEOUT and r.reason.startswith("Timeout")
        assert s.client.pools.count() == 0  # the timed-out connection was dropped
        r = await s.get(url)
        assert r.status_code == 200


async def test_refused_and_dns_failures():
    from tests.support.net import free_port
    r = await aquests.aio.get(f"http://127.0.0.1:{free_port()}/")
    assert r.status_code == codes.CONNECTION_REFUSED and "Connection Refused" in r.reason
    r = await aquests.aio.get("http://no-such-host.invalid/")
    assert r.status_code == codes.DNS_FAILED and r.reason.startswith("DNS Lookup Failed")
    assert r.data is None
    with pytest.raises(aquests.HTTPError, match="733"):
        r.raise_for_status()


async def test_tls_self_signed_is_rejected_by_default(tls_app):
    url, ca_file = tls_app
    r = await aquests.aio.get(f"{url}/echo")
    assert r.status_code == codes.TLS_FAILED and "certificate verification failed" in r.reason
    async with aquests.Session(verify=False) as s:
        r = await s.get(f"{url}/echo")
        assert r.status_code == 200 and r.data["method"] == "GET"
    async with aquests.Session(verify=ca_file) as s:
        r = await s.get(f"{url}/echo")
        assert r.status_code == 200


async def test_plain_http_to_tls_port_and_tls_to_plain_port(tls_app):
    url, _ = tls_app
    r = await aquests.aio.get(url.replace("https://", "http://") + "/echo", timeout=2)
    assert codes.is_failure(r.status_code)
    app = start_app_server()
    try:
        r = await aquests.aio.get(app.url.replace("http://", "https://"), timeout=2)
        assert r.status_code == codes.TLS_FAILED
    finally:
        app.stop()


async def test_timeout_on_a_reused_connection():
    async def answer_once_then_hang(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(GOOD)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(2)
    async with raw_server([answer_once_then_hang]) as url, aquests.Session(timeout=0.3) as s:
        assert (await s.get(url)).status_code == 200
        t0 = asyncio.get_running_loop().time()
        r = await s.get(url)  # same keep-alive connection: the pool's deadline timer fires
        assert r.status_code == codes.TIMEOUT
        assert 0.25 < asyncio.get_running_loop().time() - t0 < 2.0   # before the server's 2 s hang ends
        assert s.client.pools.count() == 0
        assert (await s.get(url)).status_code == 200
