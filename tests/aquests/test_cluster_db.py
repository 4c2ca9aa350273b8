"""DB stubs with "@name" servers: one member per call, fail-over on connection errors, not on SQL errors."""
from __future__ import annotations

import sqlite3

import pytest

import aquests
from aquests import codes
from tests.aquests.test_cluster_api import registry_fixture  # noqa: F401 - the "registry" fixture
from tests.aquests.test_cluster_http import refused_port

pytestmark = pytest.mark.usefixtures("close_pools")


def test_sqlite_cluster_spreads_queries(tmp_path, registry):
    paths = []
    for label in ("one", "two"):
        path = tmp_path / f"{label}.db"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE t (name TEXT)")
            db.execute("INSERT INTO t VALUES (?)", (label,))
        paths.append(str(path))
    registry("@photos", aquests.DB_SQLITE3, paths)
    got = []
    aquests.configure(workers=4, callback=got.append, timeout=5)
    for _ in range(20):
        aquests.sqlite3("@photos").execute("SELECT name FROM t")
    aquests.fetchall()
    assert len(got) == 20 and all(r.status_code == 200 for r in got)
    names = {r.data[0].name for r in got}
    assert names == {"one", "two"}
    assert {r.meta["node"] for r in got} == set(paths)


async def test_redis_cluster_fails_over(redis_server, registry):
    dead = refused_port()
    registry("@cache", aquests.DB_REDIS, [f"127.0.0.1:{dead}/0 50", f"{redis_server.server}/0 1"])
    stub = aquests.redis("@cache")
    for i in range(6):
        assert (await stub.set(f"cluster-k{i}", "v")).status_code == 200
    resp = await stub.get("cluster-k5")
    assert resp.status_code == 200 and resp.data == b"v"
    st = aquests.get_cluster("cache").status()["members"]
    assert st[0]["dead"] and st[0]["failures"] == 1
    assert st[1]["requests"] == 7


async def test_postgresql_cluster_and_sql_errors(pg_server, registry):
    registry("@mydb", aquests.DB_PGSQL, [f"127.0.0.1:{refused_port()}/postgres/postgres 10",
                                         f"{pg_server.server}/postgres/postgres"])
    db = aquests.postgresql("@mydb")
    resp = await db.execute("SELECT 1 AS one")
    assert resp.status_code == 200 and resp.data[0].one == 1
    before = aquests.get_cluster("mydb").status()["members"][1]["requests"]
    bad = await db.execute("SELECT * FROM no_such_table")
    assert bad.status_code == codes.DB_ERROR
    st = aquests.get_cluster("mydb").status()["members"]
    assert st[1]["requests"] == before + 1 and not st[1]["dead"]


def test_db_cluster_type_checked(registry):
    registry("@web", "http", ["127.0.0.1:1"])
    with pytest.raises(ValueError, match="not '\\*redis'"):
        aquests.redis("@web")
    registry("@r", aquests.DB_REDIS, ["127.0.0.1:1"])
    with pytest.raises(ValueError, match="'@name'"):
        aquests.redis("@r/x")
    with pytest.raises(ValueError, match="no cluster named @nope"):
        aquests.pg("@nope")
