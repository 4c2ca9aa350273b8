"""``"@name"`` for the DB stubs: ``aquests.postgresql("@mydb").execute(sql)`` goes through a cluster.

Each call picks one member of the cluster (spare capacity, fail-over on connection errors, as in
:mod:`aquests.cluster`) and runs on that member's connector. A member string gives the server,
database and credentials (``"host:port/db/user/password"``); the stub's own ``dbname``/``auth``
fill in what a member leaves out. Database errors (740) are answers, not retried.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .aliases import is_cluster_url, split_cluster_url
from .cluster import Cluster
from .members import DB_MONGODB, DB_PGSQL, DB_REDIS, DB_SQLITE3, Member


class ClusterConnector:
    """Looks like one DB connector; every operation is sent through ``cluster.call``."""

    def __init__(self, cluster: Cluster, make: Callable[[Member], Any]) -> None:
        self._cluster = cluster
        self._make = make
        self._connectors: dict[str, Any] = {}
        self.url = f"@{cluster.name}"

    def _on(self, member: Member) -> Any:
        conn = self._connectors.get(member.address)
        if conn is None:
            conn = self._connectors[member.address] = self._make(member)
        return conn

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def operation(*args: Any, **kw: Any) -> Any:
            return self._cluster.call(lambda m: getattr(self._on(m), name)(*args, **kw))
        operation.__name__ = name
        return operation


class PgClusterConnector(ClusterConnector):
    def transaction(self, **kw: Any) -> Any:
        """A transaction stays on one member, chosen when it begins (no fail-over inside it)."""
        member = self._cluster.choose()
        if member is None:
            raise RuntimeError(f"cluster @{self._cluster.name} has no member for a transaction")
        self._cluster.release(member)
        return self._on(member).transaction(**kw)


def _cluster(server: str, ctype: str) -> Cluster:
    cluster, path = split_cluster_url(server)
    if cluster.ctype != ctype:
        raise ValueError(f"cluster @{cluster.name} is of type {cluster.ctype!r}, not {ctype!r}")
    if path != "/":
        raise ValueError(f"a database cluster address is '@name', not {server!r}")
    return cluster


def wrap_stubs(postgresql: Callable[..., Any], redis: Callable[..., Any], mongodb: Callable[..., Any],
               sqlite3: Callable[..., Any]) -> tuple[Callable[..., Any], ...]:
    """The stub constructors of :mod:`aquests.dbapi.stubs`, also accepting ``"@name"`` servers."""
    from .dbapi import aio, stubs

    def _timeout(kw: dict) -> dict:
        from . import queue

        kw = dict(kw)
        if kw.get("timeout") is None:
            kw["timeout"] = queue.config().timeout
        return kw

    def pg_stub(server: str, dbname: str | None = None, auth: Any = None, callback: Any = None,
                meta: dict | None = None, **kw: Any) -> Any:
        if not is_cluster_url(server):
            return postgresql(server, dbname, auth, callback, meta, **kw)
        cluster, opts = _cluster(server, DB_PGSQL), {k: v for k, v in _timeout(kw).items() if v is not None}
        make = lambda m: aio.postgresql(m.server, m.dbname or dbname, m.auth or auth, **opts)
        return stubs.PostgreSQLStub(PgClusterConnector(cluster, make), callback, meta)

    def redis_stub(server: str, dbname: Any = None, auth: Any = None, callback: Any = None,
                   meta: dict | None = None, **kw: Any) -> Any:
        if not is_cluster_url(server):
            return redis(server, dbname, auth, callback, meta, **kw)
        cluster, opts = _cluster(server, DB_REDIS), {k: v for k, v in _timeout(kw).items() if v is not None}
        make = lambda m: aio.redis(m.server, m.dbname if m.dbname is not None else dbname, m.auth or auth, **opts)
        return stubs.RedisStub(ClusterConnector(cluster, make), callback, meta)

    def mongodb_stub(server: str, dbname: str | None = None, auth: Any = None, callback: Any = None,
                     meta: dict | None = None, **kw: Any) -> Any:
        if not is_cluster_url(server):
            return mongodb(server, dbname, auth, callback, meta, **kw)
        cluster, opts = _cluster(server, DB_MONGODB), _timeout(kw)
        make = lambda m: aio.mongodb(m.server, m.dbname or dbname, m.auth or auth, **opts)
        return stubs.MongoDBStub(ClusterConnector(cluster, make), callback, meta)

    def sqlite3_stub(path: Any, callback: Any = None, meta: dict | None = None, **kw: Any) -> Any:
        if not is_cluster_url(path):
            return sqlite3(path, callback, meta, **kw)
        cluster, opts = _cluster(path, DB_SQLITE3), _timeout(kw)
        return stubs.SQLite3Stub(ClusterConnector(cluster, lambda m: aio.sqlite3(m.path, **opts)), callback, meta)

    for wrapper, original in ((pg_stub, postgresql), (redis_stub, redis), (mongodb_stub, mongodb),
                              (sqlite3_stub, sqlite3)):
        wrapper.__name__, wrapper.__doc__ = original.__name__, original.__doc__
    return pg_stub, redis_stub, mongodb_stub, sqlite3_stub
