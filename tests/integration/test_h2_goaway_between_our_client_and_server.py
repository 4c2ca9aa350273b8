"""Our HTTP/2 client against our server's graceful shutdown: the server's GOAWAY names the streams it
still answers, and aquests reads those answers to the end instead of failing them."""
from __future__ import annotations

import asyncio
import threading

import aquests
from skitai.http2 import goaway_all
from tests.skitai_core.h2ws_support import h2_server


async def test_aquests_requests_in_flight_at_skitais_goaway_complete():
    gate, both = threading.Event(), threading.Event()
    arrived = []

    def app(environ, start_response):
        if environ["PATH_INFO"].startswith("/slow"):
            arrived.append(environ["PATH_INFO"])
            if len(arrived) == 2:
                both.set()
            gate.wait(5)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [environ["PATH_INFO"].encode() * 20_000]

    loop = asyncio.get_running_loop()
    with h2_server(app=app, threads=4) as srv:
        try:
            async with aquests.Session(http2=True, timeout=5) as s:
                calls = [asyncio.ensure_future(s.get(f"{srv.url}/slow{i}")) for i in (1, 2)]
                assert await loop.run_in_executor(None, both.wait, 3)
                await loop.run_in_executor(None, srv.call, goaway_all)   # GOAWAY, then the answers
                async with asyncio.timeout(2):                           # the client has read the GOAWAY
                    while not any(c.goaway for p in s.client.pools.pools.values() for c in p.h2conns):
                        await asyncio.sleep(0.005)
                gate.set()
                for i, r in zip((1, 2), await asyncio.gather(*calls)):
                    assert r.status_code == 200 and r.content == f"/slow{i}".encode() * 20_000, r.reason
                r = await s.get(f"{srv.url}/after")                        # on a new connection
                assert r.status_code == 200 and r.version == "2"
        finally:
            gate.set()
