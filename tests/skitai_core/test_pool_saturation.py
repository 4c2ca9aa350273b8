"""The worker pool under overload, with real sockets: a bounded queue (503 + Retry-After past it), requests
whose client left while they waited are never run, streams stop when their client goes, the loop keeps
answering (static, HTTP/2 PING, WebSocket ping), a watchdog for a pool stuck on requests that never return,
a graceful stop that answers the waiting requests 503, and a cap on WS_DEDICATE threads.

Every app here blocks on a ``Gate`` the test opens at the end, never for ever: the pool is per process.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import h2.events
import pytest
import websockets.sync.client as wsc
from websockets.exceptions import InvalidStatus

import skitai
from skitai.config import Config
from skitai.services.server import pool_counters
from skitai.wsgi import threadpool
from skitai.wsgi.handler import WSGIHandler
from tests.skitai_core.h2ws_support import H2Client, h2_server
from tests.support.net import eventually
from tests.support.server import ServerThread, parse_responses

THREADS = 2


@pytest.fixture(autouse=True)
def idle_pool():
    """The pool of THREADS workers is process-wide: a job an earlier test left running (a ``getwait`` on a
    server being stopped, say) would count here as one of ours. Start each test with it idle."""
    pool = threadpool._pools.get(THREADS)
    if pool is not None:
        assert eventually(lambda: pool._queue.qsize() == 0 and all(r is None for r in pool._running), 30), \
            "the shared worker pool stayed busy"
    yield


class Gate:
    """Requests to ``/block*`` wait until ``open()``; every request's path is recorded when the app runs."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ran: list[str] = []

    def open(self) -> None:
        self.event.set()

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        event = environ.get("websocket.event")
        if event is not None:                       # /ws: a WS_SIMPLE websocket (open before the pool fills)
            if event == skitai.WS_EVT_INIT:
                environ["websocket.config"] = (skitai.WS_SIMPLE, 60, ("m",))
            start_response("200 OK", [])
            return []
        self.ran.append(path)
        if path.startswith("/block"):
            self.event.wait(15)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]


def with_static(app, config):
    """The app in the pool, and ``/static`` answered on the loop (what a static file handler does)."""
    handler = WSGIHandler(app, "/", config)

    def dispatch(exchange):
        if exchange.request.path == "/static":
            exchange.respond(200, [("Content-Type", "text/plain")], b"from the loop")
            return None
        return handler(exchange)
    return dispatch


