"""Database stubs of ``was`` (SK-52) against real PostgreSQL, Redis, the MongoDB-wire server and SQLite
files: direct addresses, ``was.db(DB_*, ...)``, ``wait()`` for statements, errors as status 2, and ``.lb``
fail-over over a database cluster with one member down."""
from __future__ import annotations

import skitai
from skitai import was
from tests.integration.was_support import front, get_json, routed
from tests.support.net import free_port


def test_direct_stubs_of_every_database(tmp_path, pg_server, redis_server, mongo_server):
    lite = str(tmp_path / "direct.db")

    def calls(env):
        pg = was.postgresql(pg_server.server, "postgres", ("postgres", ""))
        pg.execute("CREATE TABLE IF NOT EXISTS cities (name text)").wait(5)
        pg.execute("INSERT INTO cities VALUES (%s)", ("New York",)).wait(5)
        rows = pg.excute("SELECT name FROM cities").getwait(5)            # the spec's spelling works too
        bad = pg.execute("SELECT * FROM no_such_table").getwait(5)
        try:
            pg.execute("SELECT * FROM no_such_table").wait(5)
            raised = None
        except Exception as exc:
            raised = type(exc).__name__
        swapped = was.db(skitai.DB_PGSQL, pg_server.server, "postgres", ("postgres", "")).execute(
            "SELECT 7 AS n").getwait(5)
        rd = was.redis(redis_server.server)
        rd.set("k", "v").wait(5)
        got = rd.get("k").getwait(5)
        mg = was.mongodb(mongo_server.server, "wasdb")
        mg.insert("docs", [{"n": 1}, {"n": 2}]).wait(5)
        count = mg.count("docs", {}).getwait(5)
        sq = was.sqlite3(lite)
        sq.execute("CREATE TABLE IF NOT EXISTS t (v)").wait(5)
        sq.execute("INSERT INTO t VALUES (?)", (9,)).wait(5)
        srows = sq.execute("SELECT v FROM t").getwait(5)
        return {"pg": [r.name for r in rows.data], "bad": [bad.status, bad.status_code], "raised": raised,
                "swapped": swapped.data[0].n, "redis": got.data.decode(), "mongo": count.data,
                "sqlite": [list(r) for r in srows.data]}

    with front(routed({"/db": calls})) as url:
        d = get_json(url + "/db")
    assert d["pg"][-1] == "New York"
    assert d["bad"] == [2, 740] and d["raised"] == "DBError"
    assert d["swapped"] == 7 and d["redis"] == "v" and d["mongo"] == 2 and d["sqlite"] == [[9]]


def test_db_lb_fails_over_to_a_live_member(pg_server):
    dead = f"127.0.0.1:{free_port()}/postgres/postgres"
    live = f"{pg_server.server}/postgres/postgres"

    def lb(env):
        out = [was.postgresql.lb("@pgs").execute("SELECT 1 AS one").getwait(5) for _ in range(4)]
        return [[r.status, r.data[0].one if r.status == 3 else None] for r in out]

    with front(routed({"/lb": lb}), {"pgs": ("*postgresql", [dead, live])}) as url:
        assert get_json(url + "/lb") == [[3, 1]] * 4


def test_db_results_can_be_cached(redis_server):
    def cached(env):
        rd = was.redis(redis_server.server)
        rd.set("c", "1").wait(5)
        first = rd.get("c").getwait(5)
        first.cache(60)
        rd.set("c", "2").wait(5)
        again = rd.get("c").getwait(5)                 # from the cache: no round trip
        fresh = was.redis(redis_server.server, use_cache=False).get("c").getwait(5)
        return [first.data.decode(), again.data.decode(), fresh.data.decode(), again is not first]  # a copy

    with front(routed({"/c": cached})) as url:
        assert get_json(url + "/c") == ["1", "1", "2", True]
