"""HTTP/1.1 through the awaitable API against a real stdlib server (keep-alive, bodies, streaming)."""
from __future__ import annotations

import asyncio
import os

import pytest

import aquests
from aquests import aio

from .http_support import raw_server



async def test_get_response_fields(app):
    async with aquests.Session() as s:
        r = await s.get(f"{app.url}/echo", params={"q": "한글", "n": 1}, headers={"X-Test": "yes"})
    assert r.status_code == 200 and r.reason == "OK" and r.ok
    assert r.version == "1.1" and r.method == "GET"
    assert r.url == f"{app.url}/echo?q=%ED%95%9C%EA%B8%80&n=1"
    assert r.headers["content-type"] == "application/json" == r.get_header("Content-Type")
    assert r.get_header("x-missing", "dflt") == "dflt"
    info = r.data
    assert info == r.json()
    assert info["query"] == {"q": "한글", "n": "1"}
    assert info["headers"]["x-test"] == "yes"
    assert info["headers"]["user-agent"].startswith("aquests/")
    assert r.elapsed > 0 and r.history == []


async def test_shared_pools_close(app):
    await aio.get(f"{app.url}/echo")
    assert aquests.countcli() >= 1
    await aio.close()
    assert aquests.countcli() == 0


async def test_verbs_and_body_variants(app):
    u = f"{app.url}/echo"
    r = await aio.post(u, {"a": 1})
    assert r.data["method"] == "POST" and r.data["headers"]["content-type"] == "application/json"
    assert r.data["body"] == '{"a": 1}'
    r = await aio.postform(u, {"a": "1", "b": "x y"})
    assert r.data["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert r.data["body"] == "a=1&b=x+y"
    r = await aio.putxml(u, "<x/>")
    assert (r.data["method"], r.data["headers"]["content-type"], r.data["body"]) == ("PUT", "text/xml", "<x/>")
    r = await aio.patchnvp(u, {"k": "v"})
    assert (r.data["method"], r.data["headers"]["content-type"]) == ("PATCH", "text/namevalue")
    r = await aio.patchjson(u, [1, 2])
    assert r.data["body"] == "[1, 2]"
    for verb in ("delete", "options", "trace"):
        r = await getattr(aio, verb)(u)
        assert r.data["method"] == verb.upper()
    r = await aio.head(u)
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0
    # the HEAD response must not confuse the next request on the same connection
    r = await aio.get(u)
    assert r.data["method"] == "GET"


async def test_keep_alive_reuses_one_connection(app):
    async with aquests.Session() as s:
        ports = {(await s.get(f"{app.url}/echo")).data["client_port"] for _ in range(5)}
        assert len(ports) == 1
        assert s.client.pools.count() == 1


async def test_chunked_and_xml_and_404(app):
    async with aquests.Session() as s:
        r = await s.get(f"{app.url}/chunked")
        assert r.content == b"hello chunked world"
        r = await s.get(f"{app.url}/xml")
        assert r.data == b"<a>1</a>"  # not XML-RPC: content as is
        r = await s.get(f"{app.url}/nowhere")
        assert r.status_code == 404 and not r.ok
        with pytest.raises(aquests.HTTPError, match="404 Client Error"):
            r.raise_for_status()


async def test_max_age(app):
    r = await aio.get(f"{app.url}/cache")
    assert r.max_age == 120
    r = await aio.get(f"{app.url}/echo")
    assert r.max_age == 0


async def test_stream_large_response(app):
    size = 8 * 1024 * 1024
    async with aquests.Session() as s:
        r = await s.get(f"{app.url}/big", params={"size": size}, stream=True)
        assert r.status_code == 200 and r.content == b""
        total = 0
        biggest = 0
        async for chunk in r.stream:
            total += len(chunk)
            biggest = max(biggest, len(chunk))
        assert total == size and biggest < size
        # the connection went back to the pool and still works
        r2 = await s.get(f"{app.url}/echo")
        assert r2.status_code == 200 and s.client.pools.count() == 1


async def test_stream_closed_early_drops_connection(app):
    async with aquests.Session() as s:
        r = await s.get(f"{app.url}/big", params={"size": 4 * 1024 * 1024}, stream=True)
        first = await r.stream.read(10)
        assert first == b"x" * 10
        r.stream.close()
        r2 = await s.get(f"{app.url}/echo")
        assert r2.status_code == 200


async def test_request_body_from_file_and_iterators(app, tmp_path):
    blob = os.urandom(3 * 1024 * 1024 + 7)
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    async with aquests.Session() as s:
        with open(path, "rb") as f:
            r = await s.request("PUT", f"{app.url}/echo", data=f)
        assert r.data["len"] == len(blob)
        assert r.data["headers"]["content-length"] == str(len(blob))

        async def agen():
            for i in range(3):
                yield f"part{i};".encode()
        r = await s.request("POST", f"{app.url}/echo", data=agen())
        assert r.data["body"] == "part0;part1;part2;"
        assert r.data["headers"]["transfer-encoding"] == "chunked"
        r = await s.request("POST", f"{app.url}/echo", data=iter([b"a", b"b"]))
        assert r.data["body"] == "ab"


async def test_upload_multipart_paths_and_files(app, tmp_path):
    p = tmp_path / "hello.txt"
    p.write_bytes(b"file body 1")
    other = tmp_path / "data.bin"
    other.write_bytes(b"\x00\x01binary")
    with open(other, "rb") as fobj:
        r = await aio.upload(f"{app.url}/echo", {"name": "Hans", "doc": str(p), "bin": fobj})
        assert not fobj.closed  # caller's file stays open
    info = r.data
    ctype = info["headers"]["content-type"]
    assert ctype.startswith("multipart/form-data; boundary=")
    boundary = ctype.split("=", 1)[1]
    body = info["body"]
    assert info["len"] == int(info["headers"]["content-length"])
    assert f"--{boundary}--" in body
    assert 'name="name"\r\n\r\nHans\r\n' in body
    assert 'filename="hello.txt"' in body and "file body 1" in body
    assert 'filename="data.bin"' in body and "\x00\x01binary" in body


async def test_many_concurrent_requests(app):
    async with aquests.Session() as s:
        rs = await asyncio.gather(*(s.get(f"{app.url}/echo", params={"i": i}) for i in range(40)))
    assert [r.data["query"]["i"] for r in rs] == [str(i) for i in range(40)]


async def test_bad_arguments_raise_now():
    with pytest.raises(ValueError, match="unsupported URL scheme"):
        await aio.get("ftp://example.com/")
    with pytest.raises(ValueError, match="no host"):
        await aio.get("http:///path")
    with pytest.raises(ValueError, match="bad HTTP method"):
        await aio.request("GE T", "http://127.0.0.1/")
    with pytest.raises(ValueError, match="CR/LF"):
        await aio.get("http://127.0.0.1/", headers={"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(ValueError, match="timeout"):
        aquests.Session(timeout=0)
    with pytest.raises(TypeError, match="auth"):
        await aio.get("http://127.0.0.1/", auth=42)



async def test_idle_connections_expire(app):
    async with aquests.Session(idle_timeout=0.2) as s:
        first = (await s.get(f"{app.url}/echo")).data["client_port"]
        assert s.client.pools.count() == 1
        await asyncio.sleep(0.45)
        assert s.client.pools.count() == 0  # the reaper closed it
        assert (await s.get(f"{app.url}/echo")).data["client_port"] != first


async def test_connections_per_origin_are_bounded(app):
    async with aquests.Session(max_per_origin=2) as s:
        rs = await asyncio.gather(*(s.get(f"{app.url}/echo?slow=1") for _ in range(8)))
        assert all(r.status_code == 200 for r in rs)
        assert len({r.data["client_port"] for r in rs}) <= 2
    with pytest.raises(ValueError, match="max_per_origin"):
        aquests.Session(max_per_origin=0)


async def test_stream_read_timeout(app):
    async with aquests.Session(timeout=0.3) as s:
        r = await s.get(f"{app.url}/big", params={"size": 1024}, stream=True)
        assert await r.stream.read() == b"x" * 1024

    async def stall(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(2)
        writer.close()
    async with raw_server([stall]) as url, aquests.Session(timeout=0.3) as s:
        r = await s.get(url, stream=True)
        assert await r.stream.read_chunk() == b"abc"
        with pytest.raises(TimeoutError):
            await r.stream.read_chunk()


async def test_framing_headers_are_ours(app):
    r = await aio.post(f"{app.url}/echo", {"a": 1}, headers={"Host": "example.test", "Content-Length": "999"})
    assert r.data["headers"]["host"] == "example.test"
    assert r.data["headers"]["content-length"] == "8" and r.data["body"] == '{"a": 1}'
