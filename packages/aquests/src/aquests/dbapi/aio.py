"""Awaitable DB connectors for asyncio code: every call returns a coroutine yielding a DBResponse.

    db = aquests.aio.postgresql("127.0.0.1:5432", "mydb", ("user", "pw"))
    r = await db.execute("SELECT city FROM weather WHERE t_high > %s", (20,))
    async with db.transaction() as tx:
        await tx.execute("INSERT ...")

Unlike the stubs of ``aquests.postgresql(...)`` these never queue: they always run on the
caller's loop, sharing that loop's connection pools.
"""
from __future__ import annotations

import os
from typing import Any

from .pool import DEFAULT_MAXSIZE
from .resp import DEFAULT_MAX_REPLY_ITEMS, DEFAULT_MAX_REPLY_SIZE


def postgresql(server: str, dbname: str | None = None, auth: Any = None, *, timeout: float = 10.0,
               pool_size: int = DEFAULT_MAXSIZE) -> Any:
    from .postgresql import PostgreSQL
    return PostgreSQL(server, dbname, auth, timeout=timeout, pool_size=pool_size)


pg = postgresql


def redis(server: str, dbname: Any = None, auth: Any = None, *, timeout: float = 10.0,
          pool_size: int = DEFAULT_MAXSIZE, decode_responses: bool = False,
          max_reply_size: int = DEFAULT_MAX_REPLY_SIZE, max_reply_items: int = DEFAULT_MAX_REPLY_ITEMS) -> Any:
    from .redis import Redis
    return Redis(server, dbname, auth, timeout=timeout, pool_size=pool_size,
                 decode_responses=decode_responses, max_reply_size=max_reply_size,
                 max_reply_items=max_reply_items)


def mongodb(server: str, dbname: str, auth: Any = None, *, timeout: float = 10.0) -> Any:
    from .mongodb import MongoDB
    return MongoDB(server, dbname, auth, timeout=timeout)


def sqlite3(path: str | os.PathLike, *, timeout: float = 10.0) -> Any:
    from .sqlite3 import SQLite3
    return SQLite3(path, timeout=timeout)


__all__ = ["postgresql", "pg", "redis", "mongodb", "sqlite3"]
