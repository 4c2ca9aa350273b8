"""Clusters against real HTTP servers on 127.0.0.1: lb, fail-over, dead back-off, map, 5xx."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aquests import codes
from aquests.cluster import Cluster
from aquests.http.client import Client


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_GET(self):  # noqa: N802 - stdlib name
        srv = self.server
        with srv.lock:
            srv.hits += 1
        if self.path.startswith("/slow"):
            time.sleep(0.3)
        status = 500 if self.path.startswith("/fail") else 200
        body = srv.label.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(srv):
    """Run a stdlib socketserver in a thread for the duration of the block."""
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@contextlib.contextmanager
def http_server(label: str, port: int = 0):
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    srv.daemon_threads = True
    srv.label, srv.hits, srv.lock = label, 0, threading.Lock()
    with serving(srv):
        yield srv


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_of(srv) -> int:
    return srv.server_address[1]


@pytest.fixture
async def client():
    c = Client(timeout=3)
    try:
        yield c
    finally:
        await c.close()


def getter(client, path="/"):
    async def do(member):
        return await client.request("GET", member.url(path))
    return do


async def test_concurrent_load_follows_weight(client):
    with http_server("A") as a, http_server("B") as b:
        c = Cluster("lb", "http", [f"127.0.0.1:{port_of(a)} 1", f"127.0.0.1:{port_of(b)} 3"])
        seen = []
        stop = threading.Event()

        def watch():  # another thread reads status while the loop sends
            while not stop.is_set():
                seen.append(sum(m["inflight"] for m in c.status()["members"]))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            results = await asyncio.gather(*(c.call(getter(client, "/slow")) for _ in range(8)))
        finally:
            stop.set()
            watcher.join()
        assert [r.status_code for r in results] == [200] * 8
        assert (a.hits, b.hits) == (2, 6)
        assert max(seen) == 8 and sum(m["inflight"] for m in c.status()["members"]) == 0
        assert sorted(r.meta["node"] for r in results).count(f"127.0.0.1:{port_of(b)}") == 6


async def test_failover_to_a_live_member(client):
    dead = refused_port()
    with http_server("live") as live:
        c = Cluster("fo", "http", [f"127.0.0.1:{dead} 5", f"127.0.0.1:{port_of(live)} 1"])
        for _ in range(40):
            resp = await c.call(getter(client))
            assert resp.status_code == 200 and resp.text == "live"
            if c.status()["members"][0]["failures"]:
                break
        for _ in range(5):
            assert (await c.call(getter(client))).status_code == 200
        st = c.status()["members"]
        assert st[0]["dead"] and st[0]["failures"] == 1 and "refused" in st[0]["last_error"].lower()
        assert not st[1]["dead"] and st[1]["failures"] == 0


async def test_server_errors_are_not_retried(client):
    with http_server("A") as a, http_server("B") as b:
        c = Cluster("5xx", "http", [f"127.0.0.1:{port_of(a)}", f"127.0.0.1:{port_of(b)}"])
        resp = await c.call(getter(client, "/fail"))
        assert resp.status_code == 500
        assert a.hits + b.hits == 1
        assert c.status()["live"] == 2


async def test_every_member_down(client):
    p1, p2 = refused_port(), refused_port()
    c = Cluster("down", "http", [f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"])
    resp = await c.call(getter(client))
    assert resp.status_code == codes.CONNECTION_REFUSED
    st = c.status()
    assert st["live"] == 0 and [m["failures"] for m in st["members"]] == [1, 1]
    resp = await c.call(getter(client))          # all dead: all are tried again
    assert resp.status_code == codes.CONNECTION_REFUSED
    assert [m["deadtotal"] for m in c.status()["members"]] == [2, 2]
    empty = Cluster("none", "http", [])
    assert (await empty.call(getter(client))).status_code == codes.REQUEST_FAILED


async def test_dead_member_is_retried_after_backoff(client):
    port = refused_port()
    with http_server("steady") as steady:
        c = Cluster("bo", "http", [f"127.0.0.1:{port} 100", f"127.0.0.1:{port_of(steady)} 1"], backoff=1.0)
        while not c.status()["members"][0]["failures"]:
            marked = time.monotonic()                 # the failure (and its back-off) starts after this
            assert (await c.call(getter(client))).status_code == 200
        with http_server("back", port) as back:
            while time.monotonic() - marked < 0.5:   # well inside the 1 s back-off: never chosen
                assert (await c.call(getter(client))).text == "steady"
            assert back.hits == 0
            deadline = time.monotonic() + 5
            while c.status()["members"][0]["dead"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            texts = [(await c.call(getter(client))).text for _ in range(20)]
            assert "back" in texts and back.hits > 0
            st = c.status()["members"][0]
            assert not st["dead"] and st["fails"] == 0


async def test_map_goes_to_every_live_member(client):
    dead = refused_port()
    with http_server("A") as a, http_server("B") as b:
        c = Cluster("map", "http", [f"127.0.0.1:{port_of(a)}", f"127.0.0.1:{dead}", f"127.0.0.1:{port_of(b)}"])
        first = await c.map(getter(client))
        assert [r.status_code for r in first] == [200, codes.CONNECTION_REFUSED, 200]
        second = await c.map(getter(client))
        assert [r.text for r in second] == ["A", "B"]
        assert (a.hits, b.hits) == (2, 2)
        assert sum(m["inflight"] for m in c.status()["members"]) == 0
        c.stop_member(f"127.0.0.1:{port_of(a)}")
        assert [r.text for r in await c.map(getter(client))] == ["B"]


async def test_exceptions_from_do_are_classified(client):
    c = Cluster("exc", "http", ["127.0.0.1:1"])

    async def boom(member):
        raise ConnectionRefusedError("nope")

    async def slow(member):
        raise TimeoutError

    async def bug(member):
        raise KeyError("programming error")

    assert (await c.call(boom)).status_code == codes.CONNECTION_REFUSED
    assert (await c.call(slow)).status_code == codes.TIMEOUT
    with pytest.raises(KeyError):
        await c.call(bug)
    assert c.status()["members"][0]["inflight"] == 0
