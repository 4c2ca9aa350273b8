"""``"@name/path"`` addresses in the standalone API: requests go through cluster ``name`` (SK-03, SK-51).

``aquests.get("@mysearch/search", ...)`` and ``aquests.rpc("@mysearch/rpc2").search(...)`` pick
one member by spare capacity and fail over on connection errors, as the server's ``.lb`` calls
do. :func:`install` wraps the plain-URL functions of :mod:`aquests.api`, so that module only
needs a two-line hook.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .aliases import is_cluster_url, split_cluster_url
from .cluster import Cluster
from .response import Response

_HTTP_TYPES = ("http", "https", "rpc", "rpcs")


def _http_cluster(url: str) -> tuple[Cluster, str]:
    cluster, path = split_cluster_url(url)
    if cluster.ctype not in _HTTP_TYPES:
        raise ValueError(f"cluster @{cluster.name} is of type {cluster.ctype!r}; "
                         f"HTTP and XML-RPC requests need one of {', '.join(_HTTP_TYPES)}")
    return cluster, path


def install(http: Callable[..., Any], rpc: Callable[..., Any], client: Callable[[], Any],
            dispatch: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Return ``(http, rpc)`` that also accept ``"@name/path"``; plain URLs go to the originals."""
    from .http import url as urlmod
    from .rpc import xmlrpc
    from .rpc.stub import Stub

    def cluster_http(method: str, url: str, body_kw: dict, params: Any, auth: Any, headers: Mapping | None,
                     callback: Any, meta: dict | None, proxy: str | None, kw: dict) -> Any:
        if not is_cluster_url(url):
            return http(method, url, body_kw, params, auth, headers, callback, meta, proxy, kw)
        cluster, path = _http_cluster(url)
        c = client()
        target = urlmod.parse("http://member" + path, params).target   # bad params raise now
        if "files" not in body_kw:
            c.build_body(**body_kw)
        if headers:
            c._norm_headers(headers)

        def send(member: Any) -> Awaitable[Response]:
            return c.request(method, member.url(target), **body_kw, headers=headers, auth=auth, proxy=proxy,
                             **kw)

        # a streamed upload cannot be sent twice: no fail-over for it
        attempts = 1 if "files" in body_kw or kw.get("stream") else None
        return dispatch(lambda: cluster.call(send, attempts=attempts), callback, meta, method)

    def cluster_rpc(url: str, auth: Any = None, headers: Mapping | None = None, callback: Any = None,
                    meta: dict | None = None, proxy: str | None = None, **kw: Any) -> Any:
        if not is_cluster_url(url):
            return rpc(url, auth, headers, callback, meta, proxy, **kw)
        cluster, path = _http_cluster(url)

        def call(name: str, args: tuple) -> Any:
            c = client()
            xmlrpc.encode_call(name, args)  # marshalling errors raise now

            def send(member: Any) -> Awaitable[Response]:
                return xmlrpc.call(c, urlmod.parse(member.url(path)), name, args, headers=headers, auth=auth,
                                   proxy=proxy, **kw)
            return dispatch(lambda: cluster.call(send), callback, meta, "POST")
        return Stub(call, url)

    cluster_http.__doc__ = getattr(http, "__doc__", None)
    cluster_rpc.__doc__ = getattr(rpc, "__doc__", None)
    cluster_rpc.__name__ = "rpc"
    return cluster_http, cluster_rpc
