"""``WSGIHandler(app, mount_point, config)``: a ``Dispatch`` target that runs a WSGI app.

With ``config.threads > 0`` the app runs in the shared worker pool; the answer crosses back to the loop
through a ``LoopInbox``: a finished small answer (a list/tuple body, or an iterable that ended after one
item) is ONE hop (``exchange.respond``: head and body in one transport write). Longer iterables and
``write()`` stream: the worker thread blocks while more than ``STREAM_WINDOW`` bytes are in flight or the
transport is over its high-water mark, so nothing buffers without bound. No piece waits for the next (the
first piece of an iterable without a Content-Length goes at once: ``open_stream``), and small pieces the
loop has not sent yet are joined into one write. With ``threads == 0`` the app runs on the loop thread (its
request body is read completely first; a streamed answer continues in a task that awaits the transport).

PEP 3333 rules: ``start_response`` may be called again only with ``exc_info`` (re-raised if the head was
sent), ``close()`` of the iterable is called exactly once, ``str`` items are sent UTF-8 encoded (a bare
``bytes``/``str`` result is a 500 that says ``return [body]``),
``wsgi.file_wrapper`` over a real file goes out with ``sendfile``. An exception from the app is logged with
its traceback on ``skitai.app`` and answered 500 (the traceback in the page only when ``app.debug``); a
header with CR, LF or NUL is never sent: the answer becomes 500.
"""
from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

from skitai.http.errors import REASONS, ClientDisconnected, HeaderError
from skitai.http.exchange import IDLE, STREAMING
from skitai.http.request import EMPTY_BODY

from .environ import EnvironBuilder, FileWrapper
from .threadpool import LoopInbox, abandon, client_left, get_pool, inbox_for, refuse

from skitai.services import binding as was_services

log = logging.getLogger("skitai.app")

STREAM_WINDOW = 64 * 1024          # bytes a worker may have in flight before it waits for the loop
SMALL_BODY = 64 * 1024             # an iterable with a Content-Length up to this is sent in one hop
COALESCE = 16 * 1024               # streamed pieces under this are joined while the loop has not sent them
_status_cache: dict[str, tuple[int, str | None]] = {}


def parse_status(status: str) -> tuple[int, str | None]:
    """``"200 OK"`` → ``(200, None)`` (None: the standard reason, cached status line); custom reasons kept."""
    parsed = _status_cache.get(status)
    if parsed is None:
        if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit() or \
                not status[:3].isascii() or (len(status) > 3 and status[3] != " "):
            raise ValueError(f"invalid WSGI status {status!r}")
        code = int(status[:3])
        reason = status[4:]
        if "\r" in reason or "\n" in reason or "\0" in reason:
            raise HeaderError("CR, LF or NUL in the status")
        parsed = (code, None if reason == REASONS.get(code) else reason or None)
        if len(_status_cache) < 1024:
            _status_cache[status] = parsed
    return parsed


def _bytes(item: Any) -> bytes:
    if type(item) is bytes:
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, bytearray | memoryview):
        return bytes(item)
    raise TypeError(f"a WSGI app must yield bytes, not {type(item).__name__}")


