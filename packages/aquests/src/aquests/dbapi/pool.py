"""Connection pools for the database connectors (inventory AQ-25).

A pool holds connections to one (kind, server, db, user) and lends each to one request at a time, so a
connection never has two queries in flight. Idle connections are reused (most recent first), expire
after ``idle_timeout`` seconds, and the pool never holds more than ``maxsize``: extra requests wait in
line and are handed the next released connection. A connection returned as broken is closed and its
slot freed, so the next request opens a fresh one.

Pools belong to one event loop (a connection's socket is registered with that loop); ``get_pool``
keeps a registry per running loop.
"""
from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any, Awaitable, Callable, Generic, Hashable, Protocol, TypeVar

from .. import codes
from .errors import failure

DEFAULT_MAXSIZE = 10
DEFAULT_IDLE_TIMEOUT = 60.0


class PooledConnection(Protocol):
    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=PooledConnection)


class PoolClosed(RuntimeError):
    pass


class Pool(Generic[C]):
    """A bounded pool of connections opened by ``connect()``."""

    def __init__(self, connect: Callable[[], Awaitable[C]], *, maxsize: int = DEFAULT_MAXSIZE,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT, name: str = "") -> None:
        if maxsize < 1:
            raise ValueError(f"pool maxsize must be >= 1, got {maxsize!r}")
        if idle_timeout <= 0:
            raise ValueError(f"pool idle_timeout must be > 0, got {idle_timeout!r}")
        self._connect = connect
        self.maxsize = maxsize
        self.idle_timeout = idle_timeout
        self.name = name
        self._idle: deque[tuple[C, float]] = deque()
        self._busy: set[C] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self.loop = asyncio.get_running_loop()
        self.opened = 0  # connections opened over the pool's life (tests, stats)

    @property
    def is_closed(self) -> bool:
        return self._closed

    # -- stats
    @property
    def size(self) -> int:
        return len(self._idle) + len(self._busy) + self._opening

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def busy(self) -> int:
        return len(self._busy)

    # -- lending
    async def acquire(self) -> C:
        while True:
            if self._closed:
                raise PoolClosed(f"pool {self.name} is closed")
            conn = self.try_acquire()
            if conn is not None:
                return conn
            if len(self._busy) + self._opening < self.maxsize:
                return await self._open()
            fut = self.loop.create_future()
            self._waiters.append(fut)
            try:
                handed = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.result() is not None:
                    self.release(fut.result())
                elif not fut.done():
                    self._waiters.remove(fut)
                raise
            if handed is not None:
                return handed  # else: a slot was freed, loop round and open

    def release(self, conn: C, broken: bool = False) -> None:
        """Give ``conn`` back; ``broken=True`` (or a closed connection) drops it."""
        self._busy.discard(conn)
        if broken or conn.closed or self._closed:
            conn.close()
            handoff: C | None = None
        else:
            handoff = conn
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                if handoff is not None:
                    self._busy.add(handoff)
                w.set_result(handoff)
                return
        if handoff is not None:
            self._idle.append((handoff, self.loop.time()))
            self._arm_sweeper()

    async def close(self) -> None:
        """Close idle connections now and busy ones as they come back."""
        self._closed = True
        while self._idle:
            self._idle.pop()[0].close()
        for w in self._waiters:
            if not w.done():
                w.set_exception(PoolClosed(f"pool {self.name} is closed"))
        self._waiters.clear()
        if self._sweeper:
            self._sweeper.cancel()

    # -- internals
    def try_acquire(self) -> C | None:
        """An idle connection right now, or None (no waiting, no connecting)."""
        now = self.loop.time()
        while self._idle:
            conn, since = self._idle.pop()
            if conn.closed:
                continue
            if now - since > self.idle_timeout:
                conn.close()
                continue
            self._busy.add(conn)
            return conn
        return None

    async def _open(self) -> C:
        self._opening += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._opening -= 1
            self._wake_one()  # a waiter may succeed where we failed
            raise
        self._opening -= 1
        self.opened += 1
        self._busy.add(conn)
        return conn

    def _wake_one(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _arm_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.idle_timeout, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.loop.time()
        while self._idle and (self._idle[0][0].closed or now - self._idle[0][1] > self.idle_timeout):
            self._idle.popleft()[0].close()
        if self._idle:
            self._arm_sweeper()


# -- per-loop registry
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Any]] = (
    weakref.WeakKeyDictionary())


