"""The code samples of the spec's "Skitai 'was' Services" chapter (Load-Balancing, Map-Reducing, Caching Result,
expiring a cached result with ``use_cache``), run as written in their Saddle-free form: a plain WSGI app with
``from skitai import was``, the clusters and mounts given to ``skitai.run(...)`` exactly as the samples do.

``@mysearch`` is three XML-RPC servers over TLS (``'https'``) answering on ``/rpc2``; ``@mydb`` is PostgreSQL
under the spec's own ``'postresql'`` spelling. ``getinfo()`` returns a number no other call ever returned, so a
repeated number proves the answer came from the result cache.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import xmlrpc.client

import pytest
import requests

from skitai import launch, was
from skitai.runner import Running
from tests.integration.was_support import query, tls_server_context, xmlrpc_backend

pytest.importorskip("trustme")
_calls = itertools.count(1)


def _getinfo() -> dict:
    return {"call": next(_calls)}


# -- the samples, as the spec writes them (``was`` imported, arguments from the query string) --------------

def search(env):
    keyword = query(env).get("keyword", "Mozart")
    s = was.rpc.lb("@mysearch/rpc2").search(keyword)
    results = s.getwait(5)
    return results.data


def query_db(env):
    dbo = was.postgresql.lb("@mydb")
    req = dbo.execute("SELECT * FROM CITIES;")
    result = req.getwait(2)
    return [list(row) for row in result.data]


def map_search(env):
    keyword = query(env).get("keyword", "Mozart")
    stub = was.rpc.map("@mysearch/rpc2")
    req = stub.search(keyword)
    results = req.getswait(2)

    all_results = []
    for result in results:
        all_results.extend(result.data)
    return all_results


def caching(env):
    s = was.rpc.lb("@mysearch/rpc2").getinfo()
    result = s.getwait(2)
    if result.status_code == 200:
        result.cache(60)  # 60 seconds

    s = was.rpc.map("@mysearch/rpc2").getinfo()
    results = s.getswait(2)
    # assume @mysearch has 3 members
    if results.status_code == [200, 200, 200]:
        results.cache(60)
    return {"lb": result.data, "map": [r.data for r in results]}


def caching_reraise(env):
    s = was.rpc.map("@mysearch/rpc2").getinfo()
    content = s.getswait(2, reraise=True).data
    s.cache(60)
    return content


def refreshing(env):
    refreshed = False
    if env["REQUEST_METHOD"] == "POST":          # Saddle: was.request.command == "post"
        refreshed = True

    s = was.rpc.lb(
        "@mysearch/rpc2",
        use_cache=not refreshed and True or False
    ).getinfo()
    result = s.getwait(2)
    if result.status_code == 200:
        result.cache(60)  # 60 seconds
    return result.data


ROUTES = {"/search": search, "/query": query_db, "/map": map_search, "/caching": caching,
          "/caching-reraise": caching_reraise, "/refresh": refreshing}


def app(env, start_response):
    body = json.dumps(ROUTES[env["PATH_INFO"]](env)).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# -- the server, started the way the samples do -------------------------------------------------------------

@pytest.fixture(scope="module")
def spec_server(tmp_path_factory, pg_server):
    import psycopg2

    with psycopg2.connect(pg_server.dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS cities; CREATE TABLE cities (name text, t_high int, t_low int);"
                    "INSERT INTO cities VALUES ('New York', 30, 20), ('Seoul', 28, 19);")
    conn.close()
    tmp = tmp_path_factory.mktemp("spec")
    ctx, ca_file = tls_server_context(tmp)
    launch.reset()
    launch.config.workdir = str(tmp)
    try:
        with contextlib.ExitStack() as stack:
            members = [stack.enter_context(xmlrpc_backend(ctx, {"getinfo": _getinfo})) for _ in range(3)]
            pg_host, pg_port = pg_server.server.split(":")
            config = launch.apply_run(
                clusters={
                    '@mysearch':
                    ('https', members),
                    '@mydb':
                    (
                        'postresql',
                        [
                            f"{pg_host}:{pg_port}/postgres/postgres/",
                            f"localhost:{pg_port}/postgres/postgres/",
                        ]
                    )
                },
                mount=[
                    ("/", app),
                    ("/search-proxy", '@mysearch')
                ],
                address="127.0.0.1", port=0, threads=4,
            )
            config.extra["was"] = {"verify": ca_file}          # the members' certificates come from a test CA
            config.extra["proxy"] = {"verify": ca_file}
            with Running(config) as srv:
                yield f"http://127.0.0.1:{srv.port}"
    finally:
        launch.reset()


def get(url: str):
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text[:2000]
    return r.json()


def test_load_balancing_rpc_over_https(spec_server):
    assert get(spec_server + "/search?keyword=Bach") == ["Bach-1", "Bach-2"]
    assert get(spec_server + "/search") == ["Mozart-1", "Mozart-2"]


def test_load_balanced_proxypass_mount(spec_server):
    proxy = xmlrpc.client.ServerProxy(spec_server + "/search-proxy/rpc2")
    assert proxy.search("Haydn") == ["Haydn-1", "Haydn-2"]


def test_load_balanced_database_query(spec_server):
    assert get(spec_server + "/query") == [["New York", 30, 20], ["Seoul", 28, 19]]


def test_map_reducing(spec_server):
    assert get(spec_server + "/map?keyword=Bach") == ["Bach-1", "Bach-2"] * 3


def test_caching_results(spec_server):
    first = get(spec_server + "/caching")
    assert len(first["map"]) == 3 and len({d["call"] for d in first["map"]}) == 3
    assert get(spec_server + "/caching") == first                  # both came from the cache
    content = get(spec_server + "/caching-reraise")
    assert content == first["map"]                                 # the same map call, so the same cached results


def test_use_cache_false_refreshes_the_cached_result(spec_server):
    cached = get(spec_server + "/refresh")
    assert get(spec_server + "/refresh") == cached
    r = requests.post(spec_server + "/refresh", timeout=10)
    fresh = r.json()
    assert fresh["call"] > cached["call"]                          # fetched again, and cached again
    assert get(spec_server + "/refresh") == fresh
