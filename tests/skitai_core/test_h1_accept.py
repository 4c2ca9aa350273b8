"""Accepting connections: a burst of new connections is taken in one go even when every loop iteration is
slow (libuv alone accepts one per iteration), the batch limit, binding, and running out of descriptors."""
from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from skitai.config import Config
from skitai.http import accept
from tests.support.net import free_port
from tests.support.server import ServerThread

HELLO = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def hello(exchange):
    exchange.respond(200, [("Content-Type", "text/plain")], b"hi")


def slow_iterations(loop, stop: list, seconds: float) -> None:
    """Make every iteration of ``loop`` take ``seconds`` (a busy server with many ready connections)."""
    def tick():
        if not stop:
            time.sleep(seconds)
            loop.call_soon(tick)
    loop.call_soon(tick)


def answer_all(port: int, n: int, timeout: float) -> float:
    """Open ``n`` connections at once, send one request on each; seconds until every one was answered."""
    sel = selectors.DefaultSelector()
    socks = []
    started = time.monotonic()
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(HELLO)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, b"")
            socks.append(s)
        waiting = len(socks)
        got: dict[socket.socket, bytes] = {}
        deadline = started + timeout
        while waiting and time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                data = got.get(key.fileobj, b"") + key.fileobj.recv(4096)
                got[key.fileobj] = data
                if data.endswith(b"hi"):
                    sel.unregister(key.fileobj)
                    waiting -= 1
        assert waiting == 0, f"{waiting} of {n} connections got no answer in {timeout}s"
        return time.monotonic() - started
    finally:
        for s in socks:
            s.close()
        sel.close()


@pytest.mark.parametrize("uvloop", [True, False])
def test_burst_of_connections_accepted_while_iterations_are_slow(uvloop):
    # 200 connections while each loop iteration takes 10 ms: one accept per iteration would need >= 2 s
    with ServerThread(dispatch=hello, uvloop=uvloop) as srv:
        stop: list = []
        srv.call(slow_iterations, srv.loop, stop, 0.01)
        try:
            took = answer_all(srv.port, 200, timeout=10)
        finally:
            stop.append(1)
    assert took < 1.0, f"answering 200 new connections took {took:.2f}s"


def test_more_connections_than_one_batch_are_all_accepted():
    n = accept.ACCEPT_BATCH + 44
    with ServerThread(dispatch=hello) as srv:
        answer_all(srv.port, n, timeout=20)
        assert srv.call(lambda: srv.server.acceptor.accepted) == n


def test_defaults():
    assert accept.ACCEPT_BATCH == 256
    assert accept.RETRY_DELAY == 0.5


def test_serve_binds_config_address_and_closes_the_socket():
    import asyncio

    from skitai.http.server import serve

    port = free_port()

    async def main():
        server = await serve(Config(address="127.0.0.1", port=port), hello)
        assert server.port == port
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(HELLO)
        data = await r.read(4096)
        w.close()
        server.close()
        await server.wait_closed()
        return data

    assert asyncio.run(main()).endswith(b"hi")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_port_in_use_is_a_clear_oserror():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        with pytest.raises(OSError) as info:
            accept.listening_sockets("127.0.0.1", holder.getsockname()[1], 16)
        assert "address already in use" in str(info.value)
    finally:
        holder.close()


def test_reuse_port_lets_two_listeners_share_a_port():
    first = accept.listening_sockets("127.0.0.1", 0, 16, reuse_port=True)
    port = first[0].getsockname()[1]
    second = accept.listening_sockets("127.0.0.1", port, 16, reuse_port=True)
    for s in first + second:
        s.close()


_FD_SERVER = textwrap.dedent("""
    import asyncio, resource, sys
    from skitai.config import Config
    from skitai.http.server import new_event_loop, serve

    def hello(exchange):
        exchange.respond(200, [("Content-Type", "text/plain")], b"hi")

    async def main():
        server = await serve(Config(address="127.0.0.1", port=int(sys.argv[1])), hello)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(__import__("os").listdir("/proc/self/fd")) + 20, hard))
        print("ready", flush=True)
        await asyncio.sleep(30)

    asyncio.Runner(loop_factory=new_event_loop).run(main())
""")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_then_accepts_the_waiting_connections():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _FD_SERVER, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    socks = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        # 40 connections against ~20 free descriptors: the first ones are served, the rest wait in the queue
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(HELLO)
            socks.append(s)
        served = []
        for s in socks[:10]:
            s.settimeout(5)
            served.append(s.recv(4096))
        assert all(r.endswith(b"hi") for r in served)
        time.sleep(0.5)
        before = cpu_seconds(proc.pid)
        time.sleep(1.0)
        assert cpu_seconds(proc.pid) - before < 0.5, "the server spins on the full descriptor table"
        # free the descriptors: every waiting connection is accepted and answered
        for s in socks[:30]:
            s.close()
        for s in socks[30:]:
            s.settimeout(5)
            assert s.recv(4096).endswith(b"hi")
        assert proc.poll() is None
    finally:
        for s in socks:
            s.close()
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "accept() failed" in err
