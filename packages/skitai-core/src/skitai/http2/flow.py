"""HTTP/2 flow control, both directions, without unbounded buffering.

Send side: each stream has an ``Outbox``. What the peer's windows allow goes out at once; the rest waits
and is pumped again on WINDOW_UPDATE (or a SETTINGS change). A producer (``exchange.write``) awaits
``drained()`` when its outbox is over the high-water mark, so a slow reader pauses the producing handler.
A stream blocked on a zero window is timed: the protocol resets it (or closes the connection when the
connection window is the one stuck) after ``network_timeout``.

Receive side: ``Credit`` returns WINDOW_UPDATE credit only for data the app has taken: while the body
buffer is over its high-water mark, received bytes are held back and acknowledged on drain. ``Credit.active``
is when the request body last moved: a body that stops arriving while its window is open is timed out by
the protocol after ``network_timeout`` (408, as on HTTP/1.1), so a worker blocked reading it is freed.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque

HIGH_WATER = 256 * 1024


class Outbox:
    """Data of one stream waiting for flow-control window; ``end``/``trailers`` finish the stream after it."""

    __slots__ = ("chunks", "size", "ending", "trailers", "blocked_since", "waiter", "done")
    high_water = HIGH_WATER

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.ending = False
        self.trailers: list[tuple[str, str]] | None = None
        self.blocked_since = 0.0
        self.waiter: asyncio.Future | None = None
        self.done = False

    def put(self, data: bytes) -> None:
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def pump(self, conn, stream_id: int) -> bool:
        """Send what the windows allow; True when everything (and the end) went out."""
        chunks = self.chunks
        while chunks:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                if not self.blocked_since:
                    self.blocked_since = time.monotonic()
                return False
            data = chunks[0]
            if len(data) > window:
                chunks[0] = data[window:]
                data = data[:window]
            else:
                chunks.popleft()
            self.size -= len(data)
            last = self.ending and not chunks and self.trailers is None
            conn.send_data(stream_id, data, end_stream=last)
            self.done = last
        self.blocked_since = 0.0
        if self.ending and not self.done:
            self.done = True
            if self.trailers is not None:
                conn.send_headers(stream_id, self.trailers, end_stream=True)
            else:
                conn.end_stream(stream_id)
        self.wake()
        return self.ending

    def wake(self, exc: BaseException | None = None) -> None:
        w = self.waiter
        if w is not None and not w.done() and (exc is not None or self.size < HIGH_WATER):
            self.waiter = None
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(exc)

    async def drained(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the outbox is below the high-water mark."""
        if self.size >= HIGH_WATER:
            self.waiter = loop.create_future()
            await self.waiter


class Credit:
    """Receive-side window credit of one stream: acknowledge only what the reader has taken."""

    __slots__ = ("held", "paused", "active")

    def __init__(self) -> None:
        self.held = 0
        self.paused = False
        self.active = time.monotonic()   # the request body last moved: bytes came in or credit went back
