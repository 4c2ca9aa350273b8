"""Clusters from a WSGI app: ``@name`` calls, ``.lb`` fail-over, dead members, ``.map``, weights, and the
``skitai.alias(...)`` / ``run(clusters=...)`` forms through the launch API, for every PROTO_* type."""
from __future__ import annotations

import collections
import contextlib
import time

import pytest

import skitai
from skitai import launch, was
from skitai.runner import Running
from skitai.services import binding
from tests.integration.was_support import (echo_backends, echo_dispatch, front, get_json, routed, tls_server_context,
                                           ws_echo_backend, xmlrpc_backend)
from tests.support.net import free_port
from tests.support.server import ServerThread


def hostport(url: str) -> str:
    return url.split("//", 1)[1]


def test_lb_fails_over_and_marks_the_dead_member():
    dead = f"127.0.0.1:{free_port()}"
    with echo_backends(2) as live:
        members = [hostport(s.url) for s in live] + [dead]

        def lb(env):
            out = []
            for _ in range(40):                  # members are picked at random: the dead one comes up soon
                r = was.get.lb("@web/x").getwait(5)
                out.append([r.status, r.status_code, r.data["port"] if r.status == 3 else None])
            return {"calls": out, "status": binding.server_context().clusters["web"].status()}

        with front(routed({"/lb": lb}), {"web": ("http", members)}) as url:
            d = get_json(url + "/lb")
    assert all(c[:2] == [3, 200] for c in d["calls"]), d["calls"]
    assert {c[2] for c in d["calls"]} <= {s.port for s in live}
    by_addr = {m["address"]: m for m in d["status"]["members"]}
    down = by_addr[dead]
    assert down["dead"] and down["failures"] == 1 and down["requests"] == 1   # tried once, then backed off
    assert down["retry_in"] > 50 and "refused" in down["last_error"].lower()
    assert d["status"]["live"] == 2


def test_at_address_means_lb_and_weights_spread_the_load():
    with echo_backends(2) as (heavy, light):
        members = [hostport(heavy.url) + " 3", hostport(light.url) + " 1"]

        def spread(env):
            ports = collections.Counter(was.get("@w/x").getwait(5).data["port"] for _ in range(120))
            return {str(k): v for k, v in ports.items()}

        with front(routed({"/s": spread}), {"w": ("http", members)}) as url:
            d = get_json(url + "/s")
    assert d[str(heavy.port)] > d.get(str(light.port), 0) * 1.5, d


def test_map_sends_to_every_live_member_and_results_are_iterable():
    with echo_backends(3) as servers, xmlrpc_backend() as r1, xmlrpc_backend() as r2:
        def mapped(env):
            results = was.get.map("@all/m?x=1").getswait(5)
            rpc = was.rpc.map("@rpcs/RPC2").search("bach").getswait(5)
            one = was.rpc.lb("@rpcs/RPC2").add(2, 3).getwait(5)
            try:
                was.get.map("@all/m").getwait(5)
            except ValueError as exc:
                err = str(exc)
            return {"len": len(results), "status": results.status, "codes": results.status_code,
                    "ports": sorted(r.data["port"] for r in results), "rpc": rpc.data, "one": one.data,
                    "getwait_error": err}

        clusters = {"all": ("http", [hostport(s.url) for s in servers]), "rpcs": ("rpc", [r1, r2])}
        with front(routed({"/m": mapped}), clusters) as url:
            d = get_json(url + "/m")
    assert d["len"] == 3 and d["status"] == [3, 3, 3] and d["codes"] == [200, 200, 200]
    assert d["ports"] == sorted(s.port for s in servers)
    assert d["rpc"] == [["bach-1", "bach-2"]] * 2 and d["one"] == 5
    assert "getswait" in d["getwait_error"]


def test_map_reports_a_failing_member_in_its_results():
    dead = f"127.0.0.1:{free_port()}"
    with echo_backends(1) as (live,):
        def mapped(env):
            results = was.get.map("@m/x").getswait(5)
            return sorted([r.status, r.status_code] for r in results)

        with front(routed({"/m": mapped}), {"m": ("http", [hostport(live.url), dead])}) as url:
            assert get_json(url + "/m") == [[2, 732], [3, 200]]


@pytest.fixture
def fresh_launch(tmp_path):
    launch.reset()
    launch.config.workdir = str(tmp_path)
    yield launch.config
    launch.reset()


