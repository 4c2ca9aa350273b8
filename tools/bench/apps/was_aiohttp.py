"""Issue 4 peer: the same two routes as aiohttp handlers with one shared ClientSession.

/fan5 gathers its five calls. Usage: python was_aiohttp.py PORT (BENCH_BACKEND = backend URL).
"""
import asyncio
import os
import sys

import aiohttp
from aiohttp import web

BACKEND = os.environ["BENCH_BACKEND"]


async def _fetch(session: aiohttp.ClientSession) -> bytes:
    async with session.get(BACKEND) as r:
        return await r.read()


async def one(request: web.Request) -> web.Response:
    return web.Response(body=await _fetch(request.app["session"]), content_type="text/plain")


async def fan5(request: web.Request) -> web.Response:
    bodies = await asyncio.gather(*(_fetch(request.app["session"]) for _ in range(5)))
    return web.Response(body=b"".join(bodies), content_type="text/plain")


async def _session(app: web.Application):
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    yield
    await app["session"].close()


def main(port: int) -> None:
    app = web.Application()
    app.cleanup_ctx.append(_session)
    app.router.add_get("/one", one)
    app.router.add_get("/fan5", fan5)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
