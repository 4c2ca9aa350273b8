"""Pull-style body producers (inventory AQ-24).

A producer has ``more() -> bytes`` and returns ``b""`` once it is exhausted. Skitai responses
may return them, and aquests request bodies accept them (``data=producer``). Each one is
small and composable: wrap a producer to chunk, compress, batch or observe its output.
"""
from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Protocol


class Producer(Protocol):
    def more(self) -> bytes: ...


class simple_producer:
    """Hands out ``data`` in pieces of ``buffer_size`` bytes."""

    def __init__(self, data: bytes | str, buffer_size: int = 4096) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")
        self.data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self.buffer_size = buffer_size
        self._pos = 0

    def more(self) -> bytes:
        piece = self.data[self._pos:self._pos + self.buffer_size]
        self._pos += len(piece)
        return piece

    def __len__(self) -> int:
        return len(self.data)


class file_producer:
    """Reads a binary file object ``buffer_size`` bytes at a time and closes it at the end."""

    def __init__(self, file: IO[bytes], buffer_size: int = 65536) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")
        self.file = file
        self.buffer_size = buffer_size
        self.done = False

    def more(self) -> bytes:
        if self.done:
            return b""
        data = self.file.read(self.buffer_size)
        if not data:
            self.done = True
            self.file.close()
        return data


class composite_producer:
    """The output of several producers, one after the other."""

    def __init__(self, producers: Iterable[Producer]) -> None:
        self.producers = deque(producers)

    def more(self) -> bytes:
        while self.producers:
            data = self.producers[0].more()
            if data:
                return data
            self.producers.popleft()
        return b""


class globbing_producer:
    """Batches small outputs of ``producer`` into pieces of at least ``buffer_size`` bytes."""

    def __init__(self, producer: Producer, buffer_size: int = 1 << 16) -> None:
        self.producer = producer
        self.buffer_size = buffer_size

    def more(self) -> bytes:
        parts, size = [], 0
        while size < self.buffer_size:
            data = self.producer.more()
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)


class hooked_producer:
    """Passes ``producer`` through and calls ``function(total_bytes)`` once it is exhausted."""

    def __init__(self, producer: Producer, function: Callable[[int], object]) -> None:
        self.producer = producer
        self.function: Callable[[int], object] | None = function
        self.bytes = 0

    def more(self) -> bytes:
        if self.producer is None:
            return b""
        data = self.producer.more()
        if data:
            self.bytes += len(data)
            return data
        self.producer = None
        fn, self.function = self.function, None
        if fn is not None:
            fn(self.bytes)
        return b""


class chunked_producer:
    """HTTP/1.1 chunked transfer coding of ``producer``; ``footers`` become trailer lines."""

    def __init__(self, producer: Producer, footers: Iterable[str] | None = None) -> None:
        self.producer = producer
        self.footers = list(footers or ())

    def more(self) -> bytes:
        if self.producer is None:
            return b""
        data = self.producer.more()
        if data:
            return b"%x\r\n%s\r\n" % (len(data), data)
        self.producer = None
        trailer = "".join(f"{line}\r\n" for line in self.footers).encode("latin-1")
        return b"0\r\n" + trailer + b"\r\n"


class gzipped_producer:
    """gzip-compresses the output of ``producer`` as it is pulled."""

    def __init__(self, producer: Producer, level: int = 6) -> None:
        if not 0 <= level <= 9:
            raise ValueError("level must be 0..9")
        self.producer = producer
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def more(self) -> bytes:
        if self.producer is None:
            return b""
        while True:
            data = self.producer.more()
            if not data:
                self.producer = None
                return self.compressor.flush()
            out = self.compressor.compress(data)
            if out:
                return out


compressed_producer = gzipped_producer

__all__ = ["simple_producer", "file_producer", "composite_producer", "globbing_producer",
           "hooked_producer", "chunked_producer", "gzipped_producer", "compressed_producer"]