def send(port: int, path: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    return s


def answer(s: socket.socket, timeout: float = 5.0):
    """The first complete answer on ``s`` (None if none came in ``timeout``)."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
        got = parse_responses(data)
        if got and got[0].complete:
            return got[0]
    return None


def queued() -> int:
    return threadpool._pools[THREADS]._queue.qsize()


def fill(srv, gate: Gate, waiting: int) -> list[socket.socket]:
    """Both workers blocked, ``waiting`` requests queued behind them."""
    socks = [send(srv.port, f"/block{i}") for i in range(THREADS)]
    assert eventually(lambda: len(gate.ran) == THREADS)
    socks += [send(srv.port, f"/queued{i}") for i in range(waiting)]
    assert eventually(lambda: queued() == waiting)
    return socks


def test_past_the_queue_bound_requests_get_503_with_retry_after_and_the_loop_stays_responsive():
    # threads=2, an app that blocks, 40 clients: 2 run, 4 wait (max_queued_requests), the other 34 get
    # 503 + Retry-After at once (they used to wait in an unbounded queue). Meanwhile what runs on the loop
    # is answered at once: static, HTTP/2 PING, WebSocket ping; an HTTP/2 request and a WebSocket handshake
    # past the bound are 503 too.
    gate = Gate()
    config = Config(threads=THREADS)
    config.limits.max_queued_requests = 4
    srv = h2_server(with_static(gate.app, config), config=config)
    with srv:
        ws = wsc.connect(f"ws://127.0.0.1:{srv.port}/ws")          # its handshake needs a worker: first
        h2c = H2Client(srv.port)
        socks = fill(srv, gate, 4)
        try:
            t0 = time.monotonic()
            over = [send(srv.port, f"/over{i}") for i in range(34)]
            answers = [answer(s, 2.0) for s in over]
            assert all(a is not None and a.status == 503 for a in answers), answers[:3]
            assert all(a.headers.get("retry-after") == "1" for a in answers)
            assert time.monotonic() - t0 < 3.0
            assert queued() == 4                                     # bounded: memory too
            assert pool_counters(THREADS)["refused_503"] >= 34

            t0 = time.monotonic()
            static = send(srv.port, "/static")
            assert answer(static, 1.0).body == b"from the loop"
            h2c.conn.ping(b"12345678")
            h2c.flush()
            h2c.read(lambda e: isinstance(e, h2.events.PingAckReceived), timeout=1.0)
            assert any(isinstance(e, h2.events.PingAckReceived) for e in h2c.events)
            assert ws.ping().wait(1.0)
            assert time.monotonic() - t0 < 1.5
            headers, _ = h2c.response(h2c.request("/over-h2"), timeout=2.0)
            assert headers.get(":status") == "503" and headers.get("retry-after") == "1"
            with pytest.raises(InvalidStatus) as refused:      # a handshake needs a worker too
                wsc.connect(f"ws://127.0.0.1:{srv.port}/ws", open_timeout=2)
            assert refused.value.response.status_code == 503
        finally:
            gate.open()
        assert all(answer(s).status == 200 for s in socks)        # the running and the queued ones
        assert not [p for p in gate.ran if "over" in p]
        static.close()
        ws.close()
        h2c.close()
        for s in socks + over:
            s.close()


def test_a_request_whose_client_left_while_it_waited_for_a_worker_never_runs():
    # closed (FIN), reset (RST) and HTTP/2 RST_STREAM while queued behind busy workers: the app is never
    # called for them (a closed client's request used to run anyway). A client still there is served;
    # with a free worker, a client that only half-closed after its request still gets its answer.
    gate = Gate()
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    request_log = logging.getLogger("skitai.request")
    keep, old_level = Keep(logging.INFO), request_log.level
    request_log.addHandler(keep)
    request_log.setLevel(logging.INFO)
    srv = h2_server(app=gate.app, threads=THREADS)
    try:
        served_or_dropped(srv, gate, lines)
    finally:
        request_log.removeHandler(keep)
        request_log.setLevel(old_level)


def served_or_dropped(srv, gate: Gate, lines: list[str]) -> None:
    with srv:
        blocked = fill(srv, gate, 0)
        fin = send(srv.port, "/gone-fin")
        rst = send(srv.port, "/gone-rst")
        stay = send(srv.port, "/stay")
        h2c = H2Client(srv.port)
        sid = h2c.request("/gone-h2")
        assert eventually(lambda: queued() == 4)
        fin.close()
        rst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rst.close()
        h2c.conn.reset_stream(sid)
        h2c.flush()
        time.sleep(0.3)                  # the loop sees the FIN, the RST and the RST_STREAM
        gate.open()
        assert answer(stay).body == b"/stay"
        assert all(answer(s).status == 200 for s in blocked)
        assert eventually(lambda: queued() == 0)
        time.sleep(0.2)
        assert [p for p in gate.ran if p.startswith("/gone")] == []
        assert pool_counters(THREADS)["abandoned"] >= 1
        assert [x for x in lines if " /gone-fin HTTP/1.1 499 " in x]          # the request log says so
        half = send(srv.port, "/half")           # a free worker: a half-close is not a disconnect
        half.shutdown(socket.SHUT_WR)
        assert answer(half).body == b"/half"
        for s in (stay, half, *blocked):
            s.close()
        h2c.close()
        assert eventually(lambda: srv.call(lambda: srv.server.open_connections) == 0)


class Endless:
    """A streaming body that never ends by itself; records its chunks and its ``close()``."""

    def __init__(self) -> None:
        self.chunks = 0
        self.closed = threading.Event()

    def __iter__(self):
        while not self.closed.is_set():
            self.chunks += 1
            yield b"x" * 16384

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("how", ["close", "rst", "h2-reset"])
def test_a_streaming_answer_stops_and_its_iterable_is_closed_when_the_client_leaves(how):
    bodies: list[Endless] = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        bodies.append(Endless())
        return bodies[-1]

    srv = h2_server(app=app, threads=THREADS)
    with srv:
        if how == "h2-reset":
            c = H2Client(srv.port)
            sid = c.request("/stream")
            c.read(lambda e: isinstance(e, h2.events.DataReceived), timeout=5)
            c.conn.reset_stream(sid)
            c.flush()
        else:
            c = send(srv.port, "/stream")
            got = 0
            while got < 200_000:
                got += len(c.recv(65536))
            if how == "rst":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert eventually(lambda: bool(bodies))
        c.close()
        assert bodies[0].closed.wait(5)               # close() called: the worker is free again
        n = bodies[0].chunks
        time.sleep(0.3)
        assert bodies[0].chunks == n
        assert eventually(lambda: pool_counters(THREADS)["busy"] == 0)


def test_a_pool_stuck_on_requests_that_never_return_is_logged_once_and_shown_in_the_status():
    gate = Gate()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("skitai.server")
    keep = Keep(logging.INFO)
    logger.addHandler(keep)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with ServerThread(app=gate.app, threads=THREADS, stall_warning=0.3) as srv:
            socks = fill(srv, gate, 1)
            try:
                def stalls():
                    return [r for r in records if r.levelno == logging.ERROR and "all 2 worker" in r.getMessage()]
                assert eventually(lambda: stalls(), 3.0)
                time.sleep(0.6)
                assert len(stalls()) == 1                  # once, not every second
                text = stalls()[0].getMessage()
                assert "GET /block0" in text and "GET /block1" in text and "1 requests wait" in text
                assert "in app" in text or "in wait" in text       # where each thread is
                status = pool_counters(THREADS)
                assert status["busy"] == 2 and status["stalled_seconds"] > 0
                assert status["longest_running_seconds"] >= 0.3
            finally:
                gate.open()
            assert all(answer(s).status == 200 for s in socks)
            assert eventually(lambda: any("free again" in r.getMessage() for r in records), 3.0)
            assert pool_counters(THREADS)["stalled_seconds"] == 0
            for s in socks:
                s.close()
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old_level)


def test_a_graceful_stop_answers_the_waiting_requests_503_and_lets_the_running_ones_finish():
    gate = Gate()
    srv = h2_server(app=gate.app, threads=THREADS, max_queued_requests=3).start()
    socks = fill(srv, gate, 2)
    h2c = H2Client(srv.port)
    sid = h2c.request("/queued-h2")
    assert eventually(lambda: queued() == 3)
    stopper = threading.Thread(target=srv.stop)      # wait_closed(timeout=2.0): the running ones' time
    try:
        stopper.start()
        waiting = [answer(s, 1.5) for s in socks[THREADS:]]
        headers, _ = h2c.response(sid, timeout=1.5)
        # the running ones are still running: the waiting ones were answered, not left to the timeout
        assert all(a is not None and a.status == 503 for a in waiting), waiting
        assert all(a.headers.get("connection") == "close" and a.headers.get("retry-after") for a in waiting)
        assert headers.get(":status") == "503"
        assert not [p for p in gate.ran if "queued" in p]
        assert pool_counters(THREADS)["cancelled_at_stop"] >= 3
    finally:
        gate.open()
    assert [answer(s).status for s in socks[:THREADS]] == [200, 200]
    stopper.join(10)
    time.sleep(0.2)
    assert not [p for p in gate.ran if "queued" in p]
    h2c.close()
    for s in socks:
        s.close()


def dedicated(environ, start_response):
    if environ.get("websocket.event") == skitai.WS_EVT_INIT:
        environ["websocket.config"] = (skitai.WS_DEDICATE, 60, None)
    else:
        ws = environ["websocket"]
        while (m := ws.getwait()) is not None:
            ws.send("echo " + m)
    start_response("200 OK", [])
    return []


def dedicated_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("ws-dedicate-"))


def test_ws_dedicate_threads_are_capped_with_a_clear_refusal():
    with ServerThread(app=dedicated, threads=THREADS, ws_max_dedicated=3) as srv:
        url = f"ws://127.0.0.1:{srv.port}/talk"
        before = dedicated_threads()
        conns = [wsc.connect(url) for _ in range(3)]
        for i, c in enumerate(conns):
            c.send(f"hi {i}")
            assert c.recv(timeout=5) == f"echo hi {i}"
        for _ in range(3):
            with pytest.raises(InvalidStatus) as refused:
                wsc.connect(url, open_timeout=5)
            assert refused.value.response.status_code == 503
            assert refused.value.response.headers.get("Retry-After")
        assert dedicated_threads() - before == 3
        assert pool_counters(THREADS)["ws_dedicated_threads"] == 3
        conns.pop().close()
        assert eventually(lambda: pool_counters(THREADS)["ws_dedicated_threads"] == 2)
        conns.append(wsc.connect(url))                      # a place is free again
        conns[-1].send("again")
        assert conns[-1].recv(timeout=5) == "echo again"
        for c in conns:
            c.close()
        assert eventually(lambda: pool_counters(THREADS)["ws_dedicated_threads"] == 0)
        assert eventually(lambda: dedicated_threads() == before)
