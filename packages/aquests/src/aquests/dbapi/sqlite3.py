"""SQLite3 without blocking the event loop: one worker thread per database file.

The stdlib driver blocks, so each database file gets one thread that owns its connection and runs
jobs from a queue in order; results come back to the caller's loop through futures. The loop stays
free while a slow query runs, and a query past its timeout is interrupted (``Connection.interrupt``).
A worker with nothing to do for ``idle_timeout`` seconds closes its connection and ends.

The connection is in autocommit mode: every statement commits unless you send ``BEGIN`` yourself;
``transaction([...])`` runs a list of statements atomically in one job.
"""
from __future__ import annotations

import asyncio
import os
import queue
import sqlite3 as _sqlite3
import threading
from typing import Any, Sequence

from .. import codes
from .args import check_params
from .errors import failure
from .response import DBResponse, make_rows

DEFAULT_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 60.0
MAX_QUEUED = 10000  # jobs waiting per database before new ones fail fast


class _Job:
    __slots__ = ("statements", "atomic", "loop", "future", "started", "cancelled")

    def __init__(self, statements: list[tuple[str, Any]], atomic: bool, loop: asyncio.AbstractEventLoop,
                 future: asyncio.Future) -> None:
        self.statements = statements
        self.atomic = atomic
        self.loop = loop
        self.future = future
        self.started = False
        self.cancelled = False