def test_alias_and_run_clusters_forms_for_every_proto_type(fresh_launch, tmp_path):
    """skitai.alias(...) and run(clusters=...) fill the Config the server builds its clusters from."""
    pytest.importorskip("trustme")
    ctx, ca_file = tls_server_context(tmp_path)          # one test CA for the https and wss members
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(ServerThread(echo_dispatch()))
        tls = stack.enter_context(ServerThread(echo_dispatch(), ssl=ctx))
        ws_addr = stack.enter_context(ws_echo_backend())
        wss_addr = stack.enter_context(ws_echo_backend(ctx))
        rpc_addr = stack.enter_context(xmlrpc_backend())

        def calls(env):
            return {
                "http": was.get("@h/a").getwait(5).data["path"],
                "https": was.get("@hs/b").getwait(5).data["path"],
                "ws": was.ws("@sock/echo", "ping").getwait(5).data,
                "wss": was.ws("@wss/echo", "secret").getwait(5).data,
                "rpc": was.rpc("@r/RPC2").add(20, 22).getwait(5).data,
                "h3": was.get("@h3/c").getwait(5).data["path"],
                "h4": was.get.lb("@h4/d").getwait(5).data["path"],
                "types": {n: c.ctype for n, c in binding.server_context().clusters.items()},
                "ssl": {n: c.ssl for n, c in binding.server_context().clusters.items()},
            }

        skitai.mount("/", routed({"/c": calls}))
        skitai.alias("@h", skitai.PROTO_HTTP, hostport(plain.url), role="admin", source="127.0.0.0/8")
        skitai.alias("@hs", skitai.PROTO_HTTP, [hostport(tls.url)], ssl=True)
        skitai.alias("@sock", skitai.PROTO_WS, ws_addr)
        config = launch.apply_run(address="127.0.0.1", port=0, threads=2, clusters={
            "@r": ("rpc", [rpc_addr]),
            "@wss": (skitai.PROTO_WSS, [wss_addr]),
            "@hs2": (skitai.PROTO_HTTPS, ["127.0.0.1:2 2"], "", "", True),
            "@h3": (skitai.PROTO_HTTP, [hostport(plain.url)], "admin"),
            "@h4": (skitai.PROTO_HTTP, hostport(plain.url), "ops", "10.0.0.0/8,192.168.1/24"),
        })
        config.extra["was"] = {"verify": ca_file}
        forms = {n: (c.role, c.source, c.ssl) for n, c in config.clusters.items()}
        assert forms["h"] == ("admin", "127.0.0.0/8", False) and forms["hs"] == ("", "", True)
        assert forms["h3"] == ("admin", "", False) and forms["h4"] == ("ops", "10.0.0.0/8,192.168.1/24", False)
        assert forms["r"] == ("", "", False) and forms["hs2"] == ("", "", True)
        with Running(config) as srv:
            d = get_json(f"http://127.0.0.1:{srv.port}/c")
    assert d["http"] == "/a" and d["https"] == "/b" and d["ws"] == "ping" and d["rpc"] == 42
    assert d["wss"] == "secret"
    assert d["h3"] == "/c" and d["h4"] == "/d"
    assert d["types"] == {"h": "http", "hs": "http", "sock": "ws", "r": "rpc", "wss": "wss", "hs2": "https",
                          "h3": "http", "h4": "http"}
    assert d["ssl"]["hs"] and d["ssl"]["wss"] and d["ssl"]["hs2"] and not d["ssl"]["h"]


def test_db_alias_forms(fresh_launch, tmp_path, pg_server, redis_server, mongo_server):
    """DB_* aliases: member strings give server, database and credentials (SK-03, SK-52)."""
    import sqlite3

    db1, db2 = tmp_path / "a.db", tmp_path / "b.db"
    for i, path in enumerate((db1, db2)):
        with sqlite3.connect(path) as c:
            c.execute("CREATE TABLE t (v INTEGER)")
            c.execute("INSERT INTO t VALUES (?)", (i,))

    def calls(env):
        lite = sorted(r.data[0][0] for r in was.sqlite3.map("@lite").execute("SELECT v FROM t").getswait(5))
        pg = was.postgresql("@pg").execute("SELECT 40 + 2 AS answer").getwait(5)
        was.redis("@rd").set("was-key", "v1").wait(5)
        rd = was.redis("@rd").get("was-key").getwait(5)
        was.mongodb("@mg").insert("things", {"name": "n1"}).wait(5)
        mg = was.mongodb("@mg").findone("things", {"name": "n1"}).getwait(5)
        db = was.db("@pg2").execute("SELECT 1 AS one").getwait(5)
        return {"lite": lite, "pg": pg.data[0].answer, "rd": rd.data.decode(), "mg": mg.data["name"],
                "db": db.data[0][0], "status": [pg.status, rd.status, mg.status]}

    skitai.mount("/", routed({"/db": calls}))
    skitai.alias("@lite", skitai.DB_SQLITE3, [str(db1), str(db2)])
    skitai.alias("@pg", skitai.DB_PGSQL, f"{pg_server.server}/postgres/postgres")
    config = launch.apply_run(address="127.0.0.1", port=0, threads=2, clusters={
        "@rd": (skitai.DB_REDIS, f"{redis_server.server}/0"),
        "@mg": (skitai.DB_MONGODB, [f"{mongo_server.server}/wastest"]),
        "@pg2": ("postresql", [f"{pg_server.server}/postgres/postgres"]),     # the spec's own spelling
    })
    with Running(config) as srv:
        d = get_json(f"http://127.0.0.1:{srv.port}/db")
    assert d == {"lite": [0, 1], "pg": 42, "rd": "v1", "mg": "n1", "db": 1, "status": [3, 3, 3]}


def test_timed_out_waits_name_the_member_and_keep_the_answers_that_came():
    fast, slow = ServerThread(echo_dispatch()).start(), ServerThread(echo_dispatch(1.0)).start()
    try:
        def waits(env):
            results = was.get.map("@mixed/x").getswait(0.4)
            lb = was.get("@slow/x").getwait(0.3)
            return {"map": sorted([r.status, r.status_code, r.node] for r in results),
                    "lb": [lb.status, lb.status_code, lb.node]}

        clusters = {"mixed": ("http", [hostport(fast.url), hostport(slow.url)]), "slow": ("http", hostport(slow.url))}
        with front(routed({"/w": waits}), clusters) as url:
            d = get_json(url + "/w")
        time.sleep(0.7)                  # let the slow backend's handlers end before it stops
    finally:
        fast.stop()
        slow.stop()
    assert d["map"] == sorted([[3, 200, hostport(fast.url)], [1, 730, hostport(slow.url)]])
    assert d["lb"] == [1, 730, hostport(slow.url)]
