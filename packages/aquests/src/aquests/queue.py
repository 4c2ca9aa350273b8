"""The standalone request queue behind ``aquests.fetchall()`` (inventory AQ-01, AQ-12).

Every protocol queues work the same way: :func:`submit` takes a zero-argument callable that
returns an awaitable yielding a :class:`~aquests.response.Response`. ``fetchall()`` runs the
queue on its own event loop with at most ``workers`` requests in flight, calls each request's
callback, and returns when the queue and the in-flight set are both empty (callbacks may queue
more work). A callback that raises is logged; the run goes on.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from . import codes
from .response import Response

Factory = Callable[[], Awaitable[Response]]
CallbackSpec = Callable[..., Any] | tuple | None

log = logging.getLogger("aquests")


def demo_callback(response: Response) -> None:
    """Default callback when none is configured: one log line per response."""
    log.info("REQ %s %s %d %s (%d bytes)", response.meta.get("req_id"), response.url,
             response.status_code, response.reason, len(response.content or b""))


@dataclass
class Config:
    """Options set by ``aquests.configure()``; protocol layers read them from :func:`config`."""

    workers: int = 1
    logger: logging.Logger | None = None
    callback: CallbackSpec = None
    timeout: float = 10.0
    cookie: bool = False
    force_http1: bool = False
    http2_constreams: int = 1
    allow_redirects: bool = True
    qrandom: bool = False
    extra: dict = field(default_factory=dict)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None


@dataclass
class _Item:
    factory: Factory
    callback: CallbackSpec
    meta: dict


class _State:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.queue: deque[_Item] = deque()
        self.req_seq = 0
        self.active = 0
        self.finished = 0
        self.waiters: list[asyncio.Future] = []
        self.running = False
        self.suspended_until = 0.0


_state = _State(Config())
_configured = False
_on_configure: list[Callable[[Config], None]] = []
_on_finish: list[Callable[[], Awaitable[None]]] = []


def configure(workers: int = 1, logger: logging.Logger | None = None, callback: CallbackSpec = None,
              timeout: float = 10, cookie: bool = False, force_http1: bool = False,
              http2_constreams: int = 1, allow_redirects: bool = True, qrandom: bool = False,
              loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None, **extra: Any) -> Config:
    """Reset the queue with new options (AQ-01). Calling a verb first configures with defaults.

    ``loop_factory`` builds the loop fetchall() runs on; None: uvloop's when installed, else the stdlib's.
    """
    global _state, _configured
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if timeout is None or timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if http2_constreams < 1:
        raise ValueError(f"http2_constreams must be >= 1, got {http2_constreams!r}")
    _check_callback(callback)
    if _state.running:
        raise RuntimeError("configure() called while fetchall() is running")
    if loop_factory is not None and not callable(loop_factory):
        raise TypeError("loop_factory must be a callable returning an event loop")
    cfg = Config(workers, logger, callback, float(timeout), cookie, force_http1, http2_constreams,
                 allow_redirects, qrandom, extra, loop_factory)
    _state = _State(cfg)
    _configured = True
    for hook in _on_configure:
        hook(cfg)
    return cfg


def _current() -> _State:
    if not _configured:
        configure()
    return _state


def config() -> Config:
    """The active configuration (configuring with defaults on first use)."""
    if not _configured:
        configure()
    return _state.cfg


def on_configure(hook: Callable[[Config], None]) -> None:
    """Register ``hook(cfg)``, run on every configure() (protocol layers reset their clients)."""
    _on_configure.append(hook)


def on_finish(hook: Callable[[], Awaitable[None]]) -> None:
    """Register an async cleanup run on fetchall()'s loop before it closes (e.g. close pools)."""
    _on_finish.append(hook)


def _check_callback(callback: CallbackSpec) -> None:
    if callback is None or callable(callback):
        return
    if (isinstance(callback, tuple) and len(callback) == 2 and callable(callback[0])
            and isinstance(callback[1], (tuple, list))):
        return
    raise TypeError(f"callback must be a callable or (callable, (args...)), got {callback!r}")


def submit(factory: Factory, callback: CallbackSpec = None, meta: dict | None = None, *,
           method: str | None = None) -> dict:
    """Queue one request; returns its meta dict (with ``req_id``/``req_method`` filled in)."""
    if not callable(factory):
        raise TypeError("factory must be a zero-argument callable returning an awaitable")
    _check_callback(callback)
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    st = _current()
    st.req_seq += 1
    meta = dict(meta) if meta else {}
    meta["req_id"] = st.req_seq
    if method:
        meta["req_method"] = method
    if callback is not None:
        meta["req_callback"] = callback
    st.queue.append(_Item(factory, callback, meta))
    _wake(st)
    return meta


