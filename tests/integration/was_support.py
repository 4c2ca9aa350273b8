"""Backends and a front server for the ``was`` tests (issue 4).

``echo_backend(delay)``: a second skitai whose dispatch waits ``delay`` seconds on its loop (``asyncio.sleep``,
or ``?delay=`` per request) and answers JSON with the request's method, path, query, body and headers, plus
the port that answered. ``front(app, clusters=..., threads=4)`` runs the app under ``Running(config)`` with the
``was`` services installed. ``get_json(url)`` is ``requests.get(url).json()`` with a timeout.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import xmlrpc.server
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import requests

from skitai.config import Cluster, Config, Mount
from tests.support.server import ServerThread


def echo_dispatch(delay: float = 0.0, hits: list | None = None):
    """A dispatch that sleeps ``delay`` (or ``?delay=``) seconds on the loop, then echoes the request as JSON."""
    async def dispatch(exchange):
        req = exchange.request
        body = await req.body.aread() if req.method in ("POST", "PUT", "PATCH") else b""
        query = {k: v[0] for k, v in parse_qs(req.query).items()}
        wait = float(query.get("delay", delay))
        if wait:
            await asyncio.sleep(wait)
        if hits is not None:
            hits.append((req.method, req.path, dict(req.headers.items())))
        answer = {"method": req.method, "path": req.path, "query": query, "body": body.decode("latin-1"),
                  "headers": {k.lower(): v for k, v in req.headers.items()},
                  "port": req.server[1] if req.server else 0}
        data = json.dumps(answer).encode()
        status = int(query.get("status", 200))
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if "max_age" in query:
            headers.append(("Cache-Control", f"max-age={query['max_age']}"))
        exchange.respond(status, headers, data)
    return dispatch


@contextlib.contextmanager
def echo_backends(n: int = 1, delay: float = 0.0, hits: list | None = None) -> Iterator[list[ServerThread]]:
    servers = []
    try:
        for _ in range(n):
            servers.append(ServerThread(echo_dispatch(delay, hits)).start())
        yield servers
    finally:
        for srv in servers:
            srv.stop()


class _RpcFunctions:
    def add(self, a: int, b: int) -> int:
        return a + b

    def search(self, word: str) -> list[str]:
        return [f"{word}-1", f"{word}-2"]


class _RpcHandler(xmlrpc.server.SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2", "/rpc2")


@contextlib.contextmanager
def xmlrpc_backend(ssl_context: Any = None, functions: dict[str, Any] | None = None) -> Iterator[str]:
    """A stdlib XML-RPC server in a thread (TLS with ``ssl_context``; extra ``functions`` by name);
    yields its ``host:port``."""
    server = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=_RpcHandler, logRequests=False,
                                              allow_none=True)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    server.register_instance(_RpcFunctions(), allow_dotted_names=False)
    for name, fn in (functions or {}).items():
        server.register_function(fn, name)
    server.register_function(lambda a, b: a * b, "math.mul")          # a dotted method name
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def ws_echo_backend(ssl_context: Any = None) -> Iterator[str]:
    """A ``websockets`` echo server in a thread (TLS with ``ssl_context``); yields its ``host:port``."""
    from websockets.sync.server import serve

    def echo(conn):
        for message in conn:
            conn.send(message)

    server = serve(echo, "127.0.0.1", 0, ssl=ssl_context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()
        thread.join(5)


def tls_server_context(directory: Any) -> tuple[Any, str]:
    """A server TLS context for 127.0.0.1 from a throwaway CA, and the CA file a client can verify with."""
    import ssl

    import trustme

    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca_file = str(directory / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    return ctx, ca_file


def config_for(app: Any, clusters: dict[str, tuple] | None = None, threads: int = 4, **kw: Any) -> Config:
    """A Config serving ``app`` at "/" on 127.0.0.1 with ``clusters`` given as ``name: (ctype, members)``."""
    config = Config(address="127.0.0.1", port=0, threads=threads, **kw)
    config.mounts = [Mount("/", app)]
    for name, (ctype, members) in (clusters or {}).items():
        config.clusters[name] = Cluster(name, ctype, members if isinstance(members, list) else [members])
    return config


@contextlib.contextmanager
def front(app: Any, clusters: dict[str, tuple] | None = None, threads: int = 4, **kw: Any):
    """``Running(config)`` for ``app``; yields the base URL."""
    from skitai.runner import Running

    with Running(config_for(app, clusters, threads, **kw)) as srv:
        yield f"http://127.0.0.1:{srv.port}"


def get_json(url: str, **kw: Any) -> Any:
    r = requests.get(url, timeout=kw.pop("timeout", 10), **kw)
    assert r.status_code == 200, (r.status_code, r.text[:2000])
    return r.json()


def json_app(handler):
    """A plain WSGI app: ``handler(environ)`` returns something JSON-able, sent as application/json."""
    def app(environ, start_response):
        result = handler(environ)
        if isinstance(result, (str, bytes)):
            body = result.encode() if isinstance(result, str) else result
            ctype = "text/html; charset=utf-8" if body.lstrip().startswith(b"<") else "application/json"
        else:
            body, ctype = json.dumps(result).encode(), "application/json"
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]
    return app


def routed(routes: dict[str, Any]):
    """A plain WSGI app calling ``routes[PATH_INFO](environ)`` (see ``json_app``); 404 elsewhere."""
    def handler(environ):
        fn = routes.get(environ.get("PATH_INFO", ""))
        if fn is None:
            return {"error": "no route"}
        return fn(environ)
    return json_app(handler)


def query(environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
