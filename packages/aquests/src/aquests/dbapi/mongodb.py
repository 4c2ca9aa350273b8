"""MongoDB through pymongo's asyncio client (``AsyncMongoClient``).

pymongo keeps its own connection pool, so here one client per (server, user) lives in the running
loop's registry and is closed with the other pools. The operations keep the short names of the
original API (``find``, ``findone``, ``insert``, ``update``, ``delete``, ``aggregate``, ``count``)
and give ``DBResponse`` objects whose documents read as attributes (``doc.name``).
"""
from __future__ import annotations

import asyncio
import struct
from typing import Any, Awaitable, Callable, Mapping, Sequence

from .. import codes
from .args import MONGODB_PORT, parse_auth, parse_server
from .errors import classify, failure
from .pool import DEFAULT_MAXSIZE, get_pool
from .response import DBResponse, Document

try:
    import bson.errors
    import pymongo
    import pymongo.errors
    from pymongo import AsyncMongoClient
except ImportError:  # pragma: no cover - the extra is missing
    pymongo = None  # type: ignore[assignment]

DEFAULT_TIMEOUT = 10.0


class _ClientHandle:
    """Registry entry: one AsyncMongoClient per loop and (server, user)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        self._closed = True
        await self.client.close()


# what pymongo says when the bytes from the server are not the MongoDB wire protocol
_WIRE_WORDS = ("not longer than standard message header", "larger than server max message size",
               "got opcode", "got response id", "unsupported response opcode")


# pymongo's functions reading a reply: a plain TypeError/AttributeError raised under one of them
# comes from the shape of the server's answer, not from the caller's arguments
_REPLY_FRAMES = frozenset(("receive_message", "unpack", "unpack_response", "_unpack_response", "_send_message",
                           "_run_command"))


def _malformed_reply(exc: BaseException) -> bool:
    """True when ``exc`` is pymongo tripping over a reply that is not the wire protocol or not the
    documents it expects (a bad length, bad BSON, a find answer without ``cursor``, ...)."""
    if isinstance(exc, (struct.error, bson.errors.InvalidBSON, KeyError, IndexError)):
        return True
    if isinstance(exc, (TypeError, AttributeError)):
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name in _REPLY_FRAMES:
                return True
            tb = tb.tb_next
    return False


def _network_code(exc: BaseException) -> int | None:
    """The code of a pymongo failure that did not come from the server's answer, else None.

    Server selection gives up with the last network problem in its message: garbage on the wire is
    a protocol error, a refused or closed connection keeps its own code, anything else (a server
    that never answers) is a timeout, not a "database error".
    """
    if pymongo is None:
        return None
    if _malformed_reply(exc):
        return codes.PROTOCOL_ERROR
    if not isinstance(exc, pymongo.errors.PyMongoError):
        return None
    text = str(exc).lower()
    if isinstance(exc, pymongo.errors.ProtocolError) or any(w in text for w in _WIRE_WORDS):
        return codes.PROTOCOL_ERROR
    if isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
        code = classify(exc)
        return code if code != codes.DB_ERROR else codes.TIMEOUT
    return None


def _doc(d: Any) -> Any:
    return Document(d) if isinstance(d, dict) else d


class MongoDB:
    """Operations on one database of one MongoDB server."""

    def __init__(self, server: str, dbname: str, auth: Any = None, *, timeout: float = DEFAULT_TIMEOUT,
                 pool_size: int = DEFAULT_MAXSIZE) -> None:
        if pymongo is None:
            raise RuntimeError("MongoDB support needs pymongo: pip install 'aquests[mongodb]'")
        if not isinstance(dbname, str) or not dbname:
            raise ValueError(f"MongoDB needs a database name, got {dbname!r}")
        if timeout is None or timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if server.startswith(("mongodb://", "mongodb+srv://")):
            self.uri, self.host, self.port = server, server, 0
        else:
            self.host, self.port = parse_server(server, MONGODB_PORT)
            self.uri = ""
        self.user, self._password = parse_auth(auth)
        self.dbname = dbname
        self.timeout = timeout
        self.pool_size = pool_size
        self.key = ("mongodb", server, self.user, self._password)
        self.url = f"mongodb://{server}/{dbname}" if not self.uri else server

    def _client(self) -> Any:
        def make() -> _ClientHandle:
            # pymongo gives up selecting a server a little before our timeout, so a refused or
            # unreachable server is reported as such and not as a plain timeout
            ms = max(1, int(self.timeout * 500))
            opts: dict[str, Any] = dict(serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
                                        maxPoolSize=self.pool_size, directConnection=True)
            if self.user:
                opts.update(username=self.user, password=self._password)
            if self.uri:
                return _ClientHandle(AsyncMongoClient(self.uri, **opts))
            return _ClientHandle(AsyncMongoClient(self.host, self.port, **opts))
        return get_pool(self.key, make).client

    def collection(self, name: str) -> Any:
        """The pymongo ``AsyncCollection`` (for anything the short names do not cover)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"collection name must be a non-empty string, got {name!r}")
        return self._client()[self.dbname][name]

    async def _run(self, method: str, collection: str, op: Callable[[Any], Awaitable[Any]],
                   meta: dict | None, timeout: float | None) -> DBResponse:
        coll = self.collection(collection)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                data = await op(coll)
        except Exception as exc:
            code = _network_code(exc)
            if code == codes.PROTOCOL_ERROR and not isinstance(exc, pymongo.errors.PyMongoError):
                # a bare KeyError/struct.error says nothing by itself: name what was wrong
                exc = pymongo.errors.ProtocolError(f"malformed MongoDB reply ({type(exc).__name__}: {exc})")
            return failure(exc, url=self.url, method=method, meta=meta, code=code)
        return DBResponse(data, None, url=self.url, method=method, meta=meta,
                          elapsed=loop.time() - started)

    # -- operations (all return DBResponse, never raise for server or network errors)
    async def find(self, collection: str, filter: Mapping | None = None, projection: Any = None, *,
                   skip: int = 0, limit: int = 0, sort: Any = None, meta: dict | None = None,
                   timeout: float | None = None) -> DBResponse:
        """``data``: the matching documents (a list)."""
        async def op(coll: Any) -> list:
            cursor = coll.find(filter or {}, projection, skip=skip, limit=limit, sort=sort)
            return [_doc(d) for d in await cursor.to_list()]
        return await self._run("find", collection, op, meta, timeout)

    async def findone(self, collection: str, filter: Mapping | None = None, projection: Any = None, *,
                      meta: dict | None = None, timeout: float | None = None) -> DBResponse:
        """``data``: the first matching document, or None."""
        async def op(coll: Any) -> Any:
            return _doc(await coll.find_one(filter or {}, projection))
        return await self._run("findone", collection, op, meta, timeout)

    find_one = findone

    async def insert(self, collection: str, documents: Mapping | Sequence[Mapping], *,
                     meta: dict | None = None, timeout: float | None = None) -> DBResponse:
        """``data``: the inserted ``_id`` (one document) or the list of ids (a list of documents)."""
        if isinstance(documents, Mapping):
            async def op(coll: Any) -> Any:
                return (await coll.insert_one(documents)).inserted_id
        elif isinstance(documents, (list, tuple)) and documents:
            async def op(coll: Any) -> Any:
                return (await coll.insert_many(list(documents))).inserted_ids
        else:
            raise TypeError("insert takes a document (dict) or a non-empty list of documents")
        return await self._run("insert", collection, op, meta, timeout)

    async def update(self, collection: str, filter: Mapping, update: Mapping | Sequence, *,
                     multi: bool = False, upsert: bool = False, meta: dict | None = None,
                     timeout: float | None = None) -> DBResponse:
        """``data``: ``{"matched": n, "modified": n, "upserted_id": id or None}``."""
        async def op(coll: Any) -> dict:
            fn = coll.update_many if multi else coll.update_one
            r = await fn(filter, update, upsert=upsert)
            return Document(matched=r.matched_count, modified=r.modified_count, upserted_id=r.upserted_id)
        return await self._run("update", collection, op, meta, timeout)

    async def delete(self, collection: str, filter: Mapping, *, multi: bool = True,
                     meta: dict | None = None, timeout: float | None = None) -> DBResponse:
        """Delete every match (``multi=False``: the first one); ``data``: ``{"deleted": n}``."""
        if not isinstance(filter, Mapping):
            raise TypeError("delete needs a filter dict ({} deletes everything)")

        async def op(coll: Any) -> dict:
            fn = coll.delete_many if multi else coll.delete_one
            return Document(deleted=(await fn(filter)).deleted_count)
        return await self._run("delete", collection, op, meta, timeout)

    async def aggregate(self, collection: str, pipeline: Sequence[Mapping], *, meta: dict | None = None,
                        timeout: float | None = None) -> DBResponse:
        """``data``: the documents the pipeline produced."""
        if not isinstance(pipeline, (list, tuple)):
            raise TypeError("aggregate needs a pipeline: a list of stage dicts")

        async def op(coll: Any) -> list:
            cursor = await coll.aggregate(list(pipeline))
            return [_doc(d) for d in await cursor.to_list()]
        return await self._run("aggregate", collection, op, meta, timeout)

    async def count(self, collection: str, filter: Mapping | None = None, *, meta: dict | None = None,
                    timeout: float | None = None) -> DBResponse:
        """``data``: the number of matching documents."""
        async def op(coll: Any) -> int:
            return await coll.count_documents(filter or {})
        return await self._run("count", collection, op, meta, timeout)


__all__ = ["MongoDB"]