add = submit


def suspend(seconds: float) -> None:
    """Hold off starting new requests for ``seconds`` (in-flight ones continue)."""
    _state.suspended_until = time.monotonic() + seconds


def qsize() -> int:
    """Requests queued and not started."""
    return len(_state.queue)


def mapsize() -> int:
    """Requests in flight."""
    return _state.active


def countreq() -> int:
    """Requests queued since configure()."""
    return _state.req_seq


def countfin() -> int:
    """Requests finished (callback run) since configure()."""
    return _state.finished


def concurrent() -> int:
    """The in-flight limit (``workers``)."""
    return _state.cfg.workers


def _wake(st: _State) -> None:
    waiters, st.waiters = st.waiters, []
    for w in waiters:
        if not w.done():
            w.set_result(None)


async def run_item(factory: Factory, meta: dict, timeout: float | None = None) -> Response:
    """Await one factory, turning any escaping exception into a failed response."""
    try:
        resp = await factory()
        if not isinstance(resp, Response):
            raise TypeError(f"request factory returned {type(resp).__name__}, not a Response")
    except asyncio.CancelledError:
        raise
    except (TimeoutError, asyncio.TimeoutError):
        resp = Response.failed(codes.TIMEOUT, "no answer in time")
    except Exception as exc:  # noqa: BLE001 - a request never kills the loop
        log.exception("request %s failed", meta.get("req_id"))
        resp = Response.failed(codes.REQUEST_FAILED, f"{type(exc).__name__}: {exc}", error=exc)
    if resp.meta is not meta:
        for k, v in resp.meta.items():
            meta.setdefault(k, v)
        resp.meta = meta
    meta.setdefault("req_method", resp.method)
    return resp


async def call_callback(callback: CallbackSpec, resp: Response, logger: logging.Logger) -> None:
    """Run ``fn(resp)`` or ``fn(resp, *extra)``; log (never raise) what it throws."""
    if callback is None:
        return
    fn, extra = (callback[0], tuple(callback[1])) if isinstance(callback, tuple) else (callback, ())
    try:
        result = fn(resp, *extra)
        if inspect.isawaitable(result):
            await result
    except Exception:  # noqa: BLE001 - callbacks never kill the loop
        logger.exception("callback %r raised for request %s", fn, resp.meta.get("req_id"))


async def _worker(st: _State) -> None:
    cfg = st.cfg
    logger = cfg.logger or log
    default_cb = cfg.callback if cfg.callback is not None else demo_callback
    loop = asyncio.get_running_loop()
    while True:
        if st.queue and st.suspended_until <= time.monotonic():
            if cfg.qrandom and len(st.queue) > 1:
                i = random.randrange(len(st.queue))
                st.queue.rotate(-i)
                item = st.queue.popleft()
                st.queue.rotate(i)
            else:
                item = st.queue.popleft()
            st.active += 1
            try:
                resp = await run_item(item.factory, item.meta)
                await call_callback(item.callback if item.callback is not None else default_cb,
                                    resp, logger)
            finally:
                st.active -= 1
                st.finished += 1
                _wake(st)
        elif st.queue:
            await asyncio.sleep(max(0.0, st.suspended_until - time.monotonic()))
        elif st.active == 0:
            _wake(st)
            return
        else:
            w = loop.create_future()
            st.waiters.append(w)
            await w


async def drain() -> int:
    """Run the queue on the current loop until it is empty; returns the number of requests run."""
    st = _current()
    if st.running:
        raise RuntimeError("the aquests queue is already running")
    st.running = True
    start = st.finished
    try:
        await asyncio.gather(*(_worker(st) for _ in range(st.cfg.workers)))
    finally:
        st.running = False
        for hook in _on_finish:
            try:
                await hook()
            except Exception:  # noqa: BLE001
                log.exception("aquests cleanup hook failed")
    return st.finished - start


def default_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (about 1.8x the stdlib loop's Redis round trips, measured);
    None (the stdlib loop) otherwise. ``configure(loop_factory=asyncio.new_event_loop)`` opts out."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def fetchall() -> None:
    """Run every queued request with at most ``workers`` in flight; return when all callbacks ran."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("fetchall() blocks; inside a running event loop use `await aquests.queue.drain()` "
                           "or the awaitable API (aquests.aio / aquests.Session)")
    t0 = time.perf_counter()
    with asyncio.Runner(loop_factory=_current().cfg.loop_factory or default_loop_factory()) as runner:
        n = runner.run(drain())
    dt = time.perf_counter() - t0
    (_state.cfg.logger or log).info("* %d tasks during %.2f sec, %.2f tasks/sec", n, dt,
                                    n / dt if dt else 0.0)
