"""PostgreSQL through psycopg2's async mode, against a real server."""
from __future__ import annotations

import asyncio
import time

import pytest

import aquests
from aquests import codes
from aquests.dbapi.postgresql import PostgreSQL
from aquests.dbapi.response import DBError
from tests.support import services
from tests.support.net import free_port

pytestmark = pytest.mark.usefixtures("close_pools")

AUTH = ("postgres", "")


def make(pg_server, **kw) -> PostgreSQL:
    return aquests.aio.postgresql(pg_server.server, "postgres", AUTH, **kw)


async def test_rows_have_attribute_index_and_key_access(pg_server):
    db = make(pg_server)
    r = await db.execute("SELECT 'Seoul' AS city, 30 AS t_high, 18 AS t_low")
    assert r.status_code == 200 and r.code == 200 and r.ok
    row = r.data[0]
    assert (row.city, row.t_high, row.t_low) == ("Seoul", 30, 18)
    assert row[0] == "Seoul" and row["t_low"] == 18 and row == ("Seoul", 30, 18)
    assert [d[0] for d in r.description] == ["city", "t_high", "t_low"]
    assert row.asdict() == {"city": "Seoul", "t_high": 30, "t_low": 18}
    with pytest.raises(AttributeError, match="no column 'nope'"):
        _ = row.nope


async def test_parameters_and_writes(pg_server):
    db = make(pg_server)
    await db.execute("DROP TABLE IF EXISTS weather")
    r = await db.execute("CREATE TABLE weather (city text, t_high int, t_low int)")
    assert r.ok and r.data == []
    r = await db.execute("INSERT INTO weather VALUES (%s, %s, %s), (%s, %s, %s)",
                         ("Seoul", 30, 18, "Busan", 28, 21))
    assert r.ok and r.rowcount == 2
    r = await db.execute("SELECT city FROM weather WHERE t_low > %(low)s ORDER BY city", {"low": 20})
    assert [row.city for row in r.data] == ["Busan"]
    # a quote in a parameter is data, not SQL
    r = await db.execute("SELECT %s AS s", ("it's; DROP TABLE weather",))
    assert r.data[0].s == "it's; DROP TABLE weather"


async def test_bad_sql_is_a_db_error_and_connection_is_reused(pg_server):
    db = make(pg_server, pool_size=1)
    r = await db.execute("SELEC 1")
    assert r.status_code == codes.DB_ERROR and not r.ok
    assert r.expt_class.__name__ == "SyntaxError" and "SELEC" in r.expt_str
    assert r.code == codes.DB_ERROR and r.msg == r.reason and r.msg.startswith("Database Error: ")
    assert r.data is None and r.description is None
    with pytest.raises(DBError, match="740"):
        r.raise_for_status()
    r = await db.execute("SELECT 2 AS n")
    assert r.data[0].n == 2
    assert db.pool.opened == 1  # the error did not cost the connection


async def test_bad_arguments_raise_at_call_time(pg_server):
    db = make(pg_server)
    with pytest.raises(TypeError, match="params"):
        await db.execute("SELECT %s", 5)
    with pytest.raises(ValueError, match="sql"):
        await db.execute("")
    with pytest.raises(ValueError, match="port"):
        aquests.postgresql("127.0.0.1:notaport", "x")
    with pytest.raises(ValueError, match="timeout"):
        aquests.aio.postgresql("127.0.0.1", "x", timeout=0)


async def test_refused_connection():
    db = aquests.aio.postgresql(f"127.0.0.1:{free_port()}", "postgres", AUTH, timeout=3)
    r = await db.execute("SELECT 1")
    assert r.status_code == codes.CONNECTION_REFUSED, r.reason
    assert "refused" in r.reason.lower()


async def test_auth_failure():
    with services.postgres(password="s3cret") as srv:
        ok = await aquests.aio.postgresql(srv.server, "postgres", ("postgres", "s3cret")).execute("SELECT 1 AS one")
        assert ok.data[0].one == 1
        bad = await aquests.aio.postgresql(srv.server, "postgres", ("postgres", "wrong")).execute("SELECT 1")
        assert bad.status_code == codes.DB_ERROR
        assert "password authentication failed" in bad.reason


async def test_query_timeout_drops_the_connection_and_pool_goes_on(pg_server):
    db = make(pg_server, pool_size=1)
    t0 = time.monotonic()
    r = await db.execute("SELECT pg_sleep(5)", timeout=0.3)
    assert r.status_code == codes.TIMEOUT
    assert time.monotonic() - t0 < 2
    r = await db.execute("SELECT 1 AS one")
    assert r.ok and r.data[0].one == 1
    assert db.pool.opened == 2


