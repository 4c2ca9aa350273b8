"""Per-origin connection pools, one set per event loop (inventory AQ-25).

HTTP/1.1 connections carry one request at a time and go back to the pool when the response
is complete and the server keeps the connection alive; broken ones are dropped. An HTTP/2
connection is shared by up to ``max_streams`` requests (fewer if the server's
SETTINGS_MAX_CONCURRENT_STREAMS says so); when all are busy another one opens. Either way an
origin has at most ``max_per_origin`` live connections: more requests wait for a free one (or a
free stream) within their own timeout. Idle connections expire.
"""
from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from typing import Awaitable, Callable

from .deadline import Deadlines
from .errors import ProtocolError
from .h1 import H1Connection
from .h2 import H2Connection

Conn = H1Connection | H2Connection
MAX_PER_ORIGIN = 100   # connections per origin (HTTP/1.1, or HTTP/2); more requests wait for one
IDLE_TIMEOUT = 60.0    # seconds an idle connection is kept


class OriginPool:
    def __init__(self, manager: "PoolManager", opener: Callable[[], Awaitable[Conn]]) -> None:
        self.manager = manager
        self.opener = opener
        self.idle: list[H1Connection] = []
        self.h2conns: list[H2Connection] = []
        self.opened = 0                      # live HTTP/1.1 connections (idle + busy)
        self.waiters: deque[asyncio.Future] = deque()
        self.probing: asyncio.Future | None = None
        self.is_h2: bool | None = None

    def take_idle(self) -> H1Connection | None:
        """An idle, still-open HTTP/1.1 connection, without waiting (None if there is none)."""
        idle = self.idle
        if idle:
            now = time.monotonic()
            limit = self.manager.idle_timeout
            while idle:
                c = idle.pop()
                if c.closed or now - c.idle_since > limit:
                    c.close()
                    self.opened -= 1
                    continue
                return c
        return None

    async def acquire(self, may_h2: bool) -> Conn:
        """A connection ready for one request (an HTTP/2 one has a stream slot reserved)."""
        while True:
            c = self.take_idle()
            if c is not None:
                return c
            for c in self.h2conns:
                if c.capacity > 0:
                    c.reserved += 1
                    return c
            if self.probing is not None:
                await asyncio.wait([self.probing])
                continue
            if self.is_h2 is True:
                full = self.live_h2() >= self.manager.max_per_origin
            else:
                full = self.opened >= self.manager.max_per_origin
            if full:
                fut = asyncio.get_running_loop().create_future()
                self.waiters.append(fut)
                try:
                    await fut
                except BaseException:
                    if not fut.cancelled() and fut.done():
                        self._wake()
                    raise
                continue
            return await self._open(may_h2)

    def live_h2(self) -> int:
        """HTTP/2 connections still open (those draining after a GOAWAY too); closed ones are dropped."""
        conns = self.h2conns
        if any(c.closed and c.reserved <= 0 for c in conns):
            conns = self.h2conns = [c for c in conns if not (c.closed and c.reserved <= 0)]
        return sum(not c.closed for c in conns)

    async def _open(self, may_h2: bool) -> Conn:
        # while the first connection learns (by ALPN) whether the origin speaks HTTP/2, or while
        # a new HTTP/2 connection opens, other requests wait for it instead of opening their own
        probe = (may_h2 and self.is_h2 is None) or self.is_h2 is True
        if probe:
            self.probing = asyncio.get_running_loop().create_future()
        self.opened += 1
        try:
            conn = await self.opener()
            if conn.http2:
                # until the server's SETTINGS arrive its stream limit is unknown: handing out
                # slots before that would open streams a server with a low limit refuses
                try:
                    await conn.ready()
                except BaseException:
                    conn.close()
                    raise
        except BaseException:
            self.opened -= 1
            self._wake()
            raise
        finally:
            if probe:
                self.probing.set_result(None)
                self.probing = None
        if conn.http2:
            self.opened -= 1
            self.is_h2 = True
            if not conn.closed and not conn.goaway and conn.h2.remote_settings.max_concurrent_streams < 1:
                conn.close()
                raise ProtocolError("the HTTP/2 server allows no streams (SETTINGS_MAX_CONCURRENT_STREAMS 0)")
            # connections finishing their streams after a GOAWAY stay listed: they count as live
            self.h2conns = [c for c in self.h2conns if c.reusable or (not c.closed and c.reserved > 0)]
            self.h2conns.append(conn)
            conn.reserved += 1
            self._wake(conn.capacity)  # requests queued at the cap share the new connection's streams
        elif probe:
            self.is_h2 = False
        return conn

    def release(self, conn: Conn) -> None:
        now = time.monotonic()
        conn.idle_since = now
        if conn.http2:
            conn.reserved -= 1
            if not conn.reusable and conn.reserved <= 0:
                conn.close()
                if conn in self.h2conns:
                    self.h2conns.remove(conn)
            self.manager.schedule_reap()
            self._wake()  # a stream (or a place for a new connection) is free for a waiting request
            return
        if conn.reusable:
            self.idle.append(conn)
            self.manager.schedule_reap()
        else:
            conn.close()
            self.opened -= 1
        self._wake()

    def _wake(self, n: int = 1) -> None:
        while n > 0 and self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(None)
                n -= 1

    def reap(self, now: float) -> bool:
        """Close connections idle too long; True while something is left to watch."""
        limit = self.manager.idle_timeout
        keep = []
        for c in self.idle:
            if c.closed or now - c.idle_since > limit:
                c.close()
                self.opened -= 1
            else:
                keep.append(c)
        self.idle = keep
        live = []
        for c in self.h2conns:
            if c.reserved <= 0 and (not c.reusable or now - c.idle_since > limit):
                c.close()
            else:
                live.append(c)
        self.h2conns = live
        return bool(self.idle or self.h2conns)

    def count(self) -> int:
        return self.opened + len(self.h2conns)

    def close(self) -> None:
        for c in self.idle:
            c.close()
        for c2 in self.h2conns:
            c2.close()
        self.opened -= len(self.idle)
        self.idle = []
        self.h2conns = []


