"""One HTTP/2 stream as a byte transport, for protocols bootstrapped with extended CONNECT (RFC 8441).

A WebSocket over HTTP/2 lives on one stream: its frames are the stream's DATA. ``StreamTransport`` gives
the WebSocket protocol the ``asyncio.Transport`` calls it makes on a TCP connection, mapped to the stream:
writes go through the exchange's outbox (so HTTP/2 flow control paces them and the other streams keep
their share), ``pause_reading`` holds back our WINDOW_UPDATEs, ``close`` ends the stream and ``abort``
resets it. There is no socket of its own (``get_extra_info("socket")`` is None), so nothing can write
around the connection's framing.
"""
from __future__ import annotations

import asyncio
from typing import Any

from h2.errors import ErrorCodes


class StreamTransport(asyncio.Transport):
    """The transport a protocol on an extended CONNECT stream sees (see the module doc)."""

    def __init__(self, exchange: Any, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.exchange = exchange
        self.h2 = exchange.proto                 # the connection's H2Protocol
        self.protocol = protocol
        self._closing = False
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False

    # -- from the connection (H2Protocol) ---------------------------------------------------------
    def feed(self, data: bytes, size: int) -> None:
        """DATA of this stream: credit it back now, or later when reading resumes."""
        if self._reading_paused:
            self.exchange.credit.paused = True
            self.exchange.credit.held += size
        elif size:
            self.h2.conn.acknowledge_received_data(size, self.exchange.stream_id)
        if data and not self._lost:
            self.protocol.data_received(data)

    def peer_ended(self) -> None:
        """The client ended its side of the stream (END_STREAM): nothing more will be read."""
        keep_open = getattr(self.protocol, "eof_received", lambda: None)()
        if not keep_open:
            self.close()

    def lost(self, exc: Exception | None = None) -> None:
        """The stream is gone (reset, connection lost, or both sides ended): tell the protocol once, on the
        next loop turn as asyncio's transports do. This may run inside the protocol's own ``write()`` (the
        stream was reset before the bytes could go), where the protocol can hold a lock its
        ``connection_lost`` takes."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self.h2.loop.call_soon(self.protocol.connection_lost, exc)

    # -- asyncio.Transport ----------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None
        if name == "stream_id":
            return self.exchange.stream_id
        transport = self.h2.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def is_closing(self) -> bool:
        return self._closing or self.exchange.closed

    def write(self, data: bytes) -> None:
        if self.is_closing() or not data:
            return
        ex = self.exchange
        ex.send(data)                     # to the outbox, and out as far as the windows allow
        if not self._writing_paused and ex.outbox.size >= ex.outbox.high_water:
            self._writing_paused = True
            self.protocol.pause_writing()
            ex.when_writable(self._drained)

    def _drained(self) -> None:
        self._writing_paused = False
        if not self._lost:
            self.protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.exchange.outbox.size

    def close(self) -> None:
        """End our side of the stream (END_STREAM after what is queued); the protocol hears
        ``connection_lost`` on the next loop turn, as from a TCP transport."""
        if self._closing:
            return
        self._closing = True
        ex = self.exchange
        if not ex.closed:
            ex.end()
        self.h2.loop.call_soon(self.lost, None)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """The half-close a protocol failing its peer asks for (a WebSocket after a protocol error: its CLOSE
        frame, then nothing more read): the stream ends behind what is queued, as ``close``. Without it
        the stream stayed open, its DATA drained, until the peer answered or ``network_timeout``."""
        self.close()

    def abort(self) -> None:
        if self._lost:
            return
        self._closing = True
        if not self.exchange.closed:
            self.h2.reset(self.exchange, ErrorCodes.CANCEL)
        self.h2.loop.call_soon(self.lost, None)

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        self._reading_paused = False
        self.h2._credit(self.exchange.stream_id)

    def is_reading(self) -> bool:
        return not self._reading_paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass                              # the exchange's outbox has its own high-water mark
