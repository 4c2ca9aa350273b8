"""Backends and a front server for the reverse-proxy tests (``mount('/search', '@mysearch')``).

``backends(n)`` runs ``n`` real skitai servers (``ServerThread``) whose dispatch answers by path:

- ``/big?n=BYTES``: a streamed body of ``n`` bytes (a repeating pattern, chunked); ``server.progress["big"]``
  is how much of it the backend could write so far;
- ``/cut?n=BYTES``: announces ``Content-Length: n``, sends a quarter of it, then drops the connection;
- ``/hop``: an answer carrying hop-by-hop headers (``Connection: X-Bar``, ``X-Bar``, ``Keep-Alive``, ...);
- anything else: JSON echo of method, path, query, headers, body length and SHA-256, and the port
  (``?delay=S`` waits first, ``?status=N`` answers N).

``ws_server(ssl=None)`` runs a ``websockets`` member that first sends what it got (path, headers) as JSON,
then echoes; it returns ``(address, stop)``.

``front(members, **extra)`` serves ``/`` (a tiny WSGI app) and ``/search`` → ``@mysearch`` under
``Running(config)``; it yields the running server (``.port``, ``.url``, ``.cluster()``).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

from websockets.sync.server import serve

from skitai.config import Cluster, Config, Mount
from tests.support.server import ServerThread

PATTERN = bytes(range(256)) * 256          # 64 KiB


def pattern(n: int) -> bytes:
    reps, rest = divmod(n, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


def backend_dispatch(progress: dict | None = None):
    """The backends' dispatch; ``progress["big"]`` counts the bytes ``/big`` has handed to its transport."""
    progress = progress if progress is not None else {}

    async def dispatch(exchange):
        req = exchange.request
        query = {k: v[0] for k, v in parse_qs(req.query).items()}
        if req.path == "/big":
            n = int(query.get("n", 1 << 20))
            exchange.start(200, [("Content-Type", "application/octet-stream")])
            sent = 0
            while sent < n:
                piece = PATTERN[:min(len(PATTERN), n - sent)]
                await exchange.write(piece)
                sent += len(piece)
                progress["big"] = sent
            exchange.end()
            return
        if req.path == "/cut":
            n = int(query.get("n", 1 << 20))
            exchange.start(200, [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
            await exchange.write(pattern(n // 4))
            await asyncio.sleep(0.05)
            exchange.abort()
            return
        if req.path == "/hop":
            exchange.respond(200, [("Content-Type", "text/plain"), ("Connection", "X-Bar"), ("X-Bar", "1"),
                                   ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "Basic"),
                                   ("Trailer", "X-T"), ("X-Kept", "yes")], b"hop")
            return
        h = hashlib.sha256()
        size = 0
        while chunk := await req.body.aread(65536):
            h.update(chunk)
            size += len(chunk)
        if "delay" in query:
            await asyncio.sleep(float(query["delay"]))
        answer = {"method": req.method, "path": req.path, "query": query, "target": req.target,
                  "headers": {k: v for k, v in req.headers.items()}, "size": size, "sha256": h.hexdigest(),
                  "port": req.server[1]}
        data = json.dumps(answer).encode()
        exchange.respond(int(query.get("status", 200)),
                         [("Content-Type", "application/json"), ("X-Port", str(req.server[1]))], data)
    return dispatch


@contextlib.contextmanager
def backends(n: int = 2) -> Iterator[list[ServerThread]]:
    servers: list[ServerThread] = []
    try:
        for _ in range(n):
            progress: dict = {}
            srv = ServerThread(backend_dispatch(progress)).start()
            srv.progress = progress
            servers.append(srv)
        yield servers
    finally:
        for srv in servers:
            srv.stop()


def address(server: ServerThread) -> str:
    return f"127.0.0.1:{server.port}"


def root_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"root app"]


def proxy_config(members: list[str], ctype: str = "http", **extra: Any) -> Config:
    config = Config(address="127.0.0.1", port=0, threads=2)
    config.mounts = [Mount("/", root_app), Mount("/search", "@mysearch")]
    config.clusters = {"mysearch": Cluster("mysearch", ctype, members)}
    if extra:
        config.extra["proxy"] = extra
    return config


class Front:
    """A running front server (``Running``) with the proxy mount."""

    def __init__(self, running: Any) -> None:
        self.running = running
        self.port = running.port
        self.url = f"http://127.0.0.1:{running.port}"

    def wasc(self) -> Any:
        """The server's ``was`` context (``Wasc``) of this front."""
        from skitai.services import binding

        return binding._by_loop[id(self.running._loop)]

    def cluster(self) -> Any:
        """The server's ``aquests.cluster.Cluster`` for @mysearch (what ``was.status()`` shows)."""
        return self.wasc().clusters["mysearch"]

    def status(self) -> dict:
        """``was.status()`` data of this front."""
        from skitai.services.status import collect

        return collect(self.wasc())


@contextlib.contextmanager
def front(members: list[str], ctype: str = "http", **extra: Any) -> Iterator[Front]:
    from skitai.runner import Running

    with Running(proxy_config(members, ctype, **extra)) as running:
        yield Front(running)


def ws_server(ssl: Any = None):
    """A ``websockets`` server in a thread: first tells what it got, then echoes every message.
    Returns ``(address, stop)``."""
    def handler(conn):
        req = conn.request
        conn.send(json.dumps({"path": req.path, "headers": {k.lower(): v for k, v in req.headers.raw_items()}}))
        for message in conn:
            conn.send(message)

    server = serve(handler, "127.0.0.1", 0, max_size=None, ssl=ssl)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop():
        server.shutdown()
        thread.join(5)
    return f"127.0.0.1:{server.socket.getsockname()[1]}", stop
