"""Issue 3 peers: N small GETs with C in flight, by aiohttp's ClientSession or httpx.AsyncClient.

Usage (peer venv): python http_peers.py --lib aiohttp|httpx --url URL [--n 5000] [--concurrency 64]
"""
from __future__ import annotations

import asyncio

from common import Timer, args, report


async def _drive(fetch, n: int, concurrency: int) -> tuple[int, int]:
    remaining = iter(range(n))
    counts = [0, 0]

    async def worker() -> None:
        for _ in remaining:
            try:
                counts[0 if await fetch() == 200 else 1] += 1
            except Exception:  # noqa: BLE001 - a failed request is counted, not fatal
                counts[1] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts[0], counts[1]


async def with_aiohttp(url: str, n: int, concurrency: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def fetch() -> int:
            async with session.get(url) as r:
                await r.read()
                return r.status

        await fetch()
        with Timer() as t:
            ok, err = await _drive(fetch, n, concurrency)
    report(ok, err, t.seconds, lib=f"aiohttp {aiohttp.__version__}")


async def with_httpx(url: str, n: int, concurrency: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, verify=False) as client:
        async def fetch() -> int:
            r = await client.get(url)
            return r.status_code

        await fetch()
        with Timer() as t:
            ok, err = await _drive(fetch, n, concurrency)
    report(ok, err, t.seconds, lib=f"httpx {httpx.__version__}")


if __name__ == "__main__":
    a = args(("--lib", {"required": True, "choices": ["aiohttp", "httpx"]}), ("--url", {"required": True}))
    asyncio.run({"aiohttp": with_aiohttp, "httpx": with_httpx}[a.lib](a.url, a.n, a.concurrency))
