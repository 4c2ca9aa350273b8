"""SQLite3 in a worker thread per database file: the loop never blocks."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

import aquests
from aquests import codes
from aquests.dbapi import sqlite3 as sq

SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
        "SELECT count(*) AS n FROM c")


@pytest.fixture
def dbpath(tmp_path):
    yield str(tmp_path / "test.db")
    sq.stop_all()


async def test_queries_parameters_rows(dbpath):
    db = aquests.aio.sqlite3(dbpath)
    assert (await db.execute("CREATE TABLE weather (city TEXT, t_high INT, t_low INT)")).ok
    ins = await db.execute("INSERT INTO weather VALUES (?, ?, ?)", ("Seoul", 30, 18))
    assert ins.rowcount == 1 and ins.lastrowid == 1
    await db.execute("INSERT INTO weather VALUES (:c, :h, :l)", {"c": "Busan", "h": 28, "l": 21})
    r = await db.execute("SELECT city, t_high, t_low FROM weather ORDER BY city")
    assert [(row.city, row.t_high, row["t_low"]) for row in r.data] == [("Busan", 28, 21), ("Seoul", 30, 18)]
    assert [d[0] for d in r.description] == ["city", "t_high", "t_low"]
    script = await db.execute("CREATE TABLE a (x INT); INSERT INTO a VALUES (1); INSERT INTO a VALUES (2)")
    assert script.ok
    assert (await db.excute("SELECT sum(x) AS s FROM a")).data[0].s == 3


async def test_errors(dbpath, tmp_path):
    db = aquests.aio.sqlite3(dbpath)
    bad = await db.execute("SELEC 1")
    assert bad.status_code == codes.DB_ERROR and "syntax error" in bad.reason
    assert bad.expt_class.__name__ == "OperationalError"
    nodir = await aquests.aio.sqlite3(str(tmp_path / "no" / "such" / "dir.db")).execute("SELECT 1")
    assert nodir.status_code == codes.DB_ERROR and "unable to open" in nodir.reason
    with pytest.raises(TypeError):
        await db.execute("SELECT ?", 1)
    with pytest.raises(ValueError):
        aquests.sqlite3("")


async def test_transaction_is_atomic(dbpath):
    db = aquests.aio.sqlite3(dbpath)
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    ok = await db.transaction(["INSERT INTO t VALUES (1, 'a')", ("INSERT INTO t VALUES (?, ?)", (2, "b"))])
    assert ok.ok
    bad = await db.transaction(["INSERT INTO t VALUES (3, 'c')", ("INSERT INTO t VALUES (?, ?)", (1, "dup"))])
    assert bad.status_code == codes.DB_ERROR and "UNIQUE" in bad.reason
    assert [r.id for r in (await db.execute("SELECT id FROM t ORDER BY id")).data] == [1, 2]


async def test_a_script_in_a_transaction_stays_atomic(dbpath):
    # before: a script of several statements went through executescript(), which COMMITs the open
    # transaction first, so a later failure could not roll back what came before it
    db = aquests.aio.sqlite3(dbpath)
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    bad = await db.transaction(["INSERT INTO t VALUES (1, 'a')",
                                "INSERT INTO t VALUES (2, 'x;y'); INSERT INTO t VALUES (3, 'c') -- ;",
                                "INSERT INTO t VALUES (1, 'dup')"])
    assert bad.status_code == codes.DB_ERROR and "UNIQUE" in bad.reason
    assert (await db.execute("SELECT count(*) AS n FROM t")).data[0].n == 0
    ok = await db.transaction(["INSERT INTO t VALUES (2, 'x;y'); INSERT INTO t VALUES (3, 'c');"])
    assert ok.ok
    assert [r.v for r in (await db.execute("SELECT v FROM t ORDER BY id")).data] == ["x;y", "c"]


async def test_slow_query_does_not_block_the_loop(dbpath):
    db = aquests.aio.sqlite3(dbpath)
    r = await db.execute(SLOW.format(n=600_000))          # real work in the worker thread
    assert r.data[0].n == 600_000
    # a query kept waiting (another connection holds the file's lock) must leave the loop free: it keeps
    # ticking while the query is in flight, however loaded the machine is
    holder = sqlite3.connect(dbpath, isolation_level=None)
    holder.execute("CREATE TABLE t (x INT)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        pending = asyncio.ensure_future(db.execute("SELECT count(*) AS n FROM t"))
        for _ in range(5):
            await asyncio.sleep(0.01)
            assert not pending.done()
    finally:
        holder.execute("COMMIT")
        holder.close()
    r = await pending
    assert r.ok and r.data[0].n == 0


async def test_concurrent_use_of_several_files(tmp_path):
    dbs = [aquests.aio.sqlite3(str(tmp_path / f"db{i}.db")) for i in range(3)]
    try:
        await asyncio.gather(*(d.execute("CREATE TABLE n (v INT)") for d in dbs))
        await asyncio.gather(*(d.execute("INSERT INTO n VALUES (?)", (i,)) for d in dbs for i in range(50)))
        sums = await asyncio.gather(*(d.execute("SELECT count(*) AS c, sum(v) AS s FROM n") for d in dbs))
        assert [(r.data[0].c, r.data[0].s) for r in sums] == [(50, 1225)] * 3
        names = {t.name for t in threading.enumerate() if t.name.startswith("aquests-sqlite3")}
        assert {f"aquests-sqlite3:db{i}.db" for i in range(3)} <= names
    finally:
        sq.stop_all()


async def test_timeout_interrupts_and_the_database_stays_usable(dbpath):
    db = aquests.aio.sqlite3(dbpath)
    t0 = time.monotonic()
    r = await db.execute(SLOW.format(n=500_000_000), timeout=0.3)
    assert r.status_code == codes.TIMEOUT and time.monotonic() - t0 < 2
    assert (await db.execute("SELECT 1 AS one")).data[0].one == 1


async def test_idle_worker_exits(tmp_path):
    db = sq.SQLite3(str(tmp_path / "idle.db"), idle_timeout=0.1)
    assert (await db.execute("SELECT 1")).ok
    deadline = time.monotonic() + 10
    while any(t.name == "aquests-sqlite3:idle.db" for t in threading.enumerate()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not any(t.name == "aquests-sqlite3:idle.db" for t in threading.enumerate())
    assert (await db.execute("SELECT 2 AS two")).data[0].two == 2  # a new worker starts on demand
    sq.stop_all()


def test_fetchall_path(dbpath):
    got = []
    aquests.configure(workers=1, callback=got.append)
    stub = aquests.sqlite3(dbpath)
    stub.execute("CREATE TABLE x (v INT)")
    stub.transaction(["INSERT INTO x VALUES (1)", ("INSERT INTO x VALUES (?)", (2,))])
    stub.excute("SELECT sum(v) AS s FROM x")
    aquests.fetchall()
    assert [r.ok for r in got] == [True, True, True]
    assert got[-1].data[0].s == 3


async def test_queue_limit_per_database(dbpath, monkeypatch):
    monkeypatch.setattr(sq, "MAX_QUEUED", 2)
    # another connection holds the file's exclusive lock, so the worker's first job waits on it and the
    # queue stays full for as long as the test needs, whatever the machine's load
    holder = sqlite3.connect(dbpath, isolation_level=None)
    holder.execute("CREATE TABLE t (x INT)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        db = aquests.aio.sqlite3(dbpath)
        held = [asyncio.ensure_future(db.execute("SELECT count(*) AS n FROM t")) for _ in range(3)]
        await asyncio.sleep(0)
        over = await db.execute("SELECT 1")
        assert over.status_code == codes.REQUEST_FAILED and "waiting" in over.reason
    finally:
        holder.execute("COMMIT")
        holder.close()
    done = await asyncio.gather(*held)
    assert sum(r.ok for r in done) >= 2  # the ones that found room ran
    assert {r.status_code for r in done} <= {200, codes.REQUEST_FAILED}
