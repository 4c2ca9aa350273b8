"""PostgreSQL through psycopg2's asynchronous mode, driven by the event loop.

``psycopg2.connect(dsn, async_=1)`` gives a non-blocking libpq connection; we call ``conn.poll()``
whenever its socket is readable (a reader stays registered for the connection's life, which also
notices a server that goes away while the connection is idle) or, when libpq asks, writable. No
thread per query. The limits of the mode: autocommit always (transactions are ``BEGIN``/``COMMIT``
sent as SQL on one pinned connection, see ``Transaction``), no ``executemany``, no server-side
cursors, one query in flight per connection (the pool guarantees it).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any, Sequence

from .args import PG_PORT, check_params, parse_auth, parse_server
from .deadline import Deadline
from .errors import failure
from .pool import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAXSIZE, LoopPooled, Pool, acquire_within
from .response import DBResponse, make_rows

try:
    import psycopg2
    import psycopg2.extensions as _ext
except ImportError:  # pragma: no cover - the extra is missing
    psycopg2 = None  # type: ignore[assignment]

DEFAULT_TIMEOUT = 10.0
SMALL_QUERY = 4096  # bytes: always flushed whole by execute() into an idle connection's socket buffer


def _require() -> None:
    if psycopg2 is None:
        raise RuntimeError("PostgreSQL support needs psycopg2: pip install 'aquests[postgresql]'")


def make_dsn(server: str, dbname: str | None = None, auth: Any = None) -> str:
    """A libpq DSN from the stub's arguments; a ``postgresql://`` URL passes through."""
    _require()
    if server.startswith(("postgresql://", "postgres://")):
        return server
    host, port = parse_server(server, PG_PORT)
    user, password = parse_auth(auth)
    return _ext.make_dsn(host=host, port=port, dbname=dbname, user=user, password=password)


class PgConnection:
    """One asynchronous psycopg2 connection registered with the running loop."""

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._loop = loop
        self._fd = conn.fileno()
        self._fut: asyncio.Future | None = None
        self._writing = False
        self._broken = False
        self._cursor: Any = None
        self._result_of: Any = None
        self._deadline = Deadline(loop, self._expire)
        self.notifies = conn.notifies

    @classmethod
    async def open(cls, dsn: str) -> PgConnection:
        _require()
        loop = asyncio.get_running_loop()
        dsn = await _resolved(dsn, loop)
        self = cls(psycopg2.connect(dsn, async_=1), loop)
        self._fut = loop.create_future()
        try:
            self._connect_step()
            await self._fut
        except BaseException:
            self.close()
            raise
        self._fd = self._conn.fileno()
        loop.add_reader(self._fd, self._on_readable)  # from now on, for the connection's life
        self._cursor = self._conn.cursor()
        return self

    def _connect_step(self) -> None:
        """Connecting: libpq may close a socket and open another one (next address, SSL retry),
        possibly with the same number, so watch exactly one event on the current socket at a time."""
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        fut = self._fut
        if fut is None or fut.done():
            return
        try:
            state = self._conn.poll()
        except BaseException as exc:
            self._fd = -1
            fut.set_exception(exc)
            return
        self._fd = self._conn.fileno()
        if state == _ext.POLL_OK:
            self._fd = -1
            self._fut = None
            fut.set_result(None)
        elif state == _ext.POLL_READ:
            self._loop.add_reader(self._fd, self._connect_step)
        else:
            self._loop.add_writer(self._fd, self._connect_step)

    @property
    def closed(self) -> bool:
        return self._broken or self._conn.closed != 0

    def _unwatch(self) -> None:
        """Stop watching the socket. Done the moment libpq gives up on it: libpq has then closed
        the descriptor already, and its number may be handed to another socket before we close."""
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._writing = False
            self._fd = -1

    def close(self) -> None:
        self._deadline.cancel()
        self._unwatch()
        self._broken = True
        if not self._conn.closed:
            self._conn.close()
        fut, self._fut = self._fut, None
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionError("connection closed"))

    def query(self, sql: str, params: Any = None, deadline: float | None = None) -> asyncio.Future:
        """Send one statement; the future gives (description, raw records or None, rowcount).

        ``deadline`` (loop time) fails the future with TimeoutError and drops the connection, whose
        query is left half-done.
        """
        if self._fut is not None:
            raise RuntimeError("a query is already in flight on this connection")
        if self.closed:
            raise ConnectionError("connection already closed")
        cur = self._cursor
        cur.execute(sql, params)
        if len(cur.query) < SMALL_QUERY:
            # execute() has already flushed a small query to the socket; polling now would only
            # read an empty socket, so wait for the reply to make it readable
            fut = self._fut = self._loop.create_future()
            self._result_of = cur
        else:
            fut = self._wait(cur)
        if deadline is not None and self._fut is not None:
            self._deadline.start(deadline)
        return fut

    def _expire(self) -> None:
        fut, self._fut = self._fut, None
        if fut is not None and not fut.done():
            fut.set_exception(TimeoutError("no answer from PostgreSQL within the timeout"))
        self.close()

    # -- polling
    def _wait(self, cursor: Any = None) -> asyncio.Future:
        fut = self._fut = self._loop.create_future()
        self._result_of = cursor
        self._step()
        return fut

    def _step(self) -> None:
        try:
            state = self._conn.poll()
        except BaseException as exc:
            if self._conn.closed or not _is_sql_error(exc):
                self._broken = True  # the pool drops it; stop polling a socket libpq may have closed
                self._unwatch()
            self._finish(exc)
            return
        if state == _ext.POLL_OK:
            self._finish(None)
        elif state == _ext.POLL_WRITE:
            if not self._writing:
                self._loop.add_writer(self._fd, self._step)
                self._writing = True
        elif self._writing:  # POLL_READ: the reader is always registered
            self._loop.remove_writer(self._fd)
            self._writing = False

    def _finish(self, exc: BaseException | None) -> None:
        self._deadline.done()
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        fut, self._fut = self._fut, None
        if fut is None or fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
            return
        cur = self._result_of
        if cur is None:
            fut.set_result(None)
            return
        desc = cur.description
        try:
            fut.set_result((desc, cur.fetchall() if desc is not None else None, cur.rowcount))
        except Exception as fetch_exc:  # decoding a value failed
            fut.set_exception(fetch_exc)

    def _on_readable(self) -> None:
        if self._fut is not None:
            self._step()
            return
        try:  # idle: take notifications, or learn the server went away
            self._conn.poll()
        except Exception:
            self.close()