class _Worker(threading.Thread):
    """Owns one sqlite3 connection; runs jobs one at a time."""

    def __init__(self, path: str, idle_timeout: float) -> None:
        super().__init__(name=f"aquests-sqlite3:{os.path.basename(path) or path}", daemon=True)
        self.path = path
        self.idle_timeout = idle_timeout
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.pending = 0
        self.conn: _sqlite3.Connection | None = None
        self.current: _Job | None = None
        self.lock = threading.Lock()
        self.stopped = False

    def submit(self, job: _Job) -> bool:
        with self.lock:
            if self.stopped:
                return False
            self.pending += 1
        self.jobs.put(job)
        return True

    def run(self) -> None:
        try:
            while True:
                try:
                    job = self.jobs.get(timeout=self.idle_timeout)
                except queue.Empty:
                    with self.lock:
                        if self.pending == 0:
                            self.stopped = True
                            return
                    continue
                if job is None:
                    with self.lock:
                        self.stopped = True
                    self._drain_stopped()
                    return
                self._run(job)
        finally:
            _forget(self)
            if self.conn is not None:
                self.conn.close()

    def _drain_stopped(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._reply(job, ConnectionError("SQLite worker stopped"))

    def _run(self, job: _Job) -> None:
        with self.lock:
            self.pending -= 1
            if job.cancelled:
                return
            job.started = True
            self.current = job
        try:
            result: Any = self._execute(job)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            result = exc
        with self.lock:
            self.current = None
        self._reply(job, result)

    def _execute(self, job: _Job) -> tuple:
        if self.conn is None:
            self.conn = _sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn = self.conn
        if not job.atomic:
            sql, params = job.statements[0]
            return self._statement(conn, sql, params)
        conn.execute("BEGIN")
        try:
            for sql, params in job.statements:
                out = self._statement(conn, sql, params, in_transaction=True)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    @staticmethod
    def _statement(conn: _sqlite3.Connection, sql: str, params: Any, in_transaction: bool = False) -> tuple:
        try:
            cur = conn.execute(sql, params if params is not None else ())
        except _sqlite3.ProgrammingError as exc:
            if params is None and "one statement at a time" in str(exc):
                if in_transaction:
                    # executescript() COMMITs a pending transaction first: one statement at a time keeps
                    # the whole script inside it
                    for one in _statements(sql):
                        cur = conn.execute(one)
                else:
                    cur = conn.executescript(sql)  # several statements, no parameters
            else:
                raise
        desc = cur.description
        rows = cur.fetchall() if desc is not None else None
        return desc, rows, cur.rowcount, cur.lastrowid

    @staticmethod
    def _reply(job: _Job, result: Any) -> None:
        def deliver() -> None:
            if job.cancelled or job.future.done():
                return
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
        try:
            job.loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting
            pass

    def interrupt(self, job: _Job) -> None:
        """Called from the loop when ``job`` timed out: skip it, or stop it if it runs."""
        with self.lock:
            job.cancelled = True
            running = self.current is job
        if running and self.conn is not None:
            self.conn.interrupt()


_workers: dict[str, _Worker] = {}
_workers_lock = threading.Lock()


def _forget(worker: _Worker) -> None:
    with _workers_lock:
        if _workers.get(worker.path) is worker:
            del _workers[worker.path]


def _key(path: str) -> str:
    if path == ":memory:" or path.startswith("file:"):
        return path
    return os.path.abspath(path)


def _submit(path: str, job: _Job, idle_timeout: float) -> _Worker | None:
    for _ in range(2):  # a worker may be stopping right now: then start a fresh one
        with _workers_lock:
            worker = _workers.get(path)
            if worker is None or worker.stopped:
                worker = _workers[path] = _Worker(path, idle_timeout)
                worker.start()
        if worker.pending >= MAX_QUEUED:
            return None
        if worker.submit(job):
            return worker
    raise RuntimeError("could not start an SQLite worker")


def stop_all(timeout: float = 5.0) -> None:
    """Stop every worker thread (tests, interpreter shutdown)."""
    with _workers_lock:
        workers = list(_workers.values())
    for w in workers:
        w.jobs.put(None)
    for w in workers:
        w.join(timeout)


class SQLite3:
    """Requests to one SQLite database file."""

    def __init__(self, path: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ValueError(f"sqlite3 needs a database path, got {path!r}")
        if timeout is None or timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.path = _key(path)
        self.url = f"sqlite3://{self.path}"
        self.timeout = timeout
        self.idle_timeout = idle_timeout

    async def execute(self, sql: str, params: Sequence | dict | None = None, *, meta: dict | None = None,
                      timeout: float | None = None) -> DBResponse:
        """Run one statement (or, without params, a script of several) in the database's thread."""
        check_params(sql, params)
        return await self._job([(sql, params)], False, "execute", meta, timeout)

    excute = execute

    async def transaction(self, statements: Sequence[str | tuple[str, Any]], *, meta: dict | None = None,
                          timeout: float | None = None) -> DBResponse:
        """Run ``[sql, (sql, params), ...]`` between BEGIN and COMMIT (ROLLBACK on the first error);
        the response holds the last statement's result."""
        stmts: list[tuple[str, Any]] = []
        for s in statements:
            sql, params = (s, None) if isinstance(s, str) else (s[0], s[1] if len(s) > 1 else None)
            check_params(sql, params)
            stmts.append((sql, params))
        if not stmts:
            raise ValueError("transaction needs at least one statement")
        return await self._job(stmts, True, "transaction", meta, timeout)

    async def _job(self, stmts: list[tuple[str, Any]], atomic: bool, method: str, meta: dict | None,
                   timeout: float | None) -> DBResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        job = _Job(stmts, atomic, loop, loop.create_future())
        worker = _submit(self.path, job, self.idle_timeout)
        if worker is None:
            return DBResponse.failed(codes.REQUEST_FAILED, f"over {MAX_QUEUED} queries waiting for {self.path}",
                                     url=self.url, method=method, meta=meta)
        try:
            desc, rows, rowcount, lastrowid = await asyncio.wait_for(
                asyncio.shield(job.future), self.timeout if timeout is None else timeout)
        except asyncio.TimeoutError as exc:
            worker.interrupt(job)
            return failure(exc, url=self.url, method=method, meta=meta)
        except Exception as exc:
            return failure(exc, url=self.url, method=method, meta=meta)
        except asyncio.CancelledError:
            worker.interrupt(job)
            raise
        res = DBResponse(make_rows([d[0] for d in desc], rows) if desc is not None else [], desc,
                         url=self.url, method=method, meta=meta, rowcount=rowcount,
                         elapsed=loop.time() - started)
        res.lastrowid = lastrowid
        return res


__all__ = ["SQLite3", "stop_all"]


def _statements(script: str) -> list[str]:
    """The statements of ``script``, split where SQLite's own ``complete_statement`` says one ends (a ``;``
    inside a string literal, a comment or a trigger body does not end it)."""
    out, acc = [], ""
    for piece in script.split(";"):
        acc += piece + ";"
        if _sqlite3.complete_statement(acc):
            if acc.strip(" \t\r\n;"):
                out.append(acc)
            acc = ""
    if acc.strip(" \t\r\n;"):
        out.append(acc)
    return out