def get_pool(key: Hashable, make: Callable[[], Any]) -> Any:
    """The pool for ``key`` on the running loop, made by ``make()`` on first use."""
    loop = asyncio.get_running_loop()
    pools = _pools.get(loop)
    if pools is None:
        pools = _pools[loop] = {}
    pool = pools.get(key)
    if pool is None or getattr(pool, "_closed", False):
        pool = pools[key] = make()
    return pool


class LoopPooled:
    """A connector whose connections come from the running loop's shared pool under ``self.key``.

    Subclasses set ``key``, ``url``, ``pool_size`` and ``idle_timeout`` and say how to open one
    connection (:meth:`_connector`); the pool is looked up again when the loop changes or it closed.
    """

    key: Hashable
    url: str
    timeout: float
    pool_size: int = DEFAULT_MAXSIZE
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    _pool: Any = None

    @staticmethod
    def check_timeout(timeout: float | None) -> float:
        if timeout is None or timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        return timeout

    def _connector(self) -> Callable[[], Awaitable[Any]]:
        raise NotImplementedError

    async def _borrowed(self, work: Callable[[Any, float], Awaitable[Any]],
                        finish: Callable[[Any, float], Any], method: str, meta: dict | None,
                        timeout: float | None, keeps: Callable[[Any, Exception], bool] | None = None) -> Any:
        """Run ``work(conn, deadline)`` on a borrowed connection and return ``finish(result, elapsed)``.

        Waiting for a connection counts against the timeout. A failure becomes a 7xx response; the
        connection goes back to the pool, as broken unless ``keeps(conn, exc)`` says it is still sound.
        """
        pool = self.pool
        loop = pool.loop
        started = loop.time()
        deadline = started + (self.timeout if timeout is None else timeout)
        conn = pool.try_acquire()
        try:
            if conn is None:
                conn = await acquire_within(pool, deadline - started)
            result = await work(conn, deadline)
        except Exception as exc:
            if conn is not None:
                pool.release(conn, broken=keeps is None or not keeps(conn, exc))
            return failure(exc, url=self.url, method=method, meta=meta,
                           code=codes.REQUEST_FAILED if isinstance(exc, PoolClosed) else None)
        except BaseException:
            if conn is not None:
                pool.release(conn, broken=True)
            raise
        pool.release(conn)
        return finish(result, loop.time() - started)

    @property
    def pool(self) -> Pool:
        """The running loop's pool for this connector's key."""
        pool = self._pool
        if pool is None or pool.loop is not asyncio.get_running_loop() or pool.is_closed:
            connect = self._connector()
            pool = self._pool = get_pool(self.key, lambda: Pool(
                connect, maxsize=self.pool_size, idle_timeout=self.idle_timeout, name=self.url))
        return pool


async def acquire_within(pool: Pool, timeout: float) -> Any:
    """``pool.acquire()`` within ``timeout``; running out of time says whether every connection was busy
    (a pool too small for the load) or a new one could not be opened in time."""
    try:
        return await asyncio.wait_for(pool.acquire(), timeout)
    except TimeoutError:
        if pool.busy >= pool.maxsize:
            raise TimeoutError(f"all {pool.maxsize} connections of the pool busy for the whole timeout "
                               f"({timeout:g} s)") from None
        raise TimeoutError(f"no connection opened within the timeout ({timeout:g} s)") from None


def pools_of_loop(loop: asyncio.AbstractEventLoop | None = None) -> dict[Hashable, Any]:
    return _pools.get(loop or asyncio.get_running_loop(), {})


async def close_all() -> None:
    """Close every pool of the running loop (call before the loop ends)."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    for pool in pools.values():
        await pool.close()
