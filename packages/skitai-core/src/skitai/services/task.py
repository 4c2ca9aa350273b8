"""A ``was`` call in flight: created on a worker thread, run on the server's loop (SK-53).

``was.get(...)`` returns a ``Task`` at once; the work is already scheduled on the loop, so several
calls issued before the first wait run concurrently. ``getwait(timeout)`` blocks only the calling
worker thread, until ``timeout`` seconds counted from the call's creation; then the work is cancelled
(its connection is dropped) and the result is a timeout (status 1, code 730).
With ``callback=`` the task runs in callback mode: the callback gets the result on the loop thread and
the blocking waits raise.
A call made after the server's loop has closed (a background thread outliving the server) raises
``ServerStoppedError`` at once; a wait's timeout must be a number (there is no wait without a limit).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aquests import codes
from aquests.response import Response

from .results import NORMAL, Result, Results

log = logging.getLogger("skitai.app")


class WaitOnLoopError(RuntimeError):
    """A blocking wait was attempted on the event loop thread, where it would stall every client."""


class ServerStoppedError(RuntimeError):
    """A ``was`` call made after the server's event loop closed: nothing could ever run it."""


def _callback_spec(callback: Any) -> tuple[Callable | None, tuple]:
    if callback is None:
        return None, ()
    if isinstance(callback, tuple):
        fn, extra = callback[0], tuple(callback[1]) if len(callback) > 1 else ()
        return fn, extra
    return callback, ()


