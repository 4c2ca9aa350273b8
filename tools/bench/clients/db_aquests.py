"""Issue 3: PostgreSQL ``SELECT 1`` and Redis GET/SET through aquests (project .venv).

--api standalone   ``aquests.configure(workers=C)``, ``aquests.postgresql(...)``/``aquests.redis(...)``
                   stubs, ``fetchall()`` (the spec's usage)
--api async        ``await PostgreSQL(...).execute(...)`` / ``await Redis(...).execute(...)`` from C tasks
One command in flight per connection, C connections, no pipelining: the same shape as db_peers.py.
"""
from __future__ import annotations

import asyncio

from common import Timer, args, report, unavailable

VALUE = b"x" * 16


def _ok(resp) -> bool:
    return getattr(resp, "status_code", 0) < 300 and not getattr(resp, "expt_class", None)


def _commands(kind: str, n: int, concurrency: int):
    """(method, args) for each command, in the mix db_peers.py sends."""
    for i in range(n):
        if kind == "pg":
            yield "execute", ("SELECT 1",)
        elif (i // concurrency) % 2 == 0:
            yield "set", (f"bench:{i % concurrency}", VALUE)
        else:
            yield "get", (f"bench:{i % concurrency}",)


def standalone(kind: str, server: str, n: int, concurrency: int) -> None:
    import aquests

    factory = getattr(aquests, "postgresql" if kind == "pg" else "redis", None)
    if factory is None:
        unavailable(f"aquests.{'postgresql' if kind == 'pg' else 'redis'} stub not there yet")
    counts = [0, 0]

    def done(resp) -> None:
        counts[0 if _ok(resp) else 1] += 1

    aquests.configure(workers=concurrency, callback=done)
    stub = factory(server, "postgres", ("postgres", "")) if kind == "pg" else factory(server)
    for _ in range(concurrency):  # warm-up: open the connections
        stub.execute("SELECT 1") if kind == "pg" else stub.get("bench:warm")
    aquests.fetchall()
    counts[:] = [0, 0]
    for method, a in _commands(kind, n, concurrency):
        getattr(stub, method)(*a)
    with Timer() as t:
        aquests.fetchall()
    report(counts[0], counts[1] + (n - sum(counts)), t.seconds, api="standalone")


async def awaitable(kind: str, server: str, n: int, concurrency: int) -> None:
    try:
        if kind == "pg":
            from aquests.dbapi.postgresql import PostgreSQL
            db = PostgreSQL(server, "postgres", ("postgres", ""), pool_size=concurrency)
        else:
            from aquests.dbapi.redis import Redis
            db = Redis(server, pool_size=concurrency)
    except ImportError as exc:
        unavailable(f"aquests {kind} client not importable: {exc}")

    async def worker(i: int, k: int) -> tuple[int, int]:
        ok, key = 0, f"bench:{i}"
        for j in range(k):
            if kind == "pg":
                resp = await db.execute("SELECT 1")
                ok += _ok(resp) and resp.data[0][0] == 1
            elif j % 2 == 0:
                ok += _ok(await db.execute("SET", key, VALUE))
            else:
                resp = await db.execute("GET", key)
                ok += _ok(resp) and resp.data == VALUE
        return ok, k - ok

    await asyncio.gather(*(worker(i, 1) for i in range(concurrency)))  # open the connections
    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    with Timer() as t:
        results = await asyncio.gather(*(worker(i, k) for i, k in enumerate(per)))
    report(sum(r[0] for r in results), sum(r[1] for r in results), t.seconds, api="async")


if __name__ == "__main__":
    a = args(("--kind", {"required": True, "choices": ["pg", "redis"]}), ("--server", {"required": True}),
             ("--api", {"default": "async", "choices": ["standalone", "async"]}))
    if a.api == "standalone":
        standalone(a.kind, a.server, a.n, a.concurrency)
    else:
        asyncio.run(awaitable(a.kind, a.server, a.n, a.concurrency))