async def test_one_query_in_flight_per_connection(pg_server):
    db = make(pg_server, pool_size=3)
    watcher = aquests.aio.postgresql(pg_server.server, "template1", AUTH)  # another key, another pool
    tag = f"aq{time.monotonic_ns()}"
    active = []

    async def watch():
        for _ in range(8):
            await asyncio.sleep(0.08)
            r = await watcher.execute("SELECT count(*) AS n FROM pg_stat_activity "
                                      "WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s",
                                      (f"%/*{tag}*/%",))
            active.append(r.data[0].n)
            active.append(("busy", db.pool.busy))

    t0 = time.monotonic()
    results, _ = await asyncio.gather(
        asyncio.gather(*(db.execute(f"SELECT pg_sleep(0.2) /*{tag}*/") for _ in range(9))), watch())
    elapsed = time.monotonic() - t0
    assert all(r.ok for r in results)
    assert db.pool.opened == 3 and watcher.pool is not db.pool
    counts = [a for a in active if not isinstance(a, tuple)]
    assert max(counts) == 3  # three connections, each with exactly one query running
    assert max(b for _, b in (a for a in active if isinstance(a, tuple))) <= 3
    assert elapsed >= 0.55  # 9 sleeps of 0.2 s through 3 connections: at least 3 rounds


async def test_transaction_commit_rollback_and_failed_statement(pg_server):
    db = make(pg_server)
    await db.execute("DROP TABLE IF EXISTS acct; CREATE TABLE acct (id int PRIMARY KEY, v int)")
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO acct VALUES (1, 10)")
        await tx.execute("INSERT INTO acct VALUES (2, 20)")
        inside = await tx.execute("SELECT count(*) AS n FROM acct")
        assert inside.data[0].n == 2
    assert tx.committed is True

    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO acct VALUES (3, 30)")
            raise RuntimeError("abort")
    assert tx.committed is False

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO acct VALUES (4, 40)")
        dup = await tx.execute("INSERT INTO acct VALUES (1, 99)")
        assert dup.status_code == codes.DB_ERROR and "duplicate key" in dup.reason
    assert tx.committed is False

    with pytest.raises(DBError):
        async with db.transaction() as tx:
            (await tx.execute("INSERT INTO acct VALUES (5, 50), (5, 50)")).raise_for_status()

    r = await db.execute("SELECT id FROM acct ORDER BY id")
    assert [row.id for row in r.data] == [1, 2]


async def test_transaction_pins_one_connection(pg_server):
    db = make(pg_server, pool_size=2)
    async with db.transaction() as tx:
        a = await tx.execute("SELECT pg_backend_pid() AS pid")
        b = await tx.execute("SELECT pg_backend_pid() AS pid")
        assert a.data[0].pid == b.data[0].pid
        assert db.pool.busy == 1
    assert db.pool.busy == 0


async def test_server_killed_mid_pool_then_pool_recovers(pg_server):
    db = make(pg_server, pool_size=4, timeout=5)
    rs = await asyncio.gather(*(db.execute("SELECT pg_sleep(0.05), 1 AS one") for _ in range(4)))
    assert all(r.ok for r in rs) and db.pool.idle == 4
    try:
        pg_server.kill()
        await asyncio.sleep(0.1)  # idle connections notice the EOF through their reader
        r = await db.execute("SELECT 1 AS one")
        assert r.status_code in (codes.CONNECTION_REFUSED, codes.CONNECTION_CLOSED), r.reason
    finally:
        pg_server.restart()
    r = await db.execute("SELECT 1 AS one")
    assert r.ok and r.data[0].one == 1, r.reason
    rs = await asyncio.gather(*(db.execute("SELECT 2 AS two") for _ in range(6)))
    assert all(r.ok for r in rs)


async def test_server_killed_during_a_query(pg_server):
    db = make(pg_server, pool_size=2, timeout=5)
    assert (await db.execute("SELECT 1")).ok
    try:
        slow = asyncio.ensure_future(db.execute("SELECT pg_sleep(3)"))
        await asyncio.sleep(0.2)
        pg_server.kill()
        r = await slow
        assert r.status_code == codes.CONNECTION_CLOSED, r.reason
    finally:
        pg_server.restart()
    assert (await db.execute("SELECT 3 AS n")).data[0].n == 3


