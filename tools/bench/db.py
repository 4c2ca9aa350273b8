"""Issue 3: PostgreSQL 20000 ``SELECT 1`` on 10 connections vs asyncpg; Redis 20000 GET/SET vs redis-py.

PostgreSQL and Redis are started as SERVICES.md says (tests/support/services.py) and pinned to the
server core; each client runs in its own process on the client core. Best of 3 runs.
Usage: python db.py
"""
from __future__ import annotations

import os
import sys
import time

from harness import MAIN_PY, PEER_PY, ROOT, SERVER_CPU, Table, Unavailable, run_client, save

N, CONCURRENCY = "20000", "10"


def _pin(pid: int) -> None:
    """Pin a server (and the children it forks from now on) to the server core."""
    try:
        os.sched_setaffinity(pid, {int(SERVER_CPU)})
    except OSError:
        pass


def _services():
    sys.path.insert(0, str(ROOT))
    try:
        from tests.support import services
    except Exception as exc:  # noqa: BLE001
        raise Unavailable(f"tests/support/services.py not importable: {exc}") from None
    return services


def _rows(table: Table, kind: str, target: str, peer: str) -> None:
    common = ("--n", N, "--concurrency", CONCURRENCY)
    port = target.rsplit(":", 1)[1]

    def ours(api: str):
        return lambda: run_client(MAIN_PY, "db_aquests.py", "--kind", kind, "--server", target, "--api", api, *common)

    table.measure_all([
        (peer, lambda: run_client(PEER_PY, "db_peers.py", "--kind", kind, "--port", port, *common)),
        ("aquests (async)", ours("async")),
        ("aquests (standalone)", ours("standalone")),
    ], rounds=3)


def main() -> None:
    started = time.time()
    pg = Table("db_pg", "PostgreSQL: 20000 SELECT 1 on 10 connections", "asyncpg",
               unit="q/s", note="one query in flight per connection; best of 3 interleaved rounds")
    rd = Table("db_redis", "Redis: 20000 GET/SET (alternating) on 10 connections, no pipelining",
               "redis-py asyncio", unit="ops/s", note="one command in flight per connection; best of 3 interleaved rounds")
    try:
        services = _services()
        for table, start, kind, peer in ((pg, services.start_postgres, "pg", "asyncpg"),
                                         (rd, services.start_redis, "redis", "redis-py asyncio")):
            try:
                srv = start()
            except Exception as exc:  # noqa: BLE001
                table.rows.append({"name": peer, "rps": None, "reason": f"server did not start: {exc}"})
                continue
            try:
                _pin(srv.proc.pid)
                _rows(table, kind, srv.server, peer)
            finally:
                srv.stop()
    except Unavailable as exc:
        print(f"not available: {exc}")
    save("db", [pg, rd], started)


if __name__ == "__main__":
    main()
