"""One coarse timer for many in-flight requests instead of a timer per request.

Requests on reused HTTP/1.1 connections register a deadline here; a tick every
:data:`TICK` seconds (only while something is registered) fails the overdue ones.
Timeouts are therefore accurate to about one tick.
"""
from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Expirable(Protocol):
    def expire(self) -> None: ...


TICK = 0.05  # seconds between deadline checks


class Deadlines:
    def __init__(self) -> None:
        self.active: dict[Expirable, float] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, item: Expirable, timeout: float) -> None:
        self.active[item] = time.monotonic() + timeout
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(min(TICK, timeout), self._tick)

    def discard(self, item: Expirable) -> None:
        self.active.pop(item, None)

    def _tick(self) -> None:
        self._handle = None
        now = time.monotonic()
        overdue = [item for item, dl in self.active.items() if dl <= now]
        for item in overdue:
            del self.active[item]
            item.expire()
        if self.active:
            self._handle = asyncio.get_running_loop().call_later(TICK, self._tick)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.active.clear()