async def test_idle_connections_expire(pg_server):
    db = make(pg_server, pool_size=2)
    db.idle_timeout = 0.2
    await db.execute("SELECT 1")
    assert db.pool.idle == 1
    deadline = time.monotonic() + 10
    while db.pool.idle and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert db.pool.idle == 0
    assert (await db.execute("SELECT 1 AS one")).ok
    assert db.pool.opened == 2


async def test_stub_is_awaitable_inside_a_loop(pg_server):
    r = await aquests.postgresql(pg_server.server, "postgres", AUTH).execute("SELECT 7 AS n")
    assert r.data[0].n == 7
    r = await aquests.pg(pg_server.server, "postgres", AUTH).excute("SELECT 8 AS n")
    assert r.data[0].n == 8


def test_fetchall_with_callbacks_and_meta(pg_server):
    got = []
    aquests.configure(workers=4, callback=got.append, timeout=5)
    db = aquests.postgresql(pg_server.server, "postgres", AUTH)
    for i in range(6):
        db.execute("SELECT %s AS i, 'Seoul' AS city", (i,))
    aquests.pg(pg_server.server, "postgres", AUTH, meta={"tag": "x"},
               callback=(lambda r, extra: got.append((r, extra)), ("extra",))).excute("SELECT 1 AS n")
    aquests.fetchall()
    plain = [r for r in got if not isinstance(r, tuple)]
    assert sorted(r.data[0].i for r in plain) == list(range(6))
    assert all(r.data[0].city == "Seoul" and r.meta["req_method"] == "execute" for r in plain)
    (resp, extra), = [g for g in got if isinstance(g, tuple)]
    assert extra == "extra" and resp.meta["tag"] == "x" and resp.data[0].n == 1


def test_configure_timeout_applies_to_queued_queries(pg_server):
    got = []
    aquests.configure(callback=got.append, timeout=0.5)
    aquests.postgresql(pg_server.server, "postgres", AUTH).execute("SELECT pg_sleep(10)")
    t0 = time.monotonic()
    aquests.fetchall()
    assert got[0].status_code == codes.TIMEOUT and got[0].code == 730 and time.monotonic() - t0 < 8
    aquests.configure(callback=got.append)  # the default 10 s
    aquests.postgresql(pg_server.server, "postgres", AUTH).execute("SELECT 1 AS one")
    aquests.fetchall()
    assert got[1].ok and got[1].data[0].one == 1


async def test_transaction_that_cannot_begin_raises_dberror():
    db = aquests.aio.postgresql(f"127.0.0.1:{free_port()}", "postgres", AUTH, timeout=2)
    with pytest.raises(DBError) as ei:
        async with db.transaction():
            pass
    assert ei.value.response.status_code == codes.CONNECTION_REFUSED


async def test_host_names_are_resolved_off_the_loop(pg_server):
    r = await aquests.aio.postgresql(f"localhost:{pg_server.port}", "postgres", AUTH).execute("SELECT 1 AS one")
    assert r.data[0].one == 1, r.reason
    r = await aquests.aio.postgresql("no-such-host.invalid", "postgres", AUTH, timeout=5).execute("SELECT 1")
    assert r.status_code == codes.DNS_FAILED, r.reason


async def test_connect_moves_on_to_the_next_address(pg_server):
    # libpq tries each host in turn, on a new socket each time: the first one refuses
    dead = free_port()
    dsn = f"host=127.0.0.1,127.0.0.1 port={dead},{pg_server.port} user=postgres dbname=postgres"
    r = await aquests.aio.postgresql(f"postgresql://?{dsn.replace(' ', '&')}").execute("SELECT 1 AS one")
    assert r.ok, r.reason
    assert r.data[0].one == 1


async def test_a_pool_busy_for_the_whole_timeout_says_so(pg_server):
    # before: "no answer within the timeout", as if the server were slow
    db = make(pg_server, pool_size=1)
    slow = asyncio.ensure_future(db.execute("SELECT pg_sleep(1.5)"))
    await asyncio.sleep(0.2)
    r = await db.execute("SELECT 1", timeout=0.3)
    assert r.status_code == codes.TIMEOUT and "all 1 connections of the pool busy" in r.reason, r.reason
    with pytest.raises(DBError, match="pool busy"):
        async with db.transaction(timeout=0.3):
            pass
    assert (await slow).ok
