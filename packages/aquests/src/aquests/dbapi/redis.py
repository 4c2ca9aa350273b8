"""Redis on asyncio with our own lean RESP2 client (no redis-py, no hiredis).

Why our own: per round trip redis-py's asyncio client spends several times more CPU than the wire
needs (see docs/aquests-db.md for the numbers). Here a command is one ``transport.write`` and its
reply is parsed in ``data_received`` by ``resp.RespReader``.

``Redis(server, ...).execute("SET", "k", "v")`` / ``.pipeline([("SET", "k", 1), ("GET", "k")])``
return ``DBResponse`` objects; error replies become ``DB_ERROR`` responses, network failures the 73x
codes. One command (or one pipeline) is in flight per pooled connection.

A reply (each reply of a pipeline) may take ``max_reply_size`` bytes (512 MiB) and hold
``max_reply_items`` array elements (16 Mi, nested arrays counted too); past either the call fails with
PROTOCOL_ERROR ("the Redis reply exceeded the limit ...") and its connection is closed, since the
rest of that reply is still coming.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Iterable, Sequence

from .. import codes
from .args import REDIS_PORT, parse_auth, parse_server
from .deadline import Deadline
from .pool import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAXSIZE, LoopPooled
from .resp import (DEFAULT_MAX_REPLY_ITEMS, DEFAULT_MAX_REPLY_SIZE, NOT_READY, ProtocolError, ReplyError,
                   RespReader, encode_command)
from .response import DBResponse

DEFAULT_TIMEOUT = 10.0
# Python-friendly method names for commands whose Redis name is a Python keyword or too terse
COMMAND_ALIASES = {"DELETE": "DEL", "DEL_": "DEL", "EXEC_": "EXEC"}


# commands that would change a pooled connection for whoever borrows it next, or stop its replies
# from matching requests one to one
REFUSED = {
    "SELECT": "choose the database with the dbname argument",
    "AUTH": "log in with the auth argument",
    "HELLO": "the client speaks RESP2",
    "SUBSCRIBE": "pub/sub is not supported on pooled connections",
    "PSUBSCRIBE": "pub/sub is not supported on pooled connections",
    "SSUBSCRIBE": "pub/sub is not supported on pooled connections",
    "MONITOR": "MONITOR is not supported on pooled connections",
}


def command_name(name: Any) -> str:
    """The Redis command for a method name; refused commands raise ValueError."""
    upper = str(name).upper()
    upper = COMMAND_ALIASES.get(upper, upper)
    if upper in REFUSED:
        raise ValueError(f"Redis {upper} cannot be sent through aquests: {REFUSED[upper]}")
    return upper


class RedisProtocol(asyncio.Protocol):
    """One connection: replies are matched to requests in order."""

    def __init__(self, max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
                 max_reply_items: int = DEFAULT_MAX_REPLY_ITEMS) -> None:
        self._reader = RespReader(max_reply_size, max_reply_items)
        self._pending: deque[list] = deque()  # [future, replies still expected, collected list | None]
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._deadline = Deadline(self.loop, self._expire)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = reader.get()
            except ProtocolError as exc:
                self._fail(exc)
                return
            if reply is NOT_READY:
                if not pending and reader.partial:
                    # the start of a reply nobody asked for: kept, it would answer the next request
                    self._fail(ProtocolError("bytes after the last reply"))
                return
            if not pending:
                self._fail(ProtocolError("reply without a request"))
                return
            entry = pending[0]
            if entry[2] is None:
                pending.popleft()
                if not pending:
                    self._deadline.done()
                if not entry[0].done():
                    entry[0].set_result(reply)
            else:
                entry[2].append(reply)
                entry[1] -= 1
                if entry[1] == 0:
                    pending.popleft()
                    if not pending:
                        self._deadline.done()
                    if not entry[0].done():
                        entry[0].set_result(entry[2])

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("Redis closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        self.close()
        while self._pending:
            fut = self._pending.popleft()[0]
            if not fut.done():
                fut.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        self._deadline.cancel()
        if self.transport is not None:
            self.transport.close()

    def send(self, payload: bytes, replies: int, deadline: float | None) -> asyncio.Future:
        """Write ``payload`` and expect ``replies`` replies (1: the reply itself; more: a list)."""
        if self.closed:
            raise ConnectionResetError("Redis connection is closed")
        loop = self.loop
        fut = loop.create_future()
        self._pending.append([fut, replies, None if replies == 1 else []])
        self.transport.write(payload)  # type: ignore[union-attr]
        if deadline is not None:
            self._deadline.start(deadline)
        return fut

    def _expire(self) -> None:
        # fail everything in flight and drop the connection: a late reply would answer the next request
        self._fail(TimeoutError("no answer from Redis within the timeout"))


async def open_connection(host: str, port: int, user: str | None, password: str | None,
                          db: int, max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
                          max_reply_items: int = DEFAULT_MAX_REPLY_ITEMS) -> RedisProtocol:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: RedisProtocol(max_reply_size, max_reply_items), host, port)
    try:
        setup: list[tuple] = []
        if password is not None:
            setup.append(("AUTH", user, password) if user else ("AUTH", password))
        if db:
            setup.append(("SELECT", db))
        if setup:
            replies = await proto.send(b"".join(encode_command(c) for c in setup), len(setup), None)
            replies = replies if len(setup) > 1 else [replies]
            for reply in replies:
                if isinstance(reply, ReplyError):
                    raise reply
    except BaseException:
        proto.close()
        raise
    return proto


def _check_db(dbname: Any) -> int:
    if dbname in (None, ""):
        return 0
    try:
        db = int(dbname)
    except (TypeError, ValueError):
        raise ValueError(f"Redis database must be a number, got {dbname!r}") from None
    if db < 0:
        raise ValueError(f"Redis database must be >= 0, got {db}")
    return db


def _check_limit(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class Redis(LoopPooled):
    """Commands to one Redis server/database over the loop's shared pool."""

    def __init__(self, server: str, dbname: Any = None, auth: Any = None, *,
                 timeout: float = DEFAULT_TIMEOUT, pool_size: int = DEFAULT_MAXSIZE,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, decode_responses: bool = False,
                 max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
                 max_reply_items: int = DEFAULT_MAX_REPLY_ITEMS) -> None:
        self.timeout = self.check_timeout(timeout)
        self.host, self.port = parse_server(server, REDIS_PORT)
        self.db = _check_db(dbname)
        self.user, self._password = parse_auth(auth)
        self.max_reply_size = _check_limit("max_reply_size", max_reply_size)
        self.max_reply_items = _check_limit("max_reply_items", max_reply_items)
        # see PostgreSQL.key; a connection's reply limits are set when it opens, so they part pools too
        self.key = ("redis", server, self.db, self.user, self._password, max_reply_size, max_reply_items)
        self.url = f"redis://{server}/{self.db}"
        self.pool_size = pool_size
        self.idle_timeout = idle_timeout
        self.decode_responses = decode_responses

    def _connector(self):
        args = (self.host, self.port, self.user, self._password, self.db, self.max_reply_size,
                self.max_reply_items)
        return lambda: open_connection(*args)

    async def execute(self, *args: Any, meta: dict | None = None, timeout: float | None = None) -> DBResponse:
        """Run one command, e.g. ``execute("SET", "k", "v", "EX", 10)``."""
        if not args:
            raise ValueError("empty Redis command")
        name = command_name(args[0])
        return await self._roundtrip(encode_command((name, *args[1:])), 1, name, meta, timeout)

    execute_command = execute

    async def pipeline(self, commands: Iterable[Sequence[Any]], *, meta: dict | None = None,
                       timeout: float | None = None) -> DBResponse:
        """Send several commands in one write; ``data`` is the list of their replies in order.

        An error reply stays in the list as a ``ReplyError`` and makes the response a DB_ERROR.
        """
        cmds = [(command_name(c[0]), *c[1:]) if c else () for c in commands]
        if not cmds or any(not c for c in cmds):
            raise ValueError("pipeline needs a list of non-empty commands")
        payload = b"".join(encode_command(c) for c in cmds)
        return await self._roundtrip(payload, len(cmds), "PIPELINE", meta, timeout, multi=True)

    async def _roundtrip(self, payload: bytes, replies: int, method: str, meta: dict | None,
                         timeout: float | None, multi: bool = False) -> DBResponse:
        if multi and replies == 1:
            async def work(conn: RedisProtocol, deadline: float) -> Any:
                return [await conn.send(payload, 1, deadline)]
        else:
            def work(conn: RedisProtocol, deadline: float) -> Any:
                return conn.send(payload, replies, deadline)
        return await self._borrowed(work, lambda reply, elapsed: self._response(reply, method, meta, elapsed),
                                    method, meta, timeout)

    def _response(self, reply: Any, method: str, meta: dict | None, elapsed: float) -> DBResponse:
        first_error = reply if isinstance(reply, ReplyError) else None
        if first_error is None and isinstance(reply, list) and method == "PIPELINE":
            first_error = next((r for r in reply if isinstance(r, ReplyError)), None)
        data = _decode(reply) if self.decode_responses else reply
        if isinstance(reply, ReplyError):
            data = None
        if first_error is not None:
            res = DBResponse(data, None, status_code=codes.DB_ERROR,
                             reason=f"{codes.REASONS[codes.DB_ERROR]}: {first_error}",
                             expt_class=ReplyError, expt_str=str(first_error), url=self.url,
                             method=method, meta=meta, elapsed=elapsed)
            return res
        return DBResponse(data, None, url=self.url, method=method, meta=meta, elapsed=elapsed)

    def __getattr__(self, name: str) -> Any:
        """``await r.get("k")``, ``await r.hset("h", "f", 1)``: any Redis command by name."""
        if name.startswith("_"):
            raise AttributeError(name)
        command = command_name(name)

        async def call(*args: Any, meta: dict | None = None, timeout: float | None = None) -> DBResponse:
            return await self.execute(command, *args, meta=meta, timeout=timeout)

        call.__name__ = name
        return call


__all__ = ["Redis", "RedisProtocol", "ReplyError", "open_connection"]
