"""Request bodies that need not fit in memory, and the streamed response body."""
from __future__ import annotations

import asyncio
import io
import os
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, Callable

from .errors import ConnectionClosed

CHUNK = 64 * 1024          # bytes read from a file per write
HIGH_WATER = 256 * 1024    # buffered response bytes before we stop reading the socket


class Body:
    """A normalised request body: ``data`` (bytes) or ``chunks`` (an async iterator) and a length."""

    __slots__ = ("data", "source", "length")

    def __init__(self, data: bytes | None = None, source: Any = None, length: int | None = None) -> None:
        self.data = data
        self.source = source
        self.length = len(data) if data is not None else length

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again (after a stale keep-alive connection)."""
        return self.data is not None

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.data is not None:
            if self.data:
                yield self.data
            return
        src = self.source
        if hasattr(src, "read"):
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    return
                yield chunk.encode() if isinstance(chunk, str) else chunk
        elif hasattr(src, "more"):  # medusa-style producer (aquests.lib.producers)
            while True:
                chunk = src.more()
                if not chunk:
                    return
                yield chunk
        elif isinstance(src, AsyncIterable):
            async for chunk in src:
                if chunk:
                    yield chunk.encode() if isinstance(chunk, str) else chunk
        else:
            for chunk in src:
                if chunk:
                    yield chunk.encode() if isinstance(chunk, str) else chunk


def make_body(value: Any) -> Body:
    """Accept bytes/str, a binary file, a producer, or a (async) iterator of bytes."""
    if value is None:
        return Body(b"")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Body(bytes(value))
    if isinstance(value, str):
        return Body(value.encode("utf-8"))
    if hasattr(value, "read"):
        length = None
        try:
            pos = value.tell()
            length = os.fstat(value.fileno()).st_size - pos
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            pass
        return Body(source=value, length=length)
    if hasattr(value, "more") or isinstance(value, (AsyncIterable, Iterable)):
        return Body(source=value)
    raise TypeError(f"cannot send a request body of type {type(value).__name__}")


class BodyStream:
    """The body of a ``stream=True`` response, read without holding it whole.

    ``async for chunk in response.stream`` or ``await response.stream.read(n)``; the
    connection goes back to the pool when the body ends.
    """

    def __init__(self, pause: Callable[[], None] | None = None, resume: Callable[[], None] | None = None,
                 consumed: Callable[[int], None] | None = None) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._pause, self._resume, self._consumed = pause, resume, consumed
        self._paused = False
        self.timeout: float | None = None
        self.on_close: Callable[[], None] | None = None
        self.on_eof: Callable[[], None] | None = None  # e.g. to pick up HTTP/2 trailers

    # -- producer side (the protocol) --
    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and self._pause and not self._paused:
            self._paused = True
            self._pause()
        self._wakeup()

    def feed_eof(self) -> None:
        self._eof = True
        if self.on_eof is not None:
            self.on_eof()
        self._wakeup()

    def set_exception(self, exc: BaseException) -> None:
        if self._exc is None:  # the first failure is the cause; a close that follows it is not news
            self._exc = exc
        self._wakeup()

    def _wakeup(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- consumer side --
    @property
    def failed(self) -> BaseException | None:
        """The failure the next read raises (nothing is buffered before it), else None."""
        return self._exc if not self._chunks else None

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            if self.timeout:
                try:
                    await asyncio.wait_for(self._waiter, self.timeout)
                except TimeoutError:
                    raise TimeoutError(f"no bytes of the streamed response body for {self.timeout:g} s "
                                       f"(the timeout of each read)") from None
            else:
                await self._waiter
        finally:
            self._waiter = None

    async def read_chunk(self) -> bytes:
        """The next chunk, or b"" at the end of the body."""
        while not self._chunks:
            if self._exc is not None:
                raise self._exc
            if self._eof:
                return b""
            await self._wait()
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._consumed:
            self._consumed(len(chunk))
        if self._paused and self._size < HIGH_WATER // 2:
            self._paused = False
            self._resume()
        return chunk

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all remaining with n < 0); b"" at the end."""
        if n < 0:
            parts = []
            while chunk := await self.read_chunk():
                parts.append(chunk)
            return b"".join(parts)
        chunk = await self.read_chunk()
        if len(chunk) > n:
            self._chunks.appendleft(chunk[n:])
            self._size += len(chunk) - n
            chunk = chunk[:n]
        return chunk

    def __aiter__(self) -> "BodyStream":
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        """Stop reading; an unfinished body means the connection is dropped."""
        if not self._eof and self._exc is None:
            self._exc = ConnectionClosed("response stream closed by the caller")
        if self._size and self._consumed:
            # bytes nobody will read still count against the HTTP/2 connection's window: give them back,
            # or every stream closed unread (or failed with data buffered) shrinks it for the others
            size, self._size = self._size, 0
            self._chunks.clear()
            self._consumed(size)
        if self.on_close:
            cb, self.on_close = self.on_close, None
            cb()
