"""The DB stubs of the standalone API: ``aquests.postgresql(...)``, ``redis``, ``mongodb``, ``sqlite3``.

A stub call works like the HTTP verbs: in a plain script it queues the request for ``fetchall()``
(and returns the request's meta dict); inside a running event loop, while the queue is idle, it
returns a coroutine to await (``r = await aquests.postgresql(...).execute(sql)``). Arguments are
checked at call time, so a bad one raises here and not inside the loop.

Drivers are imported on first use, so ``import aquests`` does not need the DB extras.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from .. import queue
from .args import check_params
from .pool import close_all
from .redis import command_name
from .resp import DEFAULT_MAX_REPLY_ITEMS, DEFAULT_MAX_REPLY_SIZE, encode_command

queue.on_finish(close_all)  # fetchall()'s loop closes its DB pools before it ends


def _dispatch(factory: Callable[[], Any], callback: Any, meta: dict | None, method: str) -> Any:
    from ..api import _dispatch as dispatch  # the HTTP verbs' own queue-or-await switch
    return dispatch(factory, callback, meta, method)


def _timeout(timeout: float | None) -> float:
    return queue.config().timeout if timeout is None else timeout


class _Stub:
    """Holds the connector and the per-stub callback/meta; subclasses name the operations."""

    def __init__(self, connector: Any, callback: Any, meta: dict | None) -> None:
        queue._check_callback(callback)
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
        self._db = connector
        self._callback = callback
        self._meta = meta

    def _submit(self, method: str, call: Callable[[], Any]) -> Any:
        return _dispatch(call, self._callback, self._meta, method)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._db.url}>"


class PostgreSQLStub(_Stub):
    def execute(self, sql: str, params: Sequence | dict | None = None) -> Any:
        """Queue (or, in a running loop, return the coroutine of) one statement."""
        check_params(sql, params)
        return self._submit("execute", lambda: self._db.execute(sql, params))

    excute = execute  # the spelling in the original README

    def transaction(self) -> Any:
        """``async with stub.transaction() as tx: await tx.execute(...)`` (asyncio code only)."""
        return self._db.transaction()


class SQLite3Stub(_Stub):
    def execute(self, sql: str, params: Sequence | dict | None = None) -> Any:
        check_params(sql, params)
        return self._submit("execute", lambda: self._db.execute(sql, params))

    excute = execute

    def transaction(self, statements: Sequence[str | tuple[str, Any]]) -> Any:
        """Run the statements atomically in one request."""
        stmts = list(statements)
        for s in stmts:
            check_params(*((s, None) if isinstance(s, str) else (s[0], s[1] if len(s) > 1 else None)))
        return self._submit("transaction", lambda: self._db.transaction(stmts))


class RedisStub(_Stub):
    """``stub.get("k")``, ``stub.set("k", "v")``: every attribute is a Redis command."""

    def execute(self, *args: Any) -> Any:
        encode_command(args)  # bad argument types raise now
        return self._submit(command_name(args[0]), lambda: self._db.execute(*args))

    execute_command = execute

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> Any:
        cmds = [tuple(c) for c in commands]
        if not cmds:
            raise ValueError("pipeline needs a list of non-empty commands")
        for c in cmds:
            encode_command(c)
        return self._submit("PIPELINE", lambda: self._db.pipeline(cmds))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def command(*args: Any) -> Any:
            return self.execute(name, *args)
        command.__name__ = name
        return command


class MongoDBStub(_Stub):
    def _op(self, method: str, collection: str, *args: Any, **kw: Any) -> Any:
        if not isinstance(collection, str) or not collection:
            raise ValueError(f"collection name must be a non-empty string, got {collection!r}")
        for a in args:
            if a is not None and not isinstance(a, (Mapping, list, tuple)):
                raise TypeError(f"{method}: expected a dict or list, got {type(a).__name__}")
        fn = getattr(self._db, method)
        return self._submit(method, lambda: fn(collection, *args, **kw))

    def find(self, collection: str, filter: Mapping | None = None, projection: Any = None, **kw: Any) -> Any:
        return self._op("find", collection, filter, projection, **kw)

    def findone(self, collection: str, filter: Mapping | None = None, projection: Any = None) -> Any:
        return self._op("findone", collection, filter, projection)

    find_one = findone

    def insert(self, collection: str, documents: Mapping | Sequence[Mapping]) -> Any:
        return self._op("insert", collection, documents)

    def update(self, collection: str, filter: Mapping, update: Mapping | Sequence, **kw: Any) -> Any:
        return self._op("update", collection, filter, update, **kw)

    def delete(self, collection: str, filter: Mapping, **kw: Any) -> Any:
        return self._op("delete", collection, filter, **kw)

    def aggregate(self, collection: str, pipeline: Sequence[Mapping]) -> Any:
        return self._op("aggregate", collection, pipeline)

    def count(self, collection: str, filter: Mapping | None = None) -> Any:
        return self._op("count", collection, filter)


def postgresql(server: str, dbname: str | None = None, auth: Any = None, callback: Any = None,
               meta: dict | None = None, *, timeout: float | None = None, pool_size: int | None = None
               ) -> PostgreSQLStub:
    """PostgreSQL stub (AQ-08): ``server`` is ``"host:port"`` (port 5432 by default),
    ``auth=(user, password)``; ``response.data`` rows read as ``row.city``."""
    from .pool import DEFAULT_MAXSIZE
    from .postgresql import PostgreSQL
    db = PostgreSQL(server, dbname, auth, timeout=_timeout(timeout), pool_size=pool_size or DEFAULT_MAXSIZE)
    return PostgreSQLStub(db, callback, meta)


pg = postgresql


def redis(server: str, dbname: Any = None, auth: Any = None, callback: Any = None,
          meta: dict | None = None, *, timeout: float | None = None, pool_size: int | None = None,
          decode_responses: bool = False, max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
          max_reply_items: int = DEFAULT_MAX_REPLY_ITEMS) -> RedisStub:
    """Redis stub (AQ-09): ``server`` is ``"host:port"`` (6379), ``dbname`` the database number,
    ``auth`` a password or ``(user, password)``; attributes are commands. One reply may take
    ``max_reply_size`` bytes and ``max_reply_items`` array elements (see :mod:`aquests.dbapi.redis`)."""
    from .pool import DEFAULT_MAXSIZE
    from .redis import Redis
    db = Redis(server, dbname, auth, timeout=_timeout(timeout), pool_size=pool_size or DEFAULT_MAXSIZE,
               decode_responses=decode_responses, max_reply_size=max_reply_size,
               max_reply_items=max_reply_items)
    return RedisStub(db, callback, meta)


def mongodb(server: str, dbname: str, auth: Any = None, callback: Any = None, meta: dict | None = None,
            *, timeout: float | None = None) -> MongoDBStub:
    """MongoDB stub (AQ-10): ``server`` is ``"host:port"`` (27017) or a ``mongodb://`` URI."""
    from .mongodb import MongoDB
    return MongoDBStub(MongoDB(server, dbname, auth, timeout=_timeout(timeout)), callback, meta)


def sqlite3(path: str | os.PathLike, callback: Any = None, meta: dict | None = None, *,
            timeout: float | None = None) -> SQLite3Stub:
    """SQLite3 stub (AQ-11): queries run in the database file's own thread, off the loop."""
    from .sqlite3 import SQLite3
    return SQLite3Stub(SQLite3(path, timeout=_timeout(timeout)), callback, meta)


__all__ = ["postgresql", "pg", "redis", "mongodb", "sqlite3"]
