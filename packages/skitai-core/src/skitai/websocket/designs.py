"""The three connection designs of the spec, as ``Session`` objects for ``WebSocketProtocol``.

A design decides WHERE and in WHAT ORDER the app's handler runs; the handler itself is a plain callable
``handler(event, message, sender) -> reply`` run on a worker thread (``executor``; None runs it inline
on the loop, for ``threads=0``). A reply that is not None/empty is sent back (str → text, bytes → binary,
``(msg, client_id)`` → to one client of a group).

- ``WS_SIMPLE`` / ``WS_THREADSAFE``: the messages of one connection are handled one after another, in order.
- ``WS_GROUPCHAT``: connections join a room; replies go to every client of the room (or one).
- ``WS_DEDICATE``: one thread per connection runs the handler once; it pulls messages with ``getwait()``.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import encoding as enc
from .broker import LocalBroker, Room
from .protocol import NORMAL, WebSocketProtocol

log = logging.getLogger("skitai.websocket")

WS_SIMPLE = 1
WS_DEDICATE = 4
WS_GROUPCHAT = 5
WS_THREADSAFE = 6
DESIGNS = (WS_SIMPLE, WS_DEDICATE, WS_GROUPCHAT, WS_THREADSAFE)
WS_EVT_INIT, WS_EVT_OPEN, WS_EVT_CLOSE, WS_EVT_NONE = "init", "open", "close", None
INVALID_DATA = 1007

Handler = Callable[[Any, Any, "Sender"], Any]
_PLAIN = (str, bytes)
_ids = itertools.count(1)


def next_client_id() -> int:
    """Numeric client ids, unique in the process (``env['websocket.client']``)."""
    return next(_ids)


class Sender:
    """``env['websocket']``: send to this client (or, in a group, to a client id or everyone) from any thread."""

    def __init__(self, client_id: int, encoding: str | None = None) -> None:
        self.client_id = client_id
        self.encoding = encoding
        self.room: Room | None = None
        self.ws: WebSocketProtocol | None = None
        self._loop_thread = 0

    def attach(self, ws: WebSocketProtocol) -> None:
        self.ws = ws
        self._loop_thread = threading.get_ident()

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed

    @property
    def clients(self) -> dict[int, Sender]:
        """The clients of this room by id (just this one outside a group)."""
        return self.room.clients if self.room else {self.client_id: self}

    def send(self, message: Any, client_id: int | None = None) -> None:
        """Send ``message`` (encoded by the connection's encoding); in a group, ``client_id=None`` is everyone."""
        data = enc.encode(self.encoding, message)
        if self.room is not None:
            self.room.publish(data, client_id)
        else:
            self.deliver(data)

    def deliver(self, data: str | bytes, wait: bool = True) -> None:
        """Put already encoded data on this connection. ``wait=False`` (a group's fan-out) never blocks on a
        client that reads slowly, so one such member cannot stall its room; it is cut when too far behind."""
        ws = self.ws
        if ws is None or ws.closed:
            return
        if threading.get_ident() == self._loop_thread:
            ws.send(data)
            if not wait:
                ws.check_backlog()
        else:
            ws.send_threadsafe(data, wait)

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start the close handshake. ``code`` must be one an endpoint may send (RFC 6455 7.4 and the IANA
        registry: 1000-1003, 1007-1014, 3000-4999) and ``reason`` a str: anything else raises here, at the
        app's call, rather than going on the wire for the client to reject."""
        if code.__class__ is not int or not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
            raise ValueError(f"websocket close code {code!r} cannot be sent: use 1000-1003, 1007-1014 or "
                             f"3000-4999")
        if not isinstance(reason, str):
            raise TypeError(f"websocket close reason must be a str, not {type(reason).__name__}")
        ws = self.ws
        if ws is not None:
            if threading.get_ident() == self._loop_thread:
                ws.close(code, reason)
            else:
                ws.close_threadsafe(code, reason)


class FailureLog:
    """A connection's handler failures in the log: the first with its traceback, then at most one line
    every ``LOG_EVERY`` seconds saying how many failed meanwhile, so a client whose every message breaks
    the app cannot flood the log (call ``failed()`` inside the ``except``)."""

    LOG_EVERY = 10.0
    __slots__ = ("client_id", "next_at", "quiet")

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.next_at = 0.0
        self.quiet = 0

    def failed(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.quiet += 1
            return
        if self.quiet:
            log.error("websocket client %s: %d more handler failures not logged", self.client_id, self.quiet)
        log.exception("websocket handler failed (client %s)", self.client_id)
        self.quiet = 0
        self.next_at = now + self.LOG_EVERY


class _Serial:
    """Runs the jobs of one connection one at a time, in arrival order, on the executor."""

    def __init__(self, run: Callable[[tuple], None], executor: Any, ws_getter: Callable, max_queue: int) -> None:
        self.run, self.executor, self.ws_getter, self.max_queue = run, executor, ws_getter, max_queue
        self.jobs: deque[tuple] = deque()
        self.lock = threading.Lock()
        self.busy = False
        self.paused = False

    def put(self, job: tuple) -> None:           # loop thread
        with self.lock:
            self.jobs.append(job)
            if self.busy:
                if len(self.jobs) >= self.max_queue and not self.paused:
                    self.paused = True
                    ws = self.ws_getter()
                    if ws is not None:
                        ws.pause()
                return
            self.busy = True
        if self.executor is None:
            self._drain()
        else:
            self.executor.submit(self._drain)

    def _drain(self) -> None:                    # worker thread: keep going while jobs are waiting
        while True:
            with self.lock:
                if not self.jobs:
                    self.busy = False
                    resume, self.paused = self.paused, False
                    break
                job = self.jobs.popleft()
            try:
                self.run(job)
            except Exception:
                log.exception("websocket handler failed")
        ws = self.ws_getter()
        if resume and ws is not None and ws.transport is not None:
            try:
                ws.loop.call_soon_threadsafe(ws.resume)
            except RuntimeError:                 # the server stopped meanwhile: nothing to resume
                pass


class SimpleSession:
    """WS_SIMPLE / WS_THREADSAFE: a per-connection serial queue on the shared pool.

    Without an executor (``threads=0``) the handler runs right away on the loop: the loop reads one
    connection's frames one after another, so the order holds without a queue or a lock."""

    def __init__(self, handler: Handler, sender: Sender, executor: Any, limits: Any) -> None:
        self.handler, self.sender = handler, sender
        self.failures = FailureLog(sender.client_id)
        self.serial = None if executor is None else \
            _Serial(self._job, executor, lambda: sender.ws, limits.ws_max_queue)
        if executor is None and sender.encoding is None and self.__class__ is SimpleSession:
            self.received = self._received_on_loop       # a threads=0 message, plain: no detours

    def _received_on_loop(self, message: str | bytes) -> None:
        """``received`` + ``_inline`` + ``_answer`` in one, for the case that runs most: no encoding, no
        group, the handler on the loop (about 1.5k instructions of a 115k message)."""
        sender = self.sender
        try:
            reply = self.handler(None, message, sender)
        except Exception:
            self.failures.failed()
            return
        if reply.__class__ is str or reply.__class__ is bytes:
            ws = sender.ws
            if reply and ws is not None:
                ws.send(reply)                           # ignored once closing
        elif reply is not None:
            self.reply(reply)

    def opened(self, ws: WebSocketProtocol) -> None:
        self.sender.attach(ws)
        self._put(WS_EVT_OPEN, "")

    def received(self, message: str | bytes) -> None:
        if self.sender.encoding is not None:
            try:
                message = enc.decode(self.sender.encoding, message)
            except enc.DecodeError as e:
                self.sender.close(INVALID_DATA, str(e)[:120])
                return
        self._put(None, message)

    def closed(self, code: int) -> None:
        self._put(WS_EVT_CLOSE, "")

    def _put(self, event: Any, message: Any) -> None:
        if self.serial is None:
            self._inline(event, message)
        else:
            self.serial.put((event, message))

    def _inline(self, event: Any, message: Any) -> None:   # loop thread
        try:
            self._answer(self.handler(event, message, self.sender), True)
        except Exception:
            self.failures.failed()

    def _job(self, job: tuple) -> None:           # worker thread
        event, message = job
        try:
            self._answer(self.handler(event, message, self.sender), False)
        except Exception:
            self.failures.failed()

    def _answer(self, reply: Any, on_loop: bool) -> None:
        """A plain str/bytes answer of a single connection goes straight to the frame layer (from the
        loop) or to ``send_threadsafe`` (from a worker); anything else through ``reply``."""
        if reply is None:
            return
        sender = self.sender
        if reply.__class__ in _PLAIN and sender.room is None and sender.encoding is None:
            if not reply:
                return
            ws = sender.ws
            if ws is not None and not ws.closed:
                if on_loop:
                    ws.send(reply)
                else:
                    ws.send_threadsafe(reply)
            return
        self.reply(reply)

    def reply(self, reply: Any) -> None:
        if reply is None or reply == "" or reply == b"":
            return
        if isinstance(reply, tuple):
            self.sender.send(*reply)
        else:
            self.sender.send(reply)


class GroupSession(SimpleSession):
    """WS_GROUPCHAT: like SIMPLE, and the connection is a member of the room ``key`` while open."""

    def __init__(self, handler: Handler, sender: Sender, executor: Any, limits: Any,
                 broker: LocalBroker, key: str) -> None:
        super().__init__(handler, sender, executor, limits)
        self.broker, self.key = broker, key

    def opened(self, ws: WebSocketProtocol) -> None:
        self.sender.attach(ws)
        self.sender.room = self.broker.join(self.key, self.sender)
        self._put(WS_EVT_OPEN, "")

    def closed(self, code: int) -> None:
        self.sender.room.leave(self.sender)
        self._put(WS_EVT_CLOSE, "")


class DedicatedSlots:
    """How many WS_DEDICATE threads may exist at once (``Limits.ws_max_dedicated``): a slot is taken before
    the handshake is answered and given back when the connection's thread ends (or it never started)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.used = 0
        self.refused = 0
        self._full = False

    def take(self, limit: int) -> bool:
        with self.lock:
            if limit > 0 and self.used >= limit:
                self.refused += 1
                full, self._full = self._full, True
            else:
                self.used += 1
                return True
        if not full:
            log.warning("%d WS_DEDICATE websockets are open, one thread each (ws_max_dedicated): new ones are "
                        "answered 503 until one closes", limit)
        return False

    def give(self) -> None:
        with self.lock:
            self.used -= 1
            self._full = False


DEDICATED = DedicatedSlots()
_GONE = object()       # in a dedicated inbox: the client is gone (None is a message too: JSON null)


class DedicatedSession:
    """WS_DEDICATE: a thread of its own runs the handler once; messages wait in a bounded queue. The
    session holds one of ``DEDICATED``'s slots (taken by the handshake) until its thread ends."""

    def __init__(self, handler: Handler, sender: DedicatedSender, executor: Any, limits: Any) -> None:
        self.handler, self.sender, self.limits = handler, sender, limits
        self.started = False
        self.slot = True

    def opened(self, ws: WebSocketProtocol) -> None:
        self.sender.attach(ws)
        self.started = True
        try:
            threading.Thread(target=self._run, name=f"ws-dedicate-{self.sender.client_id}", daemon=True).start()
        except BaseException:            # no thread (the system's limit): the slot is free again
            self.started = False
            self.release()
            raise

    def release(self) -> None:
        if self.slot:
            self.slot = False
            DEDICATED.give()

    def _run(self) -> None:
        try:
            reply = self.handler(WS_EVT_NONE, "", self.sender)
            if reply not in (None, "", b""):
                self.sender.send(reply)
        except Exception:
            log.exception("dedicated websocket handler failed")
        finally:
            self.release()
        self.sender.close()

    def received(self, message: str | bytes) -> None:
        try:
            obj = enc.decode(self.sender.encoding, message)
        except enc.DecodeError as e:
            self.sender.close(INVALID_DATA, str(e)[:120])
            return
        self.sender.inbox.put(obj)
        if self.sender.inbox.qsize() >= self.limits.ws_max_queue and self.sender.ws is not None:
            self.sender.ws.pause()
            self.sender.paused = True

    def closed(self, code: int) -> None:
        self.sender.inbox.put(_GONE)
        if not self.started:             # closed before its thread started: nothing else gives the slot back
            self.release()


class DedicatedSender(Sender):
    """``was.websocket`` of WS_DEDICATE: ``getwait()`` blocks the connection's own thread."""

    def __init__(self, client_id: int, encoding: str | None = None) -> None:
        super().__init__(client_id, encoding)
        self.inbox: queue.Queue = queue.Queue()
        self.paused = False
        self._gone = False

    def getwait(self, timeout: float | None = None) -> Any:
        """The next message; None when the client disconnected (or ``timeout`` seconds passed; or the message
        is a JSON ``null``: ``closed`` tells them apart)."""
        if self._gone:
            return None
        try:
            msg = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if msg is _GONE:
            self._gone = True
            return None
        if self.paused and self.inbox.qsize() < 1 and self.ws is not None:
            self.paused = False
            try:
                self.ws.loop.call_soon_threadsafe(self.ws.resume)
            except RuntimeError:                 # the server stopped: nothing to resume
                pass
        return msg


def make_session(spec: int, handler: Handler, client_id: int, encoding: str | None, executor: Any,
                 limits: Any, room_key: str | None = None, broker: LocalBroker | None = None):
    """The ``Session`` (and its ``Sender``) for a design; ``room_key`` names the group of WS_GROUPCHAT."""
    if spec == WS_DEDICATE:
        sender: Sender = DedicatedSender(client_id, encoding)
        return DedicatedSession(handler, sender, executor, limits), sender
    if spec == WS_GROUPCHAT:
        sender = Sender(client_id, encoding)
        return GroupSession(handler, sender, executor, limits, broker or DEFAULT_BROKER, room_key or ""), sender
    if spec in (WS_SIMPLE, WS_THREADSAFE):
        sender = Sender(client_id, encoding)
        return SimpleSession(handler, sender, executor, limits), sender
    raise ValueError(f"unknown websocket design {spec!r}; use WS_SIMPLE, WS_GROUPCHAT, WS_DEDICATE or WS_THREADSAFE")


DEFAULT_BROKER = LocalBroker()
