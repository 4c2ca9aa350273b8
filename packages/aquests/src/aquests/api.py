"""The standalone API of the spec: configure(), queue with verbs, then fetchall() (AQ-01..AQ-07, AQ-12).

Called with no event loop running (the usual script), a verb queues its request and returns
the request's ``meta`` dict; ``fetchall()`` runs the queue. Called inside a running loop
while the queue is idle, a verb returns a coroutine instead: ``resp = await aquests.get(url)``.
Inside fetchall() callbacks, verbs queue (a crawler can add work as it goes).
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Awaitable, Callable

from . import queue, verbs
from .http import url as urlmod
from .http.client import Client
from .http.pool import close_loop_pools, for_loop
from .response import Response
from .rpc import grpc as grpcmod
from .rpc import xmlrpc
from .rpc.stub import Stub

_client: Client | None = None


def _on_configure(cfg: queue.Config) -> None:
    global _client
    opts = dict(cfg.extra)
    opts.setdefault("http2_streams", cfg.http2_constreams)
    _client = Client(timeout=cfg.timeout, cookie=cfg.cookie, force_http1=cfg.force_http1,
                     allow_redirects=cfg.allow_redirects, **opts)


queue.on_configure(_on_configure)
queue.on_finish(close_loop_pools)


def configure(workers: int = 1, logger: Any = None, callback: Any = None, timeout: float = 10,
              cookie: bool = False, force_http1: bool = False, http2_constreams: int = 1,
              allow_redirects: bool = True, qrandom: bool = False, loop_factory: Any = None,
              **options: Any) -> queue.Config:
    """Reset the queue and the HTTP client.

    ``options`` go to the HTTP client: ``verify``, ``cert``, ``proxy``, ``http2`` (h2c prior
    knowledge for http://), ``headers``, ``max_header_size``, ``max_body_size``,
    ``max_per_origin``, ``idle_timeout``, ``max_redirects``, ``decompress``. ``loop_factory`` builds the loop
    fetchall() runs on (None: uvloop's when installed, else the stdlib's).
    """
    probe = dict(options)
    probe.setdefault("http2_streams", http2_constreams)
    Client(timeout=timeout, cookie=cookie, force_http1=force_http1, allow_redirects=allow_redirects,
           **probe)  # validate options before touching the queue
    return queue.configure(workers, logger, callback, timeout, cookie, force_http1, http2_constreams,
                           allow_redirects, qrandom, loop_factory, **options)


def client() -> Client:
    """The HTTP client the standalone API uses (configured with defaults on first use)."""
    queue.config()
    assert _client is not None
    return _client


def _dispatch(factory: Callable[[], Awaitable[Response]], callback: Any, meta: dict | None,
              method: str) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return queue.submit(factory, callback, meta, method=method)
    if queue._state.running:
        return queue.submit(factory, callback, meta, method=method)
    queue._check_callback(callback)
    return _direct(factory, callback, dict(meta or {}), method)


async def _direct(factory: Callable[[], Awaitable[Response]], callback: Any, meta: dict, method: str) -> Response:
    meta.setdefault("req_method", method)
    resp = await queue.run_item(factory, meta)
    if callback is not None:
        await queue.call_callback(callback, resp, queue.config().logger or queue.log)
    return resp


def _http(method: str, url: str, body_kw: dict, params: Any, auth: Any, headers: Mapping | None,
          callback: Any, meta: dict | None, proxy: str | None, kw: dict) -> Any:
    c = client()
    u = urlmod.parse(url, params)
    body, ctype = c.build_body(**body_kw)
    if headers:
        c._norm_headers(headers)  # bad headers raise now, not in the loop
    if proxy:
        from .http.proxy import Proxy
        Proxy(proxy)

    def factory() -> Awaitable[Response]:
        return c.send(method, u, body, ctype, headers=headers, auth=auth, proxy=proxy, **kw)
    return _dispatch(factory, callback, meta, method)


def _make_nobody(name: str):
    method = name.upper()

    def verb(url: str, params: Any = None, auth: Any = None, headers: Mapping | None = None,
             callback: Any = None, meta: dict | None = None, proxy: str | None = None, **kw: Any) -> Any:
        return _http(method, url, {}, params, auth, headers, callback, meta, proxy, kw)
    verb.__name__ = name
    verb.__doc__ = f"Queue a {method} request (or, in a running loop, return its coroutine)."
    return verb


def _make_body(name: str):
    method, variant = verbs.split_name(name)

    def verb(url: str, data: Any = None, auth: Any = None, headers: Mapping | None = None,
             callback: Any = None, meta: dict | None = None, proxy: str | None = None, **kw: Any) -> Any:
        return _http(method, url, verbs.body_kwargs(variant, data), None, auth, headers, callback, meta,
                     proxy, kw)
    verb.__name__ = name
    verb.__doc__ = (f"Queue a {method} request with a {verbs.VARIANTS[variant]} body "
                    "(or, in a running loop, return its coroutine).")
    return verb


get = _make_nobody("get")
delete = _make_nobody("delete")
head = _make_nobody("head")
options = _make_nobody("options")
trace = _make_nobody("trace")
post, put, patch = _make_body("post"), _make_body("put"), _make_body("patch")
postform, putform, patchform = _make_body("postform"), _make_body("putform"), _make_body("patchform")
postjson, putjson, patchjson = _make_body("postjson"), _make_body("putjson"), _make_body("patchjson")
postxml, putxml, patchxml = _make_body("postxml"), _make_body("putxml"), _make_body("patchxml")
postnvp, putnvp, patchnvp = _make_body("postnvp"), _make_body("putnvp"), _make_body("patchnvp")


def upload(url: str, params: Mapping[str, Any], auth: Any = None, headers: Mapping | None = None,
           callback: Any = None, meta: dict | None = None, proxy: str | None = None, **kw: Any) -> Any:
    """Queue a multipart/form-data POST; file values are open files or paths (streamed from disk)."""
    return _http("POST", url, {"files": params}, None, auth, headers, callback, meta, proxy, kw)


def rpc(url: str, auth: Any = None, headers: Mapping | None = None, callback: Any = None,
        meta: dict | None = None, proxy: str | None = None, **kw: Any) -> Stub:
    """XML-RPC stub: ``stub.method(*args)`` queues one call; ``response.data`` is the result."""
    u = urlmod.parse(url)

    def call(name: str, args: tuple) -> Any:
        c = client()
        xmlrpc.encode_call(name, args)  # marshalling errors raise now

        def factory() -> Awaitable[Response]:
            return xmlrpc.call(c, u, name, args, headers=headers, auth=auth, proxy=proxy, **kw)
        return _dispatch(factory, callback, meta, "POST")
    return Stub(call, url)


def grpc(url: str, service: Any = None, callback: Any = None, meta: dict | None = None,
         timeout: float | None = None, metadata: Any = None) -> grpcmod.GrpcStub:
    """gRPC stub: ``stub.Method(message)`` queues one call over HTTP/2.

    ``service`` is a ServiceDescriptor or a generated ``_pb2`` module; without it the URL path
    names a service registered in the process (``http://host:50051/pkg.Service``).
    """
    u = urlmod.parse(url)

    def invoke(stub: grpcmod.GrpcStub, desc: Any, request: Any, kw: dict) -> Any:
        c = client()
        grpcmod.check_request(desc, request)  # wrong message types raise now
        cb, mt = kw.pop("callback", callback), kw.pop("meta", meta)
        opts = {"timeout": timeout, "metadata": metadata, **kw}
        return _dispatch(lambda: grpcmod.invoke(c, u, desc, request, **opts), cb, mt, "POST")
    return grpcmod.GrpcStub(client, u, service, invoke)


def fetchall() -> None:
    """Run everything queued with at most ``workers`` in flight; return when all callbacks ran."""
    queue.fetchall()


def countcli() -> int:
    """Open connections in the running loop's pools (0 outside a loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return 0
    return for_loop().count()


add = queue.add
suspend = queue.suspend
qsize = queue.qsize
mapsize = queue.mapsize
countreq = queue.countreq
countfin = queue.countfin
concurrent = queue.concurrent

# --- clusters ---
# "@name/path" goes through the cluster registered with aquests.alias() (owner: aquests-misc).
from .cluster_urls import install as _install_clusters  # noqa: E402

_http, rpc = _install_clusters(_http, rpc, client, _dispatch)
