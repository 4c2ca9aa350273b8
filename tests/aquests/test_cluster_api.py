"""The "@name/path" form in the standalone API, and aquests.ws/wss queued and awaited."""
from __future__ import annotations

import contextlib
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

import aquests
from aquests import codes
from tests.aquests.test_cluster_http import http_server, port_of, refused_port, serving
from tests.aquests.test_ws_client import echo, ws_server


@contextlib.contextmanager
def xmlrpc_server(label):
    class Handler(SimpleXMLRPCRequestHandler):
        rpc_paths = ()

        def log_message(self, *args):
            pass

    srv = SimpleXMLRPCServer(("127.0.0.1", 0), Handler, logRequests=False, allow_none=True)
    srv.register_function(lambda keyword: [f"{label}:{keyword}"], "search")
    srv.register_function(lambda a, b: a + b, "math.add")
    with serving(srv):
        yield srv


@pytest.fixture(name="registry")
def registry_fixture():
    """Register clusters for one test; they are removed at its end."""
    names = []

    def make(name, *args, **kw):
        names.append(name)
        return aquests.alias(name, *args, **kw)

    try:
        yield make
    finally:
        for n in names:
            aquests.unalias(n)


def test_queued_get_through_cluster_with_failover(registry):
    got = []
    aquests.configure(workers=4, callback=got.append, timeout=3)
    with http_server("A") as a, http_server("B") as b:
        registry("@web", "http", [f"127.0.0.1:{port_of(a)}", f"127.0.0.1:{refused_port()} 5",
                                  f"127.0.0.1:{port_of(b)}"])
        for i in range(12):
            aquests.get("@web/page", params={"i": i}, meta={"n": i})
        aquests.fetchall()
    assert len(got) == 12
    assert all(r.status_code == 200 for r in got), [(r.status_code, r.reason) for r in got]
    assert sorted(r.meta["n"] for r in got) == list(range(12))
    assert a.hits + b.hits == 12 and a.hits and b.hits
    st = aquests.get_cluster("web").status()["members"]
    assert st[1]["failures"] >= 1 and st[1]["dead"]


def test_queued_post_and_rpc_through_cluster(registry):
    got = []
    aquests.configure(workers=2, callback=got.append, timeout=3)
    with xmlrpc_server("s1") as s1, xmlrpc_server("s2") as s2:
        registry("mysearch", "http", [f"127.0.0.1:{s1.server_address[1]}", f"127.0.0.1:{s2.server_address[1]}"])
        stub = aquests.rpc("@mysearch/rpc2")
        stub.search("Mozart")
        stub.math.add(2, 3)
        aquests.fetchall()
    datas = sorted(map(repr, (r.data for r in got)))
    assert datas[0] == "5" and datas[1] in ("['s1:Mozart']", "['s2:Mozart']")


async def test_awaitable_get_and_errors(registry):
    with http_server("A") as a:
        registry("@aw", "http", [f"127.0.0.1:{port_of(a)}"])
        resp = await aquests.get("@aw/x")
        assert resp.status_code == 200 and resp.text == "A" and resp.meta["node"] == f"127.0.0.1:{port_of(a)}"
    with pytest.raises(ValueError, match="no cluster named @missing"):
        aquests.get("@missing/x")
    registry("@db", aquests.DB_REDIS, ["127.0.0.1:6379"])
    with pytest.raises(ValueError, match="HTTP and XML-RPC"):
        aquests.get("@db/x")
    registry("@down", "http", [f"127.0.0.1:{refused_port()}"])
    resp = await aquests.get("@down/")
    assert resp.status_code == codes.CONNECTION_REFUSED


def test_plain_urls_still_work():
    got = []
    aquests.configure(callback=got.append, timeout=3)
    with http_server("plain") as srv:
        aquests.get(f"http://127.0.0.1:{port_of(srv)}/")
        aquests.fetchall()
    assert got[0].text == "plain"


def test_queued_ws_and_wss_with_callback_args(registry):
    got = []
    aquests.configure(workers=2, callback=lambda r: got.append(("default", r.content)), timeout=3)
    with ws_server(echo) as port:
        aquests.ws(f"ws://127.0.0.1:{port}/", "one")
        aquests.ws(f"ws://127.0.0.1:{port}/", b"two", callback=(lambda r, tag: got.append((tag, r.content)), ("x",)))
        registry("@chat", "ws", [f"127.0.0.1:{refused_port()}", f"127.0.0.1:{port}"])
        aquests.ws("@chat/room", "three", meta={"k": 1})
        aquests.fetchall()
    assert sorted(got, key=repr) == sorted([("default", (1, "one")), ("x", (2, b"two")),
                                            ("default", (1, "three"))], key=repr)


async def test_awaitable_ws_and_bad_arguments():
    with ws_server(echo) as port:
        resp = await aquests.ws(f"ws://127.0.0.1:{port}/", "hi")
    assert resp.content == (1, "hi")
    with pytest.raises(TypeError):
        aquests.ws("ws://127.0.0.1:1/", 3.5)
    with pytest.raises(ValueError):
        aquests.wss("ftp://127.0.0.1:1/", "x")