class Task:
    """Handle of one scheduled call (or one map call over every member)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Callable[[], Awaitable[Any]], *,
                 ident: str, rcache: Any, mapped: bool = False, use_cache: bool = True,
                 callback: Any = None, url: str = "", owner: Any = None,
                 progress: dict[str, Any] | None = None, filter: Callable[[Any], Any] | None = None) -> None:
        self.created = time.monotonic()
        self._progress = progress if progress is not None else {}   # cluster members tried so far
        self._filter = filter          # applied to the data of each normal result (SK-50 ``filter=``)
        self._owner = owner            # the ``was`` that made the call: bound while its callback runs
        self.ident = ident
        self.mapped = mapped
        self._loop = loop
        self._rcache = rcache
        self._url = url
        self._result: Result | Results | None = None
        self._future: concurrent.futures.Future | None = None
        self._callback, self._cb_extra = _callback_spec(callback)
        cached = rcache.get(ident) if (use_cache and rcache is not None) else None
        if cached is not None:
            self._result = cached
            if self._callback:           # callbacks always run on the loop thread
                loop.call_soon_threadsafe(self._deliver, cached)
            return
        self._future = self._schedule(work)

    # -- running -----------------------------------------------------------------------------------
    def _schedule(self, work: Callable[[], Awaitable[Any]]) -> concurrent.futures.Future:
        if self._loop.is_closed():
            raise ServerStoppedError(f"was call to {self._url} refused: the server has stopped (its event loop "
                                     "is closed)")

        async def run() -> Result | Results:
            try:
                raw = await work()
            except Exception as exc:     # bad arguments found while sending: a failed result, not a hang
                log.warning("was call to %s failed: %r", self._url, exc)
                raw = Response.failed(codes.REQUEST_FAILED, f"{type(exc).__name__}: {exc}", url=self._url,
                                      error=exc)
                raw = [raw] if self.mapped else raw
            result = self._wrap(raw)
            if self._callback:
                self._deliver(result)
            return result

        if _on_loop_thread(self._loop):
            task = self._loop.create_task(run())
            fut: concurrent.futures.Future = concurrent.futures.Future()
            task.add_done_callback(lambda t: _copy(t, fut))
            return fut
        coro = run()
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as exc:       # the loop closed between the check and the hand-over
            coro.close()
            raise ServerStoppedError(f"was call to {self._url} refused: the server has stopped ({exc})") from None

    def _wrap(self, raw: Any) -> Result | Results:
        if self.mapped:
            return Results([self._filtered(Result(r)) for r in raw], ident=self.ident, cache=self._rcache)
        return self._filtered(Result(raw, ident=self.ident, cache=self._rcache))

    def _filtered(self, result: Result) -> Result:
        if self._filter is not None and result.status == NORMAL:
            result.response.data = self._filter(result.response.data)
        return result

    def _deliver(self, result: Result | Results) -> None:
        from .binding import bound

        try:
            with bound(self._owner):
                self._callback(result, *self._cb_extra)
        except Exception:
            log.exception("was callback %r failed", self._callback)

    # -- waiting -----------------------------------------------------------------------------------
    def _wait(self, timeout: float) -> Result | Results:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"a wait's timeout is a number of seconds, not {timeout!r} (waits always end)")
        if self._result is not None:
            return self._result
        if self._callback is not None:
            raise RuntimeError("this call was made with callback=...; its result goes to the callback")
        if _on_loop_thread(self._loop):
            raise WaitOnLoopError("a blocking wait on the event loop thread would stall the server "
                                  "(threads=0): pass callback=... instead")
        if not self._loop.is_running():
            if self._loop.is_closed():
                raise ServerStoppedError("the server has stopped (its event loop is closed): no result will come")
            raise WaitOnLoopError("the server's event loop is not running yet (an app start hook?) or is stopping: "
                                  "pass callback=... instead, the call runs once serving starts")
        remaining = self.created + timeout - time.monotonic()
        try:
            self._result = self._future.result(max(remaining, 0))
        except (concurrent.futures.TimeoutError, TimeoutError):
            if not self._future.cancel() and self._future.done() and not self._future.cancelled():
                self._result = self._future.result()       # it finished just as the wait ran out
            else:
                self._result = self._timed_out(timeout)
        except concurrent.futures.CancelledError:
            self._result = self._timed_out(timeout)
        return self._result

    def _timed_out(self, timeout: float) -> Result | Results:
        """Status 1 for what did not finish, naming the member; a map keeps the members that answered."""
        reason = f"no result within {timeout}s"
        progress = dict(self._progress)
        if self.mapped:
            items = [Result(r, node=node) if r is not None else Result.timed_out(reason, url=self._url, node=node)
                     for node, r in progress.items()]
            return Results(items or [Result.timed_out(reason, url=self._url)], ident=self.ident, cache=self._rcache)
        node = next(reversed(progress), None)
        return Result.timed_out(reason, url=self._url, node=node, ident=self.ident, cache=self._rcache)

    def getwait(self, timeout: float = 3, reraise: bool = False) -> Result:
        """The one result; use ``getswait`` for a map call."""
        if self.mapped:
            raise ValueError("a map call has several results: use getswait()")
        result = self._wait(timeout)
        return result.reraise() if reraise else result

    def getswait(self, timeout: float = 3, reraise: bool = False) -> Results:
        """All results (a map call's, or this single call's as a one-item ``Results``)."""
        result = self._wait(timeout)
        if isinstance(result, Result):
            result = Results([result], ident=self.ident, cache=self._rcache)
        return result.reraise() if reraise else result

    def wait(self, timeout: float = 3, reraise: bool = True) -> Result | Results:
        """For statements with no result (INSERT...): raise on failure; nothing is kept in the cache."""
        result = self._wait(timeout)
        if self._rcache is not None:
            self._rcache.expire(self.ident)
        return result.reraise() if reraise else result

    def cache(self, timeout: float = 300) -> bool:
        """Cache the result got by an earlier wait (SK-55)."""
        if self._result is None:
            return False
        return self._result.cache(timeout)

    @property
    def done(self) -> bool:
        return self._result is not None or (self._future is not None and self._future.done())


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """True on the thread running ``loop`` (works for uvloop too, which has no ``_thread_id``)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _copy(task: asyncio.Task, fut: concurrent.futures.Future) -> None:
    if task.cancelled():
        fut.cancel()
    elif task.exception() is not None:
        fut.set_exception(task.exception())
    else:
        fut.set_result(task.result())