class PoolManager:
    """All origin pools of one event loop."""

    def __init__(self, max_per_origin: int = MAX_PER_ORIGIN, idle_timeout: float = IDLE_TIMEOUT) -> None:
        if max_per_origin < 1:
            raise ValueError("max_per_origin must be >= 1")
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be > 0")
        self.max_per_origin = max_per_origin
        self.idle_timeout = idle_timeout
        self.pools: dict[tuple, OriginPool] = {}
        self.deadlines = Deadlines()
        self._reaper: asyncio.TimerHandle | None = None

    def get(self, key: tuple, opener: Callable[[], Awaitable[Conn]]) -> OriginPool:
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = OriginPool(self, opener)
        return pool

    def schedule_reap(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().call_later(self.idle_timeout / 2, self._reap)

    def _reap(self) -> None:
        self._reaper = None
        now = time.monotonic()
        if any([p.reap(now) for p in self.pools.values()]):
            self.schedule_reap()

    def count(self) -> int:
        """Open connections across origins."""
        return sum(p.count() for p in self.pools.values())

    async def close(self) -> None:
        self.deadlines.close()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for p in self.pools.values():
            p.close()
        self.pools.clear()
        await asyncio.sleep(0)  # let transports finish closing


_per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PoolManager]" = weakref.WeakKeyDictionary()


def for_loop(loop: asyncio.AbstractEventLoop | None = None) -> PoolManager:
    """The shared pool manager of ``loop`` (default: the running loop)."""
    loop = loop or asyncio.get_running_loop()
    mgr = _per_loop.get(loop)
    if mgr is None:
        mgr = _per_loop[loop] = PoolManager()
    return mgr


async def close_loop_pools() -> None:
    """Close the running loop's shared pools (fetchall() calls this before its loop ends)."""
    mgr = _per_loop.pop(asyncio.get_running_loop(), None)
    if mgr is not None:
        await mgr.close()
