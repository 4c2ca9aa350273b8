"""Issue 3 peers: PostgreSQL ``SELECT 1`` by asyncpg, Redis GET/SET by redis-py's asyncio client.

Both spread N commands over C connections, one command in flight per connection, no pipelining.
Usage (peer venv): python db_peers.py --kind pg --port P [--n 20000] [--concurrency 10]
                   python db_peers.py --kind redis --port P [--n 20000] [--concurrency 10]
"""
from __future__ import annotations

import asyncio

from common import Timer, args, report


async def _spread(workers, n: int) -> tuple[int, int]:
    """Run ``n`` calls spread over the given per-connection coroutine factories."""
    per = [n // len(workers) + (1 if i < n % len(workers) else 0) for i in range(len(workers))]
    results = await asyncio.gather(*(w(k) for w, k in zip(workers, per)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


async def with_asyncpg(port: int, n: int, concurrency: int) -> None:
    import asyncpg

    conns = [await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
             for _ in range(concurrency)]

    def worker(conn):
        async def run(k: int) -> tuple[int, int]:
            ok = 0
            for _ in range(k):
                ok += await conn.fetchval("SELECT 1") == 1
            return ok, k - ok
        return run

    await conns[0].fetchval("SELECT 1")
    with Timer() as t:
        ok, err = await _spread([worker(c) for c in conns], n)
    for c in conns:
        await c.close()
    report(ok, err, t.seconds, lib=f"asyncpg {asyncpg.__version__}")


async def with_redis(port: int, n: int, concurrency: int) -> None:
    import redis
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=port, max_connections=concurrency)

    def worker(i: int):
        async def run(k: int) -> tuple[int, int]:
            ok, key = 0, f"bench:{i}"
            for j in range(k):
                if j % 2 == 0:
                    ok += bool(await client.set(key, b"x" * 16))
                else:
                    ok += await client.get(key) == b"x" * 16
            return ok, k - ok
        return run

    await client.ping()
    with Timer() as t:
        ok, err = await _spread([worker(i) for i in range(concurrency)], n)
    await client.aclose()
    report(ok, err, t.seconds, lib=f"redis-py {redis.__version__} asyncio")


if __name__ == "__main__":
    a = args(("--kind", {"required": True, "choices": ["pg", "redis"]}), ("--port", {"type": int, "required": True}))
    fn = with_asyncpg if a.kind == "pg" else with_redis
    asyncio.run(fn(a.port, a.n, a.concurrency))