def _iterable(result: Any) -> Any:
    """``result`` when it may be iterated as a WSGI body. A bare ``bytes`` would yield ints and a bare ``str``
    one character per piece: both are a mistake (PEP 3333 wants an iterable of bytes), said plainly."""
    if isinstance(result, bytes | str | bytearray):
        raise TypeError(f"the app returned {type(result).__name__}, not an iterable of bytes: "
                        "return [body] instead")
    return result


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _Call:
    """The state of one app call: what ``start_response`` was given and what has gone to the loop."""

    __slots__ = ("exchange", "inbox", "code", "reason", "headers", "sent", "posted", "acked", "event",
                 "failed", "threaded", "env", "pending", "lock", "opening", "whole")

    def __init__(self, exchange, inbox: LoopInbox | None, threaded: bool) -> None:
        self.exchange = exchange
        self.inbox = inbox
        self.threaded = threaded
        self.env: dict | None = None
        self.code = 0
        self.reason: str | None = None
        self.headers: list | None = None
        self.sent = False            # the head went to the loop (PEP 3333's "headers sent")
        self.posted = 0              # stream bytes handed to the loop (worker side)
        self.acked = 0               # stream bytes the loop wrote (loop side)
        self.event: threading.Event | None = None
        self.failed = False          # the loop refused the head (bad header) or the client left
        # ``pending``: stream bytes posted, not yet taken by the loop; ``whole``: (while ``opening``) the
        # iterable ended, one whole answer (None: the app failed). Both set with ``lock``, made when needed.
        self.lock: threading.Lock | None = None
        self.opening = False         # the head and first piece are posted, the loop has not taken them yet

    # ---- PEP 3333 callables ----------------------------------------------------------------------
    def start_response(self, status: str, headers: list, exc_info=None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.headers is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if type(headers) is not list:
            raise TypeError("response headers must be a list")
        self.code, self.reason = parse_status(status)
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: the head and ``data`` go out now."""
        if self.headers is None:
            raise AssertionError("write() before start_response()")
        data = _bytes(data)
        if not self.sent:
            self.begin_stream()
        if data:
            self.send(data)

    # ---- to the loop -----------------------------------------------------------------------------
    def post(self, fn, *args) -> None:
        if self.threaded:
            self.inbox.post(fn, *args)
        else:
            fn(*args)

    def respond(self, body: bytes) -> None:
        self.sent = True
        self.post(self._l_respond, body)

    def begin_stream(self) -> None:
        self.sent = True
        self.post(self._l_start)

    def open_stream(self, data: bytes) -> None:
        """The first piece of an iterable of unknown length: the head and ``data`` go to the loop now
        (PEP 3333: a block is never held back while the app makes the next one, a server-sent event
        stream's first event included). If the iterable ends after that one piece, before the loop takes
        it, the loop sends one whole answer instead (Content-Length, one write), as for a list."""
        if not self.threaded or len(data) >= COALESCE:
            self.begin_stream()
            self.send(data)
            return
        self.sent = True
        lock = self.lock
        if lock is None:
            lock = self._new_lock()
        with lock:
            self.pending = [data]
            self.whole = False
            self.opening = True
        self.posted += len(data)
        self.inbox.post(self._l_start)

    def _new_lock(self) -> threading.Lock:
        self.pending = None
        lock = self.lock = threading.Lock()
        return lock

    def cancel_opening(self) -> bool:
        """The app failed before the loop took the opening: nothing goes out of it (a clean 500 follows)."""
        if self.opening:
            with self.lock:
                if self.opening:
                    self.pending = None
                    self.whole = None
                    return True
        return False

    def send(self, data: bytes) -> None:
        if self.failed or self.exchange.closed:
            raise ClientDisconnected("the answer was abandoned")
        self.posted += len(data)
        if not self.threaded:
            self._l_send(data)
            return
        # Small pieces the loop has not taken yet are joined: an app yielding many small pieces makes one
        # socket write (one chunk) per loop turn, not one per piece. Nothing waits for more: the first
        # piece is posted at once, and the loop sends whatever has come by the time it runs (PEP 3333: no
        # block is held back while the app makes the next). Big pieces go as they are (no copy).
        lock = self.lock
        if lock is None:
            lock = self._new_lock()
        with lock:
            pending = self.pending
            if pending is not None:
                pending.append(data)
            elif len(data) < COALESCE:
                self.pending = [data]
        if pending is None:
            if len(data) < COALESCE:
                self.inbox.post(self._l_flush)
            else:
                self.inbox.post(self._l_send, data)
        if self.posted - self.acked > STREAM_WINDOW:
            self.wait_writable()

    def wait_writable(self) -> None:
        """Block this worker until the loop has written everything posted and the transport drained."""
        ev = self.event
        if ev is None:
            ev = self.event = threading.Event()
        ev.clear()
        self.post(self._l_when_writable, ev)
        ex = self.exchange
        timeout = max(5.0, float(getattr(ex.config.limits, "network_timeout", 30.0)) + 5.0)
        if not ev.wait(timeout) and not ex.closed:
            self.failed = True
        if self.failed or ex.closed:
            raise ClientDisconnected("the client does not read the answer")

    def end(self) -> None:
        if self.opening:
            with self.lock:
                if self.opening and self.whole is False and len(self.pending) == 1:
                    self.whole = True      # one piece, not taken yet: one whole answer, as for a list
                    return
        self.post(self._l_end)

    def release(self) -> None:
        """The app is done with the request: drop ``environ["skitai.was"]``. The ``was`` keeps its
        ``env``; the environ no longer keeps the ``was``, so the pair is freed at once instead of waiting,
        as a reference cycle, for the garbage collector (which then runs every few hundred requests)."""
        env = self.env
        if env is not None:
            self.env = None
            env.pop("skitai.was", None)

    # ---- on the loop -----------------------------------------------------------------------------
    def _refused(self, exc: Exception) -> None:
        self.failed = True
        ex = self.exchange
        log.error("bad response from the app for %s %s: %s", ex.request.method, ex.request.target, exc)
        if ex.state == IDLE and not ex.closed:
            ex.error(500, "")

    def _l_respond(self, body: bytes) -> None:
        try:
            self.exchange.respond(self.code, self.headers, body, self.reason)
        except (HeaderError, ValueError, TypeError, AttributeError) as exc:
            self._refused(exc)

    def _l_start(self) -> None:
        if self.opening:
            with self.lock:
                pending, self.pending = self.pending, None
                whole, self.opening = self.whole, False
            if whole is None:              # cancelled: the app failed, ``_l_fail`` answers
                return
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            if whole:
                self.acked += len(data)
                self._l_respond(data)
                return
            self._l_start()
            self._l_send(data)
            return
        try:
            self.exchange.start(self.code, self.headers, self.reason)
        except (HeaderError, ValueError, TypeError, AttributeError) as exc:
            self._refused(exc)

    def _l_flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, None
        self._l_send(pending[0] if len(pending) == 1 else b"".join(pending))

    def _l_send(self, data: bytes) -> None:
        ex = self.exchange
        if ex.state == STREAMING and not ex.closed:
            ex.send(data)
        self.acked += len(data)

    def _l_when_writable(self, event: threading.Event) -> None:
        if self.exchange.closed or self.failed:
            event.set()
        else:
            self.exchange.when_writable(event.set)

    def _l_end(self) -> None:
        ex = self.exchange
        if ex.state == STREAMING:
            ex.end()

    def _l_fail(self, detail: str, debug: bool) -> None:
        ex = self.exchange
        if ex.state == IDLE and not ex.closed:
            ex.error(500, detail, traceback=debug)
        elif ex.state == STREAMING:
            ex.abort()


class WSGIHandler:
    """Runs ``app`` for requests routed to ``mount_point`` (``SCRIPT_NAME``)."""

    def __init__(self, app: Callable, mount_point: str = "/", config: Any = None) -> None:
        self.app = app
        self.script_name = mount_point.rstrip("/")
        self.config = config
        self.threads = int(getattr(config, "threads", 4)) if config is not None else 4
        self.multiprocess = int(getattr(config, "workers", 1) or 1) > 1 if config is not None else False
        self.pool = get_pool(self.threads, getattr(config, "limits", None)) if self.threads > 0 else None
        self._loop = None
        self._inbox: LoopInbox | None = None
        self._build = EnvironBuilder(self.script_name, multithread=self.threads > 0,
                                     multiprocess=self.multiprocess)

    def __call__(self, exchange):
        if exchange.request.upgrade == "websocket":     # the WebSocket issue's hook (skitai.websocket.wsgi)
            from skitai.websocket.wsgi import serve_websocket
            return serve_websocket(exchange, self.app, self.environ(exchange), self.pool)
        if self.threads > 0:
            loop = exchange.loop
            if loop is not self._loop:
                self._loop, self._inbox = loop, inbox_for(loop)
            pool = self.pool      # a bounded queue (max_queued_requests): 503 past it, see threadpool.py
            if not pool.offer(self._work, (exchange, self._inbox, pool.saturated()), self._cancel):
                refuse(exchange, "the server is busy: try again shortly")
            return None
        body = exchange.request.body
        if body is not EMPTY_BODY and not body.complete:
            return self._buffer_then_run(exchange)
        return self._run_on_loop(exchange, None)

    @property
    def debug(self) -> bool:
        return bool(getattr(self.app, "debug", False))

    def environ(self, exchange, wsgi_input=None) -> dict:
        env = self._build(exchange, wsgi_input)
        if was_services.installed():     # issue 4: this request's ``was``, bound to the calling thread
            was_services.attach(env, exchange.request, self.script_name or "/", exchange.loop)
        return env

    def _failed(self, call: _Call, exc: BaseException) -> None:
        """The app (or its iterable) raised: log it; 500 if the head is not out yet, else cut the answer."""
        ex = call.exchange
        if isinstance(exc, ClientDisconnected) or ex.closed:
            return
        log.error("app error on %s %s", ex.request.method, ex.request.target, exc_info=exc)
        debug = self.debug
        detail = "".join(traceback.format_exception(exc)) if debug else ""
        if call.sent and call.threaded:
            call.cancel_opening()
            call.post(call._l_fail, detail, debug)
        elif call.sent:
            call._l_fail(detail, debug)
        else:
            call.sent = True
            call.post(call._l_fail, detail, debug)

    # ---- threads > 0 -----------------------------------------------------------------------------
    def _cancel(self, loop, exchange, inbox, queued) -> bool:
        """The server on ``loop`` stops while this request waits for a thread: 503 (threadpool.py)."""
        if exchange.loop is not loop:
            return False
        refuse(exchange, "the server is stopping: try again shortly")
        return True

    def _work(self, exchange, inbox: LoopInbox, queued: bool = False) -> None:
        if exchange.closed:
            return
        if queued and client_left(exchange):     # it waited behind busy workers and its client left
            inbox.post(abandon, self.pool, exchange)
            return
        call = _Call(exchange, inbox, True)
        result = None
        try:
            env = call.env = self.environ(exchange)
            result = self.app(env, call.start_response)
            if type(result) is list and len(result) == 1 and type(result[0]) is bytes \
                    and call.headers is not None and not call.sent:
                call.sent = True                  # the common case: one hop with the whole answer
                inbox.post(call._l_respond, result[0])
                call.release()
                return
            if self._file_result(call, result):
                result = None          # the loop sends and closes the file
                return
            self._drain_result(call, result)
        except BaseException as exc:
            self._failed(call, exc)
        finally:
            if result is not None:
                self._close(call, result)

    def _close(self, call: _Call, result) -> None:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                self._failed(call, exc)
        call.release()

    def _drain_result(self, call: _Call, result) -> None:
        """Iterate ``result`` in this worker: one hop when it is small and finished, else stream."""
        if type(result) is list or type(result) is tuple:
            if len(result) == 1:
                body = _bytes(result[0])
            else:
                body = b"".join([_bytes(x) for x in result])
            if call.headers is None:
                raise AssertionError("the app returned without calling start_response()")
            if not call.sent:
                call.respond(body)
            else:
                if body:
                    call.send(body)
                call.end()
            return
        first = None
        known = None
        result = _iterable(result)
        head_only = call.exchange.request.method == "HEAD"
        for item in result:
            data = _bytes(item)
            if not data:
                continue
            if call.headers is None:
                raise AssertionError("the app yielded a body before start_response()")
            if call.sent:
                if head_only:
                    break        # the head is out and no body goes with it: stop the app (an endless stream)
                call.send(data)
                continue
            if known is None:
                cl = _content_length(call.headers)
                known = cl is not None and cl <= SMALL_BODY
            if not known and not head_only:
                call.open_stream(data)     # no length given: the first piece goes now, never held back
                continue
            if first is None:
                first = data
            elif known and len(first) + len(data) <= SMALL_BODY:
                first += data
            else:
                call.begin_stream()
                if head_only:
                    first = None
                    break
                call.send(first)
                call.send(data)
                first = None
        if call.headers is None:
            raise AssertionError("the app returned without calling start_response()")
        if not call.sent:
            call.respond(first or b"")
        else:
            if first:
                call.send(first)
            call.end()

    def _file_result(self, call: _Call, result) -> bool:
        """A ``wsgi.file_wrapper`` over a real file: the loop sends it with ``sendfile``."""
        if not isinstance(result, FileWrapper) or call.headers is None or call.sent:
            return False
        fd = result.fileno_or_none()
        if fd is None or not hasattr(call.exchange, "sendfile"):
            return False
        try:
            offset = result.filelike.tell()
        except (OSError, AttributeError, ValueError):
            offset = 0
        size = os.fstat(fd).st_size - offset
        cl = _content_length(call.headers)
        if cl is None:
            call.headers = [*call.headers, ("Content-Length", str(max(size, 0)))]
        count = min(size, cl) if cl is not None else size
        call.sent = True
        call.post(self._l_sendfile, call, result, offset, count)
        return True

    def _l_sendfile(self, call: _Call, wrapper: FileWrapper, offset: int, count: int) -> None:
        async def run():
            ex = call.exchange
            try:
                ex.start(call.code, call.headers, call.reason)
                await ex.sendfile(wrapper.filelike, offset, count)
                ex.end()
            except Exception as exc:
                self._failed(call, exc) if not isinstance(exc, HeaderError) else call._refused(exc)
            finally:
                close = getattr(wrapper, "close", None)
                if close is not None:
                    close()
                call.release()
        call.exchange.loop.create_task(run())

    # ---- threads == 0 ----------------------------------------------------------------------------
    async def _buffer_then_run(self, exchange):
        import io

        data = await exchange.request.body.aread()
        result = self._run_on_loop(exchange, io.BytesIO(data))
        if result is not None:
            await result

    def _run_on_loop(self, exchange, wsgi_input):
        call = _Call(exchange, None, False)
        result = None
        try:
            env = call.env = self.environ(exchange, wsgi_input)
            result = self.app(env, call.start_response)
            if type(result) is list and len(result) == 1 and type(result[0]) is bytes \
                    and call.headers is not None and not call.sent:
                call.sent = True                  # the common case: the whole answer in one write
                body, result = result[0], None    # (a list has no close())
                call.release()
                call._l_respond(body)
                return None
            if self._file_result(call, result):
                result = None          # the task sends and closes the file
                return None
            if type(result) is list or type(result) is tuple:
                self._drain_result(call, result)
            else:
                it = iter(_iterable(result))
                first = b""
                for item in it:
                    first = _bytes(item)
                    if first:
                        break
                else:
                    self._drain_result(call, [first])
                    return None            # the iterable is closed below, once
                owned, result = result, None
                return self._stream_on_loop(call, owned, it, first)
        except BaseException as exc:
            self._failed(call, exc)
        finally:
            if result is not None:
                self._close(call, result)
        return None

    async def _stream_on_loop(self, call: _Call, result, it, first: bytes) -> None:
        ex = call.exchange
        try:
            if call.headers is None:
                raise AssertionError("the app yielded a body before start_response()")
            if not call.sent:
                call.begin_stream()
            if call.failed:
                return
            await ex.write(first)
            if ex.request.method == "HEAD":
                ex.end()         # no body goes with the head: do not run the app's stream to its end
                return
            for item in it:
                data = _bytes(item)
                if data:
                    if call.failed or ex.closed:
                        return
                    await ex.write(data)
            ex.end()
        except BaseException as exc:
            self._failed(call, exc)
        finally:
            self._close(call, result)
