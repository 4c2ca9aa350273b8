"""The HTTP/2 client and the server's GOAWAY (RFC 9113 6.8), and the cap on HTTP/2 connections per origin,
against small servers of the ``h2`` package on real sockets (see test_hardening_h2_ws_clients)."""
from __future__ import annotations

import asyncio
import time

import h2.settings
import pytest
from hyperframe.frame import GoAwayFrame

import aquests
from aquests import codes

from .test_hardening_h2_ws_clients import Servers, _ok

ONE_STREAM = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1}


@pytest.fixture
async def servers():
    s = Servers()
    yield s
    s.close()
    await aquests.aio.close()


def _answer(server, sid: int, body: bytes) -> None:
    """200 with ``body`` in frames the default frame size allows, then flushed."""
    server.h2.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
    for i in range(0, len(body), 16384):
        server.h2.send_data(sid, body[i:i + 16384], end_stream=i + 16384 >= len(body))
    server.flush()


async def test_h2_streams_up_to_the_goaway_last_stream_id_still_complete(servers):
    body = bytes(range(256)) * 400                  # 100 KiB in several DATA frames, after the GOAWAY

    def goaway_then_answer(server, sid, _h):
        if server is not servers.protocols[0]:
            _ok(server, sid, b"fresh")
            return
        if len(server.requests) == 2:
            first = server.requests[0]
            # framed by hand: h2's own close_connection() would forbid the server to answer afterwards
            server.transport.write(GoAwayFrame(0, last_stream_id=first, error_code=0).serialize())
            asyncio.get_running_loop().call_later(0.02, _answer, server, first, body)

    url = await servers.start(goaway_then_answer)
    async with aquests.Session(http2=True, timeout=5) as s:
        r1, r2 = await asyncio.gather(s.get(url + "/1"), s.get(url + "/2"))
        assert r1.status_code == 200 and r1.content == body, r1.reason      # at or below last_stream_id
        assert r2.status_code == 200 and r2.content == b"fresh", r2.reason  # above it: resent elsewhere
        r3 = await s.get(url + "/3")                                         # new requests: new connection
        assert r3.status_code == 200 and r3.content == b"fresh"
        assert len(servers.protocols) == 2
        pools = list(s.client.pools.pools.values())
        assert [len(p.h2conns) for p in pools] == [1] and pools[0].h2conns[0].reusable


async def test_h2_connections_per_origin_are_capped_by_max_per_origin(servers):
    def slow(server, sid, _h):
        asyncio.get_running_loop().call_later(0.03, _answer, server, sid, b"ok")

    url = await servers.start(slow, settings=ONE_STREAM)
    async with aquests.Session(http2=True, max_per_origin=2, timeout=5) as s:
        rs = await asyncio.gather(*(s.get(url + f"/{i}") for i in range(8)))
        assert [r.status_code for r in rs] == [200] * 8, [r.reason for r in rs]
        assert len(servers.protocols) == 2               # TCP connections the server accepted
        assert s.client.pools.count() <= 2


async def test_h2_request_waiting_at_the_connection_cap_keeps_its_timeout(servers):
    url = await servers.start(lambda *a: None, settings=ONE_STREAM)     # never answers
    async with aquests.Session(http2=True, max_per_origin=1, timeout=0.3) as s:
        t0 = time.monotonic()
        rs = await asyncio.gather(s.get(url + "/hang"), s.get(url + "/queued"))
        assert [r.status_code for r in rs] == [codes.TIMEOUT] * 2, [r.reason for r in rs]
        assert time.monotonic() - t0 < 1.5
        assert len(servers.protocols) == 1
