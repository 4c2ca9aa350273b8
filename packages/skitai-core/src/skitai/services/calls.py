"""The request verbs of ``was`` (SK-50, SK-51, SK-52): each call becomes a ``Task`` on the loop.

``was.get(url)`` goes to one address; ``was.get("@cluster/path")`` or ``was.get.lb(...)`` to one
member of a cluster with fail-over; ``was.get.map(...)`` to every live member. The same shapes hold
for ``rpc``, ``grpc``, ``ws``, ``upload`` and the database stubs.
"""
from __future__ import annotations

import hashlib

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aquests import verbs
from aquests import websocket as aws
from aquests.dbapi import aio as dbaio
from aquests.http import url as urlmod
from aquests.rcache import make_ident
from aquests.rpc import grpc as agrpc
from aquests.rpc import xmlrpc
from aquests.rpc.stub import Stub

from .httpcache import has_credentials, wants_fresh
from .task import Task

if TYPE_CHECKING:
    from .was import Was

DIRECT, LB, MAP = "direct", "lb", "map"
DB_TYPES = {"*postgresql": "postgresql", "*pgsql": "postgresql", "*redis": "redis",
            "*mongodb": "mongodb", "*sqlite3": "sqlite3"}


class _Modes:
    """``verb(...)``, ``verb.lb(...)``, ``verb.map(...)`` for one verb bound to one ``was``."""

    def __init__(self, was: Was) -> None:
        self.was = was

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self._make(DIRECT, *args, **kw)

    def lb(self, *args: Any, **kw: Any) -> Any:
        return self._make(LB, *args, **kw)

    def map(self, *args: Any, **kw: Any) -> Any:
        return self._make(MAP, *args, **kw)

    def _make(self, mode: str, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError

    def _target(self, mode: str, uri: str):
        """(cluster or None, path-or-url, mode) after the ``@name`` rule: an ``@`` URI means lb."""
        if isinstance(uri, str) and uri.startswith("@"):
            cluster, path = self.was.wasc.cluster_of(uri)
            return cluster, path, (LB if mode == DIRECT else mode)
        if mode != DIRECT:
            raise ValueError(f"{mode} needs a cluster address like '@name/path', not {uri!r}")
        return None, uri, DIRECT

    def _task(self, mode: str, cluster: Any, do, direct, *, ident: str, use_cache: bool,
              callback: Any, url: str, filter: Any = None) -> Task:
        progress: dict[str, Any] = {}       # member address -> its response (None while in flight)

        def tracked(member: Any) -> Awaitable[Any]:
            progress[member.address] = None
            return _record(progress, member.address, do(member))

        if mode == DIRECT:
            work = direct
        elif mode == LB:
            work = lambda: cluster.call(tracked)  # noqa: E731
        else:
            work = lambda: cluster.map(tracked)  # noqa: E731
        wasc = self.was.wasc
        return Task(wasc.loop, work, ident=ident, rcache=wasc.rcache, mapped=(mode == MAP),
                    use_cache=use_cache, callback=callback, url=url, owner=self.was, progress=progress,
                    filter=filter)


async def _record(progress: dict[str, Any], address: str, call: Awaitable[Any]) -> Any:
    """Await one member's call and keep its response, so a timed-out wait can still report it."""
    response = await call
    progress[address] = response
    return response


class HttpVerb(_Modes):
    """get/post/postform/.../options/trace: ``(uri, data, auth, headers, meta, use_cache, filter,
    callback, timeout)`` as SK-50."""

    def __init__(self, was: Was, name: str) -> None:
        super().__init__(was)
        self.method, self.variant = verbs.split_name(name)

    def _make(self, mode: str, uri: str, data: Any = None, auth: Any = None, headers: Any = None,
              meta: dict | None = None, use_cache: bool = True, filter: Any = None,
              callback: Any = None, timeout: float = 10) -> Task:
        cluster, path, mode = self._target(mode, uri)
        hdrs = self.was.outgoing_headers(headers, use_cache)
        if self.method in ("POST", "PUT", "PATCH"):
            body = verbs.body_kwargs(self.variant, data)
        else:
            body = {"params": data} if data is not None else {}
        client = self.was.wasc.client
        method = self.method
        store = self.was.wasc.httpcache if method == "GET" else None
        lookup = store if (store is not None and use_cache and not wants_fresh(hdrs)) else None

        async def send(url: str):
            key = url if data is None else f"{url}{'&' if '?' in url else '?'}{_query(data)}"
            cached = lookup.get(key, hdrs) if lookup is not None else None
            if cached is not None:
                return cached
            resp = await client.request(method, url, headers=hdrs, auth=auth, timeout=timeout,
                                        meta=dict(meta or {}), **body)
            if store is not None:
                store.put(key, resp, private=has_credentials(hdrs, auth), headers=hdrs)
            return resp

        ident = make_ident(cluster.name if cluster else None, path, "http", method, data,
                           mapped=(mode == MAP)) + caller(hdrs, auth)
        return self._task(mode, cluster, lambda m: send(m.url(path)), lambda: send(path),
                          ident=ident, use_cache=use_cache, callback=callback, url=uri, filter=filter)


def caller(headers: Mapping[str, str], auth: Any) -> str:
    """The part of a result-cache key that says who asked: a digest of the call's credentials (``auth``,
    ``Authorization``, ``Cookie``), so a result fetched for one user is never served to another ("" when
    the call carries none)."""
    creds = [repr(auth)] if auth is not None else []
    creds += [f"{k.lower()}:{v}" for k, v in headers.items() if k.lower() in ("authorization", "cookie")]
    if not creds:
        return ""
    return "/@" + hashlib.sha256("\n".join(creds).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _query(data: Any) -> str:
    return urlencode(data, doseq=True) if isinstance(data, Mapping) else repr(data)


class UploadVerb(HttpVerb):
    """multipart/form-data POST; file values are open files or paths."""

    def __init__(self, was: Was) -> None:
        _Modes.__init__(self, was)
        self.method, self.variant = "POST", "upload"

    def _make(self, mode: str, uri: str, data: Mapping | None = None, auth: Any = None, headers: Any = None,
              meta: dict | None = None, use_cache: bool = False, filter: Any = None,
              callback: Any = None, timeout: float = 10) -> Task:
        cluster, path, mode = self._target(mode, uri)
        hdrs = self.was.outgoing_headers(headers, use_cache)
        client = self.was.wasc.client

        def send(url: str):
            return client.request("POST", url, files=data or {}, headers=hdrs, auth=auth, timeout=timeout,
                                  meta=dict(meta or {}))

        ident = make_ident(cluster.name if cluster else None, path, "upload", "POST", None)
        return self._task(mode, cluster, lambda m: send(m.url(path)), lambda: send(path),
                          ident=ident, use_cache=False, callback=callback, url=uri)


class RpcVerb(_Modes):
    """``was.rpc(url).method(*args)`` → Task (XML-RPC; dotted names allowed)."""

    def _make(self, mode: str, uri: str, auth: Any = None, headers: Any = None, meta: dict | None = None,
              use_cache: bool = True, filter: Any = None, callback: Any = None, timeout: float = 10) -> Stub:
        cluster, path, mode = self._target(mode, uri)
        hdrs = self.was.outgoing_headers(headers, use_cache)
        client = self.was.wasc.client

        def call(name: str, args: tuple) -> Task:
            def send(url: str):
                return xmlrpc.call(client, urlmod.parse(url), name, args, headers=hdrs, auth=auth,
                                   timeout=timeout, meta=dict(meta or {}))
            ident = make_ident(cluster.name if cluster else None, path, "rpc", name, args,
                               mapped=(mode == MAP)) + caller(hdrs, auth)
            return self._task(mode, cluster, lambda m: send(m.url(path)), lambda: send(path),
                              ident=ident, use_cache=use_cache, callback=callback, url=uri, filter=filter)

        return Stub(call, uri)


class GrpcVerb(_Modes):
    """``was.grpc(url, service=...).Method(message)`` → Task (unary or server-streaming)."""

    def _make(self, mode: str, uri: str, service: Any = None, meta: dict | None = None,
              use_cache: bool = True, callback: Any = None, timeout: float = 10, **_: Any) -> Any:
        cluster, path, mode = self._target(mode, uri)
        client = self.was.wasc.client
        verb = self
        base = urlmod.parse(cluster.members[0].url(path) if cluster else path)

        def invoke(stub, desc, request, kw):
            def send(url: str):
                return agrpc.invoke(client, urlmod.parse(url), desc, request, timeout=timeout,
                                    metadata=kw.get("metadata"))
            ident = make_ident(cluster.name if cluster else None, path, "grpc", desc.full_name,
                               request.SerializeToString(), mapped=(mode == MAP))
            return verb._task(mode, cluster, lambda m: send(m.url(path)), lambda: send(path),
                              ident=ident, use_cache=use_cache, callback=callback, url=uri)

        return agrpc.GrpcStub(client, base, service, invoke)


class WsVerb(_Modes):
    """``was.ws(url, message)``: a one-shot WebSocket request; the reply is ``(opcode, payload)``."""

    def _make(self, mode: str, uri: str, message: Any = "", use_cache: bool = False, callback: Any = None,
              timeout: float = 10, **_: Any) -> Task:
        cluster, path, mode = self._target(mode, uri)
        ident = make_ident(cluster.name if cluster else None, path, "ws", "WS", message)
        opts = {"timeout": timeout, "verify": self.was.wasc.client.verify}    # wss: the same trust as https
        return self._task(mode, cluster, lambda m: aws.connect(m.url(path), message, **opts),
                          lambda: aws.connect(path, message, **opts),
                          ident=ident, use_cache=use_cache, callback=callback, url=uri)


class DbVerb(_Modes):
    """``was.postgresql(server, dbname, auth)`` and friends: a stub whose methods return Tasks."""

    def __init__(self, was: Was, dbtype: str | None) -> None:
        super().__init__(was)
        self.dbtype = dbtype

    def _make(self, mode: str, server: str, dbname: Any = None, auth: Any = None, dbtype: str | None = None,
              use_cache: bool = True, callback: Any = None, timeout: float = 10, meta: dict | None = None,
              **_: Any) -> DbStub:
        if server in DB_TYPES:   # was.db(DB_PGSQL, server, dbname, auth): the type may come first
            server, dbname, auth, dbtype = dbname, auth, dbtype, server
        kind = DB_TYPES.get(dbtype or "", None) or self.dbtype
        cluster, server, mode = self._target(mode, server)
        if cluster is not None:
            kind = DB_TYPES.get(cluster.ctype, kind)
        if kind is None:
            raise ValueError("was.db(...) needs dbtype= (DB_PGSQL, DB_REDIS, DB_MONGODB or DB_SQLITE3)")
        if mode == MAP and callback is not None:
            raise RuntimeError("a database map call cannot take a callback: use getswait() (SK-51)")
        return DbStub(self, mode, cluster, kind, server, dbname, auth, use_cache, callback, timeout)


def _connector(kind: str, server: str, dbname: Any, auth: Any, timeout: float) -> Any:
    if kind == "sqlite3":
        return dbaio.sqlite3(server, timeout=timeout)
    if kind == "mongodb":
        return dbaio.mongodb(server, dbname, auth, timeout=timeout)
    return getattr(dbaio, kind)(server, dbname, auth, timeout=timeout)


class DbStub:
    """Each attribute is a database operation (``execute``, ``get``/``set``, ``find``...)."""

    def __init__(self, verb: DbVerb, mode: str, cluster: Any, kind: str, server: str, dbname: Any, auth: Any,
                 use_cache: bool, callback: Any, timeout: float) -> None:
        self._v = (verb, mode, cluster, kind, server, dbname, auth, use_cache, callback, timeout)

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        verb, mode, cluster, kind, server, dbname, auth, use_cache, callback, timeout = self._v
        op = "execute" if op == "excute" else op   # the spec's own spelling works too

        def run(*args: Any, **kw: Any) -> Task:
            def on(srv: str, db: Any, au: Any):
                return getattr(_connector(kind, srv, db, au, timeout), op)(*args, **kw)
            ident = make_ident(cluster.name if cluster else server, str(dbname), kind, op, (args, kw),
                               mapped=(mode == MAP)) + caller({}, auth)
            return verb._task(mode, cluster,
                              lambda m: on(m.server, m.dbname if dbname is None else dbname, m.auth or auth),
                              lambda: on(server, dbname, auth),
                              ident=ident, use_cache=use_cache, callback=callback, url=f"{kind}://{server}")
        return run
