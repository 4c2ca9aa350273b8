"""Forward proxies: absolute-URI requests for http://, CONNECT tunnels for https://.

The proxy is a small asyncio server written here; it records what it was asked.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib

import pytest

import aquests
from aquests import codes



async def _pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def proxy_server(require_auth: str | None = None, refuse_connect: bool = False):
    seen: list[str] = []

    async def handle(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        seen.append(lines[0])
        headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in lines[1:] if line}
        if require_auth and headers.get("proxy-authorization") != require_auth:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if method == "CONNECT":
            if refuse_connect:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                writer.close()
                return
            host, port = target.rsplit(":", 1)
            ur, uw = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
        else:
            rest = target.split("://", 1)[1]
            hostport, _, path = rest.partition("/")
            host, port = hostport.rsplit(":", 1)
            ur, uw = await asyncio.open_connection(host, int(port))
            first = f"{method} /{path} {version}\r\n".encode()
            uw.write(first + head.split(b"\r\n", 1)[1])
        try:
            await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))
        except asyncio.CancelledError:
            pass

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{srv.sockets[0].getsockname()[1]}", seen
    finally:
        srv.close()


async def test_http_through_proxy_uses_absolute_uri(app):
    async with proxy_server() as (proxy, seen):
        async with aquests.Session() as s:
            r = await s.get(f"{app.url}/echo?a=1", proxy=proxy)
            assert r.status_code == 200 and r.data["query"] == {"a": "1"}
            r = await s.get(f"{app.url}/echo?a=2", proxy=proxy)
            assert r.data["query"] == {"a": "2"}
        assert seen[0] == f"GET {app.url}/echo?a=1 HTTP/1.1"


async def test_https_through_connect_tunnel(tls_app):
    url, cafile = tls_app
    async with proxy_server() as (proxy, seen):
        async with aquests.Session(verify=cafile, proxy=f"http://{proxy}") as s:
            r = await s.get(f"{url}/echo")
            assert r.status_code == 200 and r.data["method"] == "GET"
        port = url.rsplit(":", 1)[1]
        assert seen == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]


async def test_proxy_credentials_and_refusals(app, tls_app):
    token = "Basic " + base64.b64encode(b"u:p w").decode()
    async with proxy_server(require_auth=token) as (proxy, _):
        r = await aquests.aio.get(f"{app.url}/echo", proxy=f"http://u:p%20w@{proxy}")
        assert r.status_code == 200
        r = await aquests.aio.get(f"{app.url}/echo", proxy=proxy)
        assert r.status_code == 407
    url, cafile = tls_app
    async with proxy_server(refuse_connect=True) as (proxy, _):
        async with aquests.Session(verify=cafile) as s:
            r = await s.get(f"{url}/echo", proxy=proxy)
        assert r.status_code == codes.REQUEST_FAILED and "refused CONNECT" in r.reason and "403" in r.reason


async def test_bad_proxy_argument():
    with pytest.raises(ValueError, match="only http:// proxies"):
        await aquests.aio.get("http://127.0.0.1/", proxy="socks5://127.0.0.1:1080")
