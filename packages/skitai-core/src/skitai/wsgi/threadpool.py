"""The worker pool that runs WSGI apps, and the batched way back to the loop.

``ThreadPool`` feeds N daemon threads from one ``SimpleQueue`` (``threads=4`` by default). ``LoopInbox``
carries calls from worker threads to the loop: calls go into a deque and the loop is woken with one
``call_soon_threadsafe`` only when the deque goes from empty to non-empty, so a burst of finished responses
costs one wake-up, not one each.
"""
from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

log = logging.getLogger("skitai.server")
_STOP = object()


class ThreadPool:
    """N worker threads taking ``(fn, args)`` from a queue."""

    def __init__(self, size: int, name: str = "skitai-worker") -> None:
        if size < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.size = size
        self._queue: SimpleQueue = SimpleQueue()
        self._threads = []
        for i in range(size):
            t = threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def _work(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # a worker must survive anything a job does
                log.exception("worker job failed")

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        if wait:
            for t in self._threads:
                t.join(timeout)
        self._threads = []


_pools: dict[int, ThreadPool] = {}
_pools_lock = threading.Lock()


def get_pool(size: int) -> ThreadPool:
    """The process-wide pool of ``size`` threads (mounted apps share it)."""
    with _pools_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPool(size)
        return pool


class LoopInbox:
    """Calls posted from any thread, run on ``loop`` in order, with batched wake-ups."""

    __slots__ = ("loop", "_calls", "_scheduled", "__weakref__")

    def __init__(self, loop) -> None:
        self.loop = loop
        self._calls: deque = deque()
        self._scheduled = False

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._calls.append((fn, args))
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._run)
            except RuntimeError:            # the loop is closed: nothing will answer
                self._scheduled = False

    def _run(self) -> None:
        self._scheduled = False
        calls = self._calls
        pop = calls.popleft
        while calls:
            fn, args = pop()
            try:
                fn(*args)
            except Exception:
                log.exception("call from a worker thread failed on the loop")


_inboxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inbox_for(loop) -> LoopInbox:
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = LoopInbox(loop)
    return inbox
