"""WebSocket sends from worker threads: direct writes to the socket, ordering under concurrency, the loop path."""
from __future__ import annotations

import random
import threading
import time

import pytest
import websockets.sync.client as wsc

import skitai
from tests.skitai_core.h2ws_support import ws_app
from tests.support.server import ServerThread


SLOW_ENTERED = threading.Event()                       # a worker is inside the "slow" handler
SLOW_GATE = threading.Event()                          # ... and may answer


def make_app():
    def on_message(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        message = environ["websocket.message"]
        if message.startswith("slow"):               # the worker holds the reply until the test says so
            SLOW_ENTERED.set()
            SLOW_GATE.wait(10)
            return [b"done " + message.encode()]
        if message.startswith("burst"):               # "burst <threads> <count> <size>"
            _, threads, count, size = message.split()
            sender = environ["websocket"]

            def run(t: int) -> None:
                for i in range(int(count)):
                    sender.send(f"{t}:{i}:" + "x" * random.randrange(int(size)))

            workers = [threading.Thread(target=run, args=(t,)) for t in range(int(threads))]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return [b"burst done"]
        return [message.encode()]
    return ws_app(on_message, (skitai.WS_THREADSAFE, 60, ("m",)))


def reply_time_while_loop_blocked(srv, scheme: str = "ws", **connect) -> float:
    """Seconds until a worker's reply arrives, counted from the moment the worker may send it, while the
    loop thread is stuck for 1.5 s. Each step waits for the one before (no sleeps standing for order)."""
    SLOW_ENTERED.clear()
    SLOW_GATE.clear()
    blocking = threading.Event()

    def block_loop() -> None:                          # runs ON the loop
        blocking.set()
        time.sleep(1.5)

    with wsc.connect(f"{scheme}://127.0.0.1:{srv.port}/", **connect) as ws:
        ws.send("warm")
        assert ws.recv(timeout=10) == "warm"
        ws.send("slow 1")
        assert SLOW_ENTERED.wait(10)                   # a worker has the message
        blocker = threading.Thread(target=srv.call, args=(block_loop,))
        blocker.start()
        assert blocking.wait(10)                       # the loop is stuck now
        started = time.monotonic()
        SLOW_GATE.set()                                # the worker replies
        assert ws.recv(timeout=10) == "done slow 1"
        took = time.monotonic() - started
        blocker.join()
        return took


@pytest.mark.parametrize("uvloop", [True, False])
def test_worker_reply_needs_no_loop_turn(uvloop):
    with ServerThread(app=make_app(), threads=4, uvloop=uvloop) as srv:
        assert reply_time_while_loop_blocked(srv) < 1.0           # the worker wrote it itself


def test_without_direct_writes_the_reply_waits_for_the_loop():
    with ServerThread(app=make_app(), threads=4, ws_direct_writes=False) as srv:
        assert reply_time_while_loop_blocked(srv) > 1.2


@pytest.mark.parametrize("size,uvloop", [(40, True), (300_000, True), (300_000, False)])
def test_concurrent_senders_keep_frames_whole_and_ordered(size, uvloop):
    """8 threads send at once (big messages fill the socket: partial writes go through the loop) while
    the client pings: every frame arrives whole, each thread's messages in order (uvloop and asyncio)."""
    with ServerThread(app=make_app(), threads=4, uvloop=uvloop) as srv, \
            wsc.connect(f"ws://127.0.0.1:{srv.port}/", max_size=None, compression=None) as ws:
        count = 200 if size < 1000 else 12
        ws.send(f"burst 8 {count} {size}")
        pings = [ws.ping() for _ in range(3)]
        got: dict[int, list[int]] = {}
        while True:
            m = ws.recv(timeout=20)
            if m == "burst done":
                break
            t, i, pad = m.split(":", 2)
            assert set(pad) <= {"x"}
            got.setdefault(int(t), []).append(int(i))
            if size > 1000 and random.random() < 0.3:
                time.sleep(0.01)                            # a slow reader now and then
        for p in pings:
            assert p.wait(10)
        assert got == {t: list(range(count)) for t in range(8)}
        ws.send("after")
        assert ws.recv(timeout=10) == "after"


def test_close_from_a_worker_comes_after_its_sends():
    def sends_then_closes(environ, start_response):
        start_response("200 OK", [])
        ws = environ["websocket"]
        for i in range(50):
            ws.send(f"n{i}")
        ws.close(4005, "bye")
        ws.send("never")                                    # after the close: dropped
        return []
    app = ws_app(sends_then_closes)

    from websockets.exceptions import ConnectionClosed
    with ServerThread(app=app, threads=4) as srv, wsc.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
        ws.send("go")
        got = []
        with pytest.raises(ConnectionClosed):
            while True:
                got.append(ws.recv(timeout=10))
        assert got == [f"n{i}" for i in range(50)]
        assert ws.protocol.close_rcvd.code == 4005


def test_tls_replies_go_through_the_loop():
    """Over TLS the bytes must pass the TLS layer: no direct writes, and the replies still arrive whole."""
    import ssl

    import trustme
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with ServerThread(app=make_app(), threads=4, ssl=server_ctx) as srv:
        assert reply_time_while_loop_blocked(srv, "wss", ssl=client_ctx) > 1.2
        with wsc.connect(f"wss://127.0.0.1:{srv.port}/", ssl=client_ctx) as ws:
            ws.send("burst 4 50 2000")
            got = []
            while (m := ws.recv(timeout=10)) != "burst done":
                got.append(m)
            assert len(got) == 200


def test_direct_write_descriptors_are_closed():
    """Each connection's duplicate descriptor for the workers is closed with the connection."""
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with ServerThread(app=make_app(), threads=4) as srv:
        with wsc.connect(f"ws://127.0.0.1:{srv.port}/") as ws:         # warm up: pool threads, imports
            ws.send("a")
            ws.recv(timeout=10)
        time.sleep(0.2)
        before = open_fds()
        for _ in range(3):
            clients = [wsc.connect(f"ws://127.0.0.1:{srv.port}/") for _ in range(10)]
            for ws in clients:
                ws.send("x")
                assert ws.recv(timeout=10) == "x"
            assert open_fds() >= before + 30          # client socket, server socket and our dup, each
            for ws in clients:
                ws.close()
        deadline = time.monotonic() + 5
        while open_fds() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_fds() <= before
