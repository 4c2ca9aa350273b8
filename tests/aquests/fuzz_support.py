"""The harness shared by the fuzz sweeps (test_client_fuzz.py, test_client_fuzz2.py).

``run(main)`` runs one example on a fresh event loop and fails when anything reached the loop's
exception handler (an exception nobody retrieved); ``Server`` is a raw TCP server whose first
connection is hostile and whose later ones are served well; ``frame``/``hblock``/``FrameReader``
build and split raw HTTP/2 frames.
"""
from __future__ import annotations

import asyncio
import gc
from typing import Any, Awaitable, Callable

from hypothesis import HealthCheck, settings

from aquests.dbapi.pool import close_all as close_db_pools

TIMEOUT = 0.25                # seconds for a hostile call
SLACK = 1.0                   # scheduling slack on a busy 2-core machine
GOOD_TIMEOUT = 5.0            # a good request must never fail for lack of time
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- harness ----------------------------------------------------------------------------------
def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """``main()`` on a fresh loop; fails if anything reached the loop's exception handler."""
    gc.freeze()  # what exists now is not this example's: the collections below skip it (fast)
    loop = asyncio.new_event_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        result = loop.run_until_complete(main())
        loop.run_until_complete(close_db_pools())
        loop.run_until_complete(asyncio.sleep(0.01))  # let closed transports report connection_lost
        gc.collect()  # "Task/Future exception was never retrieved" is reported when they are freed
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        gc.collect()
        gc.unfreeze()
    assert not errors, [(e.get("message"), repr(e.get("exception"))) for e in errors]
    return result


class Server:
    """A TCP server whose first connection runs ``hostile(reader, writer, server)``; later connections
    (and the hostile one, when it returns True) are served by ``good(reader, writer)``. ``hostile``
    sets ``server.sent`` once its bad bytes are written; to hang it waits for ``server.stop``."""

    def __init__(self, hostile: Callable | None, good: Callable) -> None:
        self.hostile, self.good = hostile, good
        self.conns = 0
        self.sent = asyncio.Event()
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        self.writers.append(writer)
        self.conns += 1
        first = self.conns == 1 and self.hostile is not None
        try:
            if first:
                try:
                    keep = await self.hostile(reader, writer, self)
                finally:
                    self.sent.set()
                if not keep:
                    return
            await self.good(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "Server":
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 20)
        self.port = self.srv.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await shut(self)


async def shut(server: Any) -> None:
    """Stop a test server (``srv``, ``stop``, ``writers``, ``tasks``): its connections cut, its handlers
    left to end on their own (cancelling them is reported by asyncio's stream machinery)."""
    server.srv.close()
    server.stop.set()
    for w in server.writers:
        w.transport.abort()
    await asyncio.wait_for(asyncio.gather(*server.tasks, return_exceptions=True), GOOD_TIMEOUT)


async def hang_until_more(server: Any, reader: asyncio.StreamReader) -> None:
    """Silent until the client sends more on this connection (it took the answer as complete), then
    return, to hang up like a server dropping an idle connection; or until the server stops."""
    stop = asyncio.ensure_future(server.stop.wait())
    more = asyncio.ensure_future(reader.read(1))
    await asyncio.wait([stop, more], return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    more.cancel()
    await asyncio.gather(stop, more, return_exceptions=True)


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


def hblock(fields: list[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block of literals that are never indexed: our raw frames leave no dynamic table
    behind that a later good answer would have to agree with."""
    from hpack import Encoder
    return Encoder().encode([(k, v, True) for k, v in fields])


class FrameReader:
    """Splits what the client sends into (type, flags, stream id) after the preface."""

    def __init__(self) -> None:
        self.buf = b""
        self.preface = False

    def feed(self, data: bytes) -> list[tuple[int, int, int]]:
        self.buf += data
        if not self.preface:
            if len(self.buf) < len(PREFACE):
                return []
            self.buf, self.preface = self.buf[len(PREFACE):], True
        out = []
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            out.append((self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF))
            self.buf = self.buf[9 + n:]
        return out
