"""One WebSocket connection: wsproto's frame layer glued to an asyncio transport.

wsproto's ``FrameProtocol`` does the RFC 6455 work (masking checks, fragment order, UTF-8 validation → 1007,
control frame rules, close codes, permessage-deflate). We drive that layer directly rather than wsproto's
``Connection`` wrapper: the wrapper turns every frame into an event object and checks its state on every send,
which costs about a fifth of a message's time, and its state machine is four values we keep here.
This class adds what a server needs around the framing: a maximum message size (1009), PING/PONG keep-alive,
an idle timeout, the close handshake, back-pressure both ways, and a thread-safe ``send`` for worker threads.
Messages go to a ``Session`` (see ``skitai.websocket.designs``).

Worker threads write directly (``direct_writes``, plain TCP only): a reply from a worker goes to the socket
from that worker, without waking the loop, when nothing of this connection is waiting anywhere (no call
posted to the loop, no partly written frame, the transport's buffer empty). Otherwise, or for whatever
the kernel does not take at once, the bytes go through the loop as before. One lock per connection orders
every write (loop and workers) and the frame layer's state. The workers write to a ``dup`` of the socket
that only this class closes, so a worker can never write to a descriptor number the loop has closed and
reused for another connection.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from typing import Any, Protocol

from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed

from skitai.http.writebatch import WriteBatch, batch_for
from skitai.wsgi.threadpool import inbox_for

NORMAL, GOING_AWAY, TOO_BIG = 1000, 1001, 1009
COALESCE = 64         # fragments of one message joined into one piece, so tiny fragments cost no more memory
log = logging.getLogger("skitai.websocket")
CONNECTIONS: weakref.WeakSet = weakref.WeakSet()       # open WebSockets, for a going-away close on shutdown
_TEXT, _BINARY, _CLOSE, _PING, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE, Opcode.PING, Opcode.PONG
_monotonic = time.monotonic


def close_all(code: int = GOING_AWAY, reason: str = "server shutdown") -> None:
    """Shutdown (on the loop): every open WebSocket of this loop starts the close handshake."""
    loop = asyncio.get_running_loop()
    for ws in list(CONNECTIONS):
        if ws.loop is loop:
            ws.close(code, reason)


class Session(Protocol):
    """What a design implements; every method runs on the loop thread."""

    def opened(self, ws: WebSocketProtocol) -> None: ...
    def received(self, message: str | bytes) -> None: ...
    def closed(self, code: int) -> None: ...


class WebSocketProtocol(asyncio.Protocol):
    """Serves one upgraded connection; ``timeout`` is the app's keep-alive (idle seconds, 0: none).

    ``closed`` turns True when we start the close handshake, answer the peer's, or lose the connection;
    while it is False the connection is open and sends go out."""

    def __init__(self, session: Session, limits: Any, extensions: list | None = None,
                 timeout: float = 0, loop: asyncio.AbstractEventLoop | None = None,
                 direct_writes: bool = False) -> None:
        self.session = session
        self.limits = limits
        self.timeout = timeout
        self.loop = loop
        self.frames = FrameProtocol(client=False, extensions=extensions or [])
        self._parse = self.frames._parse_more                  # wsproto's frame generator (1.x)
        self._unparsed = self.frames._frame_decoder.buffer.buffer  # its bytearray of unparsed bytes (never
        # replaced: wsproto grows it with += and consumes it with del, in place)
        self.transport: asyncio.Transport | None = None
        self.closed = False               # no more sends possible
        self.close_code: int | None = None
        self._peer_closed = False         # the peer's CLOSE arrived: nothing more will be read
        self._max_size = limits.ws_max_message_size
        self._chunk = 4096 if extensions else 1 << 20     # bounds one inflate step (~4 MB at 1000:1)
        self._parts: list = []
        self._joined = 0                  # _parts[:_joined] are joined runs of COALESCE fragments
        self._size = 0
        self._unread = False              # reading paused while wsproto may still hold frames
        self._held = b""                  # received bytes not fed to wsproto yet (reading paused)
        self._stall: asyncio.TimerHandle | None = None    # cuts a client that stays unwritable too long
        self._backlog_max = self._max_size + limits.write_buffer_high   # a group member this far behind: cut
        self._last_seen = self._last_msg = _monotonic()
        self._ping_sent: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writable = threading.Event()
        self._writable.set()
        self._paused_by: set[str] = set()
        self._inbox = None
        self._received = session.received
        self._direct = direct_writes      # worker threads will send: let them write to the socket themselves
        self._wlock: Any = None           # orders all writes once workers may write (None: loop only)
        self._fd = -1                     # our dup of the socket for the workers' direct writes
        self._pending = 0                 # calls posted to the loop and not run yet (under _wlock)
        self._partial: bytes | None = None   # the rest of a frame a worker could not write at once
        self._batch: WriteBatch | None = None  # loop-only writes: replies of one loop turn go out together

    # -- asyncio side ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = self.loop or asyncio.get_running_loop()
        if self._direct:
            self._wlock = threading.Lock()
            self._fd = _dup_socket(transport)
        else:
            self._batch = batch_for(self.loop)
        CONNECTIONS.add(self)
        self._schedule()
        self.session.opened(self)

    def data_received(self, data: bytes) -> None:
        if self._peer_closed or self.transport is None:
            return
        self._last_seen = _monotonic()
        if self._held or self._paused_by or len(data) > self._chunk:
            self._feed(self._held + data if self._held else data)
            return
        self._unparsed.extend(data)       # what receive_bytes() does, three calls down (wsproto's Buffer.feed)
        self._read_frames()

    def _feed(self, data: bytes) -> None:
        """Bytes to wsproto ``_chunk`` at a time (one inflate step stays small); while reading is paused the
        rest waits in ``_held`` (the current read may hold thousands of frames)."""
        chunk = self._chunk
        self._held = b""
        for i in range(0, len(data), chunk):
            if self._paused_by:
                self._held = data[i:]
                return
            self.frames.receive_bytes(data[i:i + chunk])
            self._read_frames()
            if self._peer_closed or self.transport is None:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self._batch is not None:
            self._batch.discard(self.transport)
        self.transport = None
        if self._wlock is not None:
            with self._wlock:
                fd, self._fd, self._partial = self._fd, -1, None
            if fd >= 0:
                os.close(fd)
        CONNECTIONS.discard(self)
        if self._timer:
            self._timer.cancel()
        if self._stall:
            self._stall.cancel()
        self._held = b""
        self._writable.set()
        self._finish(self.close_code or CloseReason.ABNORMAL_CLOSURE)

    def eof_received(self) -> None:
        """The peer sends nothing more: the transport closes itself, after the replies held for it."""
        if self.transport is not None:
            self._drain(self.transport)

    def pause_writing(self) -> None:
        """The client reads slower than we write: stop reading its messages (their answers would pile up)
        and cut it if it stays so for ``network_timeout``."""
        self._writable.clear()
        self.pause("write")
        if self._stall is None and self.loop is not None:
            self._stall = self.loop.call_later(self.limits.network_timeout, self._stalled)

    def resume_writing(self) -> None:
        self._writable.set()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self.resume("write")

    # -- frames ---------------------------------------------------------------------------------
    def _read_frames(self) -> None:
        """Every complete frame wsproto has now. Data frames carry their message's opcode (wsproto's
        message decoder resolves CONTINUATION), text already UTF-8 checked and decoded to str. Stops after
        the frame that paused reading; ``resume`` goes on with the rest.

        We step wsproto's own parse generator (what ``received_frames()`` wraps) and stop as soon as its
        buffer is empty: asking once more would only have it find that out, which costs about a tenth of
        a small message's framing. The generator stays suspended at that frame, as after ``None``."""
        if self._paused_by:
            self._unread = True
            return
        unparsed = self._unparsed
        try:
            for frame in self._parse:
                if frame is None:
                    break
                opcode = frame.opcode
                if opcode is _TEXT or opcode is _BINARY:
                    if self.closed:       # closing: only the peer's CLOSE matters now
                        if not unparsed:
                            break
                        continue
                    payload = frame.payload
                    if frame.message_finished and not self._parts and len(payload) <= self._max_size:
                        self._last_msg = self._last_seen
                        self._received(payload)
                    else:
                        self._fragment(payload, frame.message_finished, opcode is _TEXT)
                        if self._peer_closed:     # too big: nothing more is parsed (or inflated)
                            return
                elif opcode is _CLOSE:
                    self._peer_close(*frame.payload)
                    return
                elif opcode is _PING:
                    if not self.closed:
                        self._emit(self.frames.pong, frame.payload)
                elif opcode is _PONG:
                    self._ping_sent = None
                if self._paused_by or self.transport is None:
                    self._unread = True
                    return
                if not unparsed:
                    break
        except ParseFailed as e:          # wsproto found a protocol error (1002, 1007, ...)
            if self.closed:
                self._shutdown()
            else:
                self._fail(e.code, str(e)[:120])

    def _fragment(self, data: str | bytes, finished: bool, text: bool) -> None:
        self._size += len(data)
        if self._size > self._max_size:
            self._parts = []
            self._joined = 0
            self._fail(TOO_BIG, "message too big")
            return
        parts = self._parts
        parts.append(data)
        if not finished:
            if len(parts) - self._joined >= COALESCE:     # a str/bytes object per 1-byte fragment: ~50x
                parts[self._joined:] = [("" if text else b"").join(parts[self._joined:])]
                self._joined += 1
            return
        data = ("" if text else b"").join(parts)
        self._parts = []
        self._joined = 0
        self._size = 0
        self._last_msg = self._last_seen
        self._received(data)

    def _peer_close(self, code: int, reason: str) -> None:
        self._peer_closed = True
        if not self.closed:
            # the peer started the close: echo its code, then the TCP close is ours (RFC 6455 7.1.1)
            self.closed = True
            self.close_code = code
            self._emit(self.frames.close, code, reason)
        self._shutdown()                  # either way (it may be the answer to our own close)

    # -- sending (loop thread) ------------------------------------------------------------------
    def _emit(self, make: Any, *args: Any) -> None:
        """Build a frame and write it, in turn with the workers' writes."""
        lock = self._wlock
        if lock is None:
            data = make(*args)
            if self.transport is not None and data:
                self._batch.write(self.transport, data)
            return
        with lock:
            data = make(*args)
            self._write_locked(data)

    def _write_locked(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._partial is not None:     # a worker's frame started on the socket: its rest goes first
            transport.write(self._partial)
            self._partial = None
        if data:
            transport.write(data)

    def send(self, message: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message; ignored once closing."""
        transport = self.transport
        if self.closed or transport is None:
            return
        if self._wlock is None:           # the usual case, inlined: it runs for every reply
            self._batch.write(transport, self.frames.send_data(message))
        else:
            self._emit(self.frames.send_data, message)

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Start the close handshake; the socket is closed when the peer answers or after network_timeout."""
        if self.closed or self.transport is None:
            return
        self.closed = True
        self.close_code = code
        try:
            self._emit(self.frames.close, code, reason)
        except Exception as e:    # not a frame (code 70000, a bytes reason): marked closed, it must not stay open
            log.warning("websocket close(%r, %r) sent no close frame: %s", code, reason, e)
            self._shutdown()
            return
        self.loop.call_later(self.limits.network_timeout, self._shutdown)

    def _fail(self, code: int, reason: str) -> None:
        """Bad input (RFC 6455 7.1.7): send the close frame and read nothing more, so neither the rest of
        a huge frame nor a deflate bomb gets parsed or inflated. Where the transport can, our side is
        half-closed behind the frame (the client sees the code, then EOF); the peer's bytes are drained
        unread until it closes, or ``network_timeout`` passes."""
        self.close(code, reason)
        self._peer_closed = True
        self._parts = []
        self._held = b""
        transport = self.transport
        try:
            if transport is not None and not transport.is_closing() and transport.can_write_eof():
                self._drain(transport)
                transport.write_eof()
        except (AttributeError, NotImplementedError, OSError, RuntimeError):
            pass

    def _shutdown(self) -> None:
        self.closed = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._drain(transport)
            transport.close()
            if transport.get_write_buffer_size():     # close() waits for a flush the peer may never take
                self.loop.call_later(self.limits.network_timeout, self._cut, "the close did not flush")

    def _drain(self, transport: asyncio.Transport) -> None:
        """Held replies go out before the transport is closed behind them."""
        if self._batch is not None:
            self._batch.drain(transport)

    def _stalled(self) -> None:
        self._stall = None
        self._cut("the client does not read")

    def _cut(self, why: str) -> None:
        """Drop the connection now: a close frame could not reach a client that does not read."""
        transport = self.transport
        if transport is not None and (not self._writable.is_set() or transport.is_closing()):
            log.info("websocket cut: %s", why)
            transport.abort()

    def check_backlog(self) -> None:
        """After a message that must not wait for this client (a group's): a client more than
        ``ws_max_message_size`` + ``write_buffer_high`` bytes behind is cut (loop thread)."""
        transport = self.transport
        if (not self._writable.is_set() and transport is not None
                and transport.get_write_buffer_size() > self._backlog_max):
            self._cut("too far behind its group")

    def _finish(self, code: int) -> None:
        session, self.session = self.session, None
        self.closed = True
        if session is not None:
            session.closed(code)

    # -- from other threads ---------------------------------------------------------------------
    def send_threadsafe(self, message: str | bytes, wait: bool = True) -> None:
        """Send from a worker thread; blocks while the client reads slower than we write (``wait``; a
        client that stays so for ``network_timeout`` is cut, which ends the wait). ``wait=False`` (a group's
        fan-out) never blocks on this client: one too far behind is cut (``check_backlog``).
        Straight to the socket when nothing waits before it (see the module doc); else through the loop,
        where sends of many threads in one loop turn share one wake-up (``LoopInbox``)."""
        lock = self._wlock
        if lock is None:
            self._post(self.send, message)
        else:
            with lock:
                if not self._write_direct(message):
                    self._post_locked(self.send, message)
        if not self._writable.is_set():
            if wait:
                self._writable.wait(self.limits.network_timeout)
            else:
                try:
                    self.loop.call_soon_threadsafe(self.check_backlog)
                except RuntimeError:             # the loop is closed: the connection is gone
                    pass

    def _write_direct(self, message: str | bytes) -> bool:    # worker thread, under _wlock
        transport = self.transport
        if (self._pending or self._partial is not None or self._fd < 0 or self.closed or transport is None
                or transport.is_closing() or transport.get_write_buffer_size()):
            return False
        data = self.frames.send_data(message)
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return True                   # the connection broke: the loop finds out and closes it
        if sent < len(data):
            self._partial = bytes(data[sent:])
            self._post_locked(self._emit, _nothing)       # the loop writes the rest (before anything else)
        return True

    def close_threadsafe(self, code: int = NORMAL, reason: str = "") -> None:
        lock = self._wlock
        if lock is None:
            self._post(self.close, code, reason)     # behind the sends posted before it
        else:
            with lock:
                self._post_locked(self.close, code, reason)

    def _post(self, fn, *args) -> None:
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = inbox_for(self.loop)
        inbox.post(fn, *args)

    def _post_locked(self, fn, *args) -> None:
        """Post with ``_wlock`` held: no direct write overtakes it before the loop has run it."""
        self._pending += 1
        self._post(self._run_posted, fn, args)

    def _run_posted(self, fn, args: tuple) -> None:
        try:
            fn(*args)
        finally:
            with self._wlock:
                self._pending -= 1

    def pause(self, who: str = "queue") -> None:
        """Stop reading (a handler is behind); ``resume`` undoes it."""
        if not self._paused_by and self.transport is not None:
            self.transport.pause_reading()
        self._paused_by.add(who)

    def resume(self, who: str = "queue") -> None:
        self._paused_by.discard(who)
        if not self._paused_by and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            if self._unread:              # frames left in wsproto when reading paused
                self._unread = False
                self._read_frames()
            if self._held and not self._paused_by and not self._peer_closed:
                self._feed(self._held)

    # -- keep-alive -----------------------------------------------------------------------------
    def _schedule(self) -> None:
        step = min(x for x in (self.limits.ws_ping_interval, self.timeout or 1e9, 1e9) if x > 0)
        self._timer = self.loop.call_later(step, self._tick)

    def _tick(self) -> None:
        if self.transport is None or self.closed:
            return
        now, limits = _monotonic(), self.limits
        if self.timeout and now - self._last_msg >= self.timeout:
            self.close(GOING_AWAY, "idle timeout")
            return
        if self._ping_sent is not None and now - self._ping_sent >= limits.ws_ping_timeout:
            self.transport.abort()           # no PONG: the peer is gone
            return
        if self._ping_sent is None and now - self._last_seen >= limits.ws_ping_interval:
            self._ping_sent = now
            self._emit(self.frames.ping, os.urandom(4))
        self._schedule()

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:                       # the loop stopped before connection_lost: no one else holds us
            try:
                os.close(fd)
            except OSError:
                pass


def _nothing() -> bytes:
    return b""


def _dup_socket(transport: Any) -> int:
    """A duplicate descriptor of a plain TCP transport's socket for direct writes; -1 when there is none
    (TLS: the bytes must go through the TLS layer; a transport without a socket)."""
    if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info("ssl_object") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    try:
        return os.dup(sock.fileno()) if sock is not None else -1
    except (OSError, ValueError, AttributeError):
        return -1
