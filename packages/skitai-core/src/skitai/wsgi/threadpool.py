"""The worker pool that runs WSGI apps, and the batched way back to the loop.

``ThreadPool`` feeds N daemon threads from one ``SimpleQueue`` (``threads=4`` by default). ``LoopInbox``
carries calls from worker threads to the loop: calls go into a deque and the loop is woken with one
``call_soon_threadsafe`` only when the deque goes from empty to non-empty, so a burst of finished responses
costs one wake-up, not one each.

Overload (docs/http1-wsgi.md, "The worker pool under overload"):

* ``offer()`` is how requests enter: at most ``Limits.max_queued_requests`` wait for a thread (the ones
  running are not counted); past it the request is refused and its caller answers ``503`` with
  ``Retry-After`` (``refuse()``), so a flood costs a bounded queue, not memory and minutes of latency.
  ``submit()`` (WebSocket messages) is not bounded: those are bounded per connection already; a WebSocket
  handshake asks ``full()`` first and is refused the same way.
* ``cancel_queued(loop)`` runs when a server on ``loop`` stops (``skitai.http.server.on_close``): every
  request still waiting for a thread is answered ``503`` at once instead of being cut at ``stop_timeout``;
  the running ones get ``stop_timeout`` to finish.
* A watchdog thread (when ``Limits.stall_warning`` > 0) logs one error when every worker has been on the
  same job for more than ``stall_warning`` seconds, naming each request and where its thread is (a thread
  cannot be killed: this is for the operator), and one warning when a worker is free again. ``stats()``
  (the THREADS section of ``was.status()``) shows it too.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

from skitai.http import server as _server
from skitai.http.errors import error_page
from skitai.http.exchange import IDLE

log = logging.getLogger("skitai.server")
_STOP = object()
_monotonic = time.monotonic
RETRY_AFTER = "1"              # seconds, in the 503 of a full queue: the queue turns over fast or not at all
DEFAULT_MAX_QUEUE = 1024
DEFAULT_STALL_WARNING = 60.0


class ThreadPool:
    """N worker threads taking ``(fn, args, cancel)`` from a queue; see the module doc for the limits."""

    def __init__(self, size: int, name: str = "skitai-worker", max_queue: int = DEFAULT_MAX_QUEUE,
                 stall_warning: float = DEFAULT_STALL_WARNING) -> None:
        if size < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.size = size
        self.name = name
        self.max_queue = max_queue            # jobs waiting for a thread, at most (0: no bound)
        self.stall_warning = stall_warning    # seconds (0: no watchdog)
        self._queue: SimpleQueue = SimpleQueue()
        self._running: list = [None] * size   # per worker: (started, fn, args) of its job, or None
        # counters for the status page; changed on loop threads only
        self.refused = 0                      # requests answered 503: the queue was full
        self.abandoned = 0                    # requests dropped unrun: their client left while they waited
        self.cancelled = 0                    # requests answered 503 at a stop before a thread took them
        self.stalled_since: float | None = None   # every worker stuck on one job since (monotonic)
        self._full = False                    # the queue is at its bound (logged once per episode)
        self._watchdog: threading.Thread | None = None
        self._closed = threading.Event()
        self._threads = []
        for i in range(size):
            t = threading.Thread(target=self._work, args=(i,), name=f"{name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self.configure(max_queue, stall_warning)

    def configure(self, max_queue: int | None = None, stall_warning: float | None = None) -> None:
        """Change the limits (``get_pool`` applies each mounted app's ``config.limits``)."""
        if max_queue is not None:
            self.max_queue = int(max_queue)
        if stall_warning is not None:
            self.stall_warning = float(stall_warning)
        if self.stall_warning > 0 and self._watchdog is None and not self._closed.is_set():
            self._watchdog = threading.Thread(target=self._watch, name=f"{self.name}-watchdog", daemon=True)
            self._watchdog.start()

    # ---- in ----------------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker; not bounded (for jobs bounded elsewhere, not for requests)."""
        self._queue.put((fn, args, None))

    def offer(self, fn: Callable[..., Any], args: tuple, cancel: Callable[..., bool] | None = None) -> bool:
        """Queue a request's job unless ``max_queue`` jobs already wait (False: answer it 503, ``refuse()``).
        ``cancel(loop, *args)`` is called by ``cancel_queued(loop)`` (on that loop) for a job still waiting
        when a server stops; it answers the request and returns True, or returns False for another loop's."""
        queue = self._queue
        if self.max_queue > 0 and (self._full or queue.qsize() >= self.max_queue) and self.full():
            return False
        queue.put((fn, args, cancel))
        return True

    def full(self) -> bool:
        """``max_queue`` jobs wait: a request offered now is refused (counted; logged once per episode).
        Also asked before a WebSocket handshake is queued (``skitai.websocket.wsgi``)."""
        limit = self.max_queue
        if limit <= 0:
            return False
        waiting = self._queue.qsize()
        if waiting >= limit:
            self.refused += 1
            if not self._full:
                self._full = True
                log.warning("all %d worker threads are busy and %d requests wait for one "
                            "(max_queued_requests): new requests are answered 503 until the queue shortens",
                            self.size, waiting)
            return True
        if self._full and waiting < limit // 2:
            self._full = False
            log.info("the worker queue is down to %d requests: accepting requests again", waiting)
        return False

    def saturated(self) -> bool:
        """No worker is free to start a job now: a job offered now waits in the queue."""
        return None not in self._running or self._queue.qsize() > 0

    # ---- workers -----------------------------------------------------------------------------------
    def _work(self, index: int) -> None:
        get = self._queue.get
        running = self._running
        while True:
            item = get()
            if item is _STOP:
                return
            fn, args, _ = item
            running[index] = (_monotonic(), fn, args)
            try:
                fn(*args)
            except BaseException:  # a worker must survive anything a job does
                log.exception("worker job failed")
            running[index] = None

    # ---- stop --------------------------------------------------------------------------------------
    def cancel_queued(self, loop: Any) -> int:
        """Answer every job of ``loop`` still waiting for a thread (its ``cancel``); the others stay queued,
        in their order. Returns how many were cancelled. Runs on ``loop``'s thread."""
        taken = []
        get = self._queue.get_nowait
        while True:
            try:
                taken.append(get())
            except Empty:
                break
        if not taken:
            return 0
        done = 0
        put = self._queue.put
        for item in taken:
            cancel = item[2] if item is not _STOP else None
            if cancel is not None:
                try:
                    if cancel(loop, *item[1]):
                        done += 1
                        continue
                except Exception:
                    log.exception("cancelling a queued request failed")
                    continue
            put(item)
        self.cancelled += done
        return done

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> None:
        self._closed.set()
        for _ in self._threads:
            self._queue.put(_STOP)
        if wait:
            for t in self._threads:
                t.join(timeout)
        self._threads = []

    # ---- watchdog and status -----------------------------------------------------------------------
    def _watch(self) -> None:
        while True:
            limit = self.stall_warning
            step = min(1.0, max(0.05, limit / 4)) if limit > 0 else 1.0
            if self._closed.wait(step):
                return
            try:
                self.check_stall(_monotonic())
            except Exception:
                log.exception("worker pool watchdog failed")

    def check_stall(self, now: float) -> bool:
        """Log once when every worker has run its current job for more than ``stall_warning`` seconds,
        and once when one is free again. Returns whether the pool is stalled."""
        limit = self.stall_warning
        jobs = list(self._running)
        stalled = limit > 0 and all(j is not None and now - j[0] >= limit for j in jobs)
        if stalled and self.stalled_since is None:
            self.stalled_since = max(j[0] for j in jobs)
            frames = sys._current_frames()
            lines = []
            for t, job in zip(self._threads, jobs, strict=False):
                lines.append(f"  {t.name}: {describe(job[1], job[2])} for {now - job[0]:.0f}s"
                             f"{where(frames.get(t.ident))}")
            log.error("all %d worker threads have been busy with the same requests for more than %gs "
                      "(an app that never returns?); %d requests wait, new ones are answered 503 past "
                      "max_queued_requests=%d:\n%s", self.size, limit, self._queue.qsize(), self.max_queue,
                      "\n".join(lines))
        elif not stalled and self.stalled_since is not None:
            log.warning("a worker thread is free again after the pool was stalled for %.0fs",
                        now - self.stalled_since)
            self.stalled_since = None
        return stalled

    def stats(self) -> dict[str, Any]:
        """The THREADS section of ``was.status()``."""
        now = _monotonic()
        jobs = [j for j in list(self._running) if j is not None]
        stalled = self.stalled_since
        return {"threads": self.size, "busy": len(jobs), "queued": self._queue.qsize(),
                "max_queued": self.max_queue, "refused_503": self.refused,
                "abandoned": self.abandoned, "cancelled_at_stop": self.cancelled,
                "longest_running_seconds": round(max((now - j[0] for j in jobs), default=0.0), 1),
                "stalled_seconds": round(now - stalled, 1) if stalled is not None else 0,
                "stall_warning_seconds": self.stall_warning}


def describe(fn: Any, args: tuple) -> str:
    """A job for the log: the request it serves (``METHOD target``), or the function's name."""
    request = getattr(args[0], "request", None) if args else None
    if request is not None:
        client = getattr(request, "client", ("",))
        return f"{request.method} {request.target} from {client[0] if client else '-'}"
    return getattr(fn, "__qualname__", repr(fn))


def where(frame: Any) -> str:
    """`` at file:line in function`` of a thread's innermost frame (empty when unknown)."""
    if frame is None:
        return ""
    summary = traceback.extract_stack(frame, limit=1)
    if not summary:
        return ""
    top = summary[-1]
    return f", at {top.filename}:{top.lineno} in {top.name}"


# ---- requests on the loop side ---------------------------------------------------------------------
def refuse(exchange: Any, detail: str) -> None:
    """Answer ``503 Service Unavailable`` with ``Retry-After`` (on the loop), unless already answered."""
    if exchange.closed or exchange.state != IDLE:
        return
    exchange.respond(503, [("Content-Type", "text/html; charset=utf-8"), ("Retry-After", RETRY_AFTER)],
                     error_page(503, detail))


def abandon(pool: ThreadPool, exchange: Any) -> None:
    """The client left (HTTP/1.1: it closed its side) while its request waited for a thread: the app is not
    run; the request log says 499 (nginx's "client closed request") and the connection is closed."""
    pool.abandoned += 1
    if exchange.closed or exchange.state != IDLE:
        return
    from skitai.http import accesslog

    exchange.status = 499
    if accesslog.enabled:
        accesslog.log(exchange)
    exchange.abort()


def client_left(exchange: Any) -> bool:
    """The client is gone, or (HTTP/1.1) closed its side of the connection."""
    return exchange.closed or getattr(getattr(exchange, "proto", None), "peer_eof", False)


_pools: dict[int, ThreadPool] = {}
_pools_lock = threading.Lock()


def get_pool(size: int, limits: Any = None) -> ThreadPool:
    """The process-wide pool of ``size`` threads (mounted apps share it); ``limits`` (a ``Limits``) sets its
    ``max_queued_requests`` and ``stall_warning``."""
    max_queue = getattr(limits, "max_queued_requests", None)
    stall = getattr(limits, "stall_warning", None)
    with _pools_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPool(size, max_queue=DEFAULT_MAX_QUEUE if max_queue is None else max_queue,
                                             stall_warning=DEFAULT_STALL_WARNING if stall is None else stall)
        else:
            pool.configure(max_queue, stall)
        return pool


def cancel_queued(loop: Any) -> None:
    """``Server.close()`` on ``loop``: answer its requests still waiting for a thread (503)."""
    for pool in list(_pools.values()):
        n = pool.cancel_queued(loop)
        if n:
            log.info("stopping: %d requests that waited for a worker thread were answered 503", n)


_server.on_close(cancel_queued)


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