class PostgreSQL(LoopPooled):
    """Requests to one PostgreSQL (server, db, user); connections come from the loop's shared pool."""

    def __init__(self, server: str, dbname: str | None = None, auth: Any = None, *,
                 timeout: float = DEFAULT_TIMEOUT, pool_size: int = DEFAULT_MAXSIZE,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.timeout = self.check_timeout(timeout)
        self.dsn = make_dsn(server, dbname, auth)
        user, _ = parse_auth(auth)
        # (server, db, user), and the whole DSN: a wrong password must never borrow a logged-in connection
        self.key = ("pg", server, dbname, user, self.dsn)
        self.url = f"postgresql://{server}/{dbname or ''}"
        self.pool_size = pool_size
        self.idle_timeout = idle_timeout

    def _connector(self):
        dsn = self.dsn
        return lambda: PgConnection.open(dsn)

    async def execute(self, sql: str, params: Sequence | dict | None = None, *, meta: dict | None = None,
                      timeout: float | None = None) -> DBResponse:
        """Run ``sql`` on a pooled connection; never raises for DB or network failures."""
        check_params(sql, params)
        url = self.url
        return await self._borrowed(
            lambda conn, deadline: conn.query(sql, params, deadline),
            lambda res, elapsed: _response(*res, url=url, meta=meta, elapsed=elapsed),
            "execute", meta, timeout, keeps=_keeps)

    excute = execute  # the spelling of the original README

    def transaction(self, *, timeout: float | None = None) -> Transaction:
        """``async with pg.transaction() as tx: await tx.execute(...)`` on one pinned connection."""
        return Transaction(self, self.timeout if timeout is None else timeout)


def _keeps(conn: PgConnection, exc: Exception) -> bool:
    """An SQL error leaves the connection usable; anything else (network, timeout) does not."""
    return not conn.closed and _is_sql_error(exc)


def _response(desc: Any, records: list | None, rowcount: int, *, url: str, meta: dict | None,
              elapsed: float) -> DBResponse:
    rows = make_rows([d.name for d in desc], records) if desc is not None else []
    return DBResponse(rows, desc, url=url, method="execute", meta=meta, rowcount=rowcount, elapsed=elapsed)


async def _resolved(dsn: str, loop: asyncio.AbstractEventLoop) -> str:
    """Look the host name up on the loop and hand libpq the address (its own lookup would block)."""
    params = _ext.parse_dsn(dsn)
    host = params.get("host", "")
    if not host or "hostaddr" in params or host.startswith("/") or "," in host:
        return dsn
    try:
        ipaddress.ip_address(host)
        return dsn
    except ValueError:
        pass
    infos = await loop.getaddrinfo(host, params.get("port") or PG_PORT, type=socket.SOCK_STREAM)
    addrs = list(dict.fromkeys(info[4][0] for info in infos))  # libpq tries them in order, as it would
    return _ext.make_dsn(dsn, host=",".join([host] * len(addrs)), hostaddr=",".join(addrs))


def _is_sql_error(exc: BaseException) -> bool:
    """The server rejected the statement but the connection is fine (syntax, constraint, ...).

    Only an error the server sent carries a SQLSTATE (``pgcode``); one libpq made up itself
    ("unexpected response from server", "lost synchronization") means the replies may no longer
    line up with the queries, so that connection must not answer the next one.
    """
    return psycopg2 is not None and isinstance(exc, psycopg2.Error) and bool(exc.pgcode) and not isinstance(
        exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


class Transaction:
    """BEGIN on enter, COMMIT on a clean exit, ROLLBACK when the block raised or a statement failed.

    ``tx.execute`` returns responses like ``PostgreSQL.execute``; call ``raise_for_status()`` on one
    to leave the block early. ``tx.committed`` tells what happened at the end.
    """

    def __init__(self, db: PostgreSQL, timeout: float) -> None:
        self._db = db
        self._timeout = timeout
        self._pool: Pool[PgConnection] | None = None
        self._conn: PgConnection | None = None
        self.failed = False
        self.committed: bool | None = None

    async def __aenter__(self) -> Transaction:
        """Raises ``DBError`` (with the failed response) when no transaction could be started."""
        self._pool = self._db.pool
        try:
            self._conn = await acquire_within(self._pool, self._timeout)
        except Exception as exc:
            failure(exc, url=self._db.url, method="BEGIN", meta=None).raise_for_status()
        begun = await self.execute("BEGIN")
        if not begun.ok:
            self._drop(broken=True)
            begun.raise_for_status()
        return self

    async def execute(self, sql: str, params: Sequence | dict | None = None, *,
                      meta: dict | None = None) -> DBResponse:
        check_params(sql, params)
        conn = self._conn
        if conn is None:
            raise RuntimeError("transaction is not active (use it inside 'async with')")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            desc, records, rowcount = await conn.query(sql, params, started + self._timeout)
        except Exception as exc:
            self.failed = True
            return failure(exc, url=self._db.url, method="execute", meta=meta)
        except BaseException:
            self._drop(broken=True)
            raise
        return _response(desc, records, rowcount, url=self._db.url, meta=meta, elapsed=loop.time() - started)

    excute = execute

    async def commit(self) -> DBResponse:
        return await self._end("ROLLBACK" if self.failed else "COMMIT")

    async def rollback(self) -> DBResponse:
        return await self._end("ROLLBACK")

    async def _end(self, sql: str) -> DBResponse:
        if self._conn is None:
            raise RuntimeError("transaction already ended")
        self.failed = False
        res = await self.execute(sql)
        self.committed = res.ok and sql == "COMMIT"
        self._drop(broken=not res.ok)
        return res

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self._conn is None:
            return
        if exc_type is not None and self._conn.closed:
            self._drop(broken=True)
            self.committed = False
        elif exc_type is not None or self.failed:
            await self._end("ROLLBACK")
            self.committed = False
        else:
            await self._end("COMMIT")

    def _drop(self, broken: bool) -> None:
        if self._conn is not None and self._pool is not None:
            self._pool.release(self._conn, broken=broken or self._conn.closed)
        self._conn = None


__all__ = ["PgConnection", "PostgreSQL", "Transaction", "make_dsn"]
