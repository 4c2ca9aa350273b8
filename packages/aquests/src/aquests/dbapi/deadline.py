"""A per-connection request deadline that costs no timer per request.

One timer per connection is armed at the first deadline and left alone while requests finish in
time; when it fires it either expires the request still in flight or re-arms for the current one.
With steady traffic and a 10 s timeout that is one timer callback per connection every 10 s,
instead of a heap push and cancel for every query.
"""
from __future__ import annotations

import asyncio
from typing import Callable


class Deadline:
    def __init__(self, loop: asyncio.AbstractEventLoop, on_expire: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expire = on_expire
        self._when: float | None = None  # deadline of the request in flight, None when idle
        self._timer: asyncio.TimerHandle | None = None

    def start(self, when: float) -> None:
        """A request is in flight until ``when`` (loop time)."""
        self._when = when
        timer = self._timer
        if timer is None:
            self._timer = self._loop.call_at(when, self._fire)
        elif when < timer.when():
            timer.cancel()
            self._timer = self._loop.call_at(when, self._fire)

    def done(self) -> None:
        self._when = None

    def cancel(self) -> None:
        self._when = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        when = self._when
        if when is None:
            return
        if self._loop.time() >= when:
            self._when = None
            self._on_expire()
        else:
            self._timer = self._loop.call_at(when, self._fire)
