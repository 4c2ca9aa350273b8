"""The request body as the reverse proxy sends it to members (``skitai.handlers.proxy``).

Small bodies (up to the proxy's ``replay_limit``) are read whole first, so a failed attempt can be sent
again to another member. A larger body (or one announced larger) is streamed from the client to the member
as it arrives; it stays replayable until the first byte beyond the buffered prefix is taken from the
client. ``active_at``/``waiting`` let the proxy's watchdog tell a stalled client from a stalled member.
"""
from __future__ import annotations

import time
from typing import Any

from aquests.http.body import Body as ClientBody


class ForwardBody:
    """The request body as members get it. It can be sent again while no byte beyond the buffered
    ``prefix`` has been taken from the client (``replayable``)."""

    __slots__ = ("prefix", "live", "length", "chunk", "tapped", "finished", "error", "active_at", "waiting")

    def __init__(self, prefix: bytes, live: Any = None, length: int | None = None, chunk: int = 65536) -> None:
        self.prefix = prefix
        self.live = live              # the client's body still to read, or None when ``prefix`` is all
        self.length = length          # the whole length when known (Content-Length), else chunked
        self.chunk = chunk
        self.tapped = False           # bytes were taken from ``live``: cannot be sent twice
        self.finished = live is None
        self.error: BaseException | None = None   # the client's side failed (too large, went away)
        self.active_at = time.monotonic()         # the last time bytes moved (the watchdog's clock)
        self.waiting = False          # waiting for the client's next bytes (a stall is the client's)

    @property
    def replayable(self) -> bool:
        return not self.tapped

    def for_client(self) -> ClientBody:
        """A fresh aquests body for one attempt."""
        self.active_at = time.monotonic()
        if self.live is None:
            return ClientBody(self.prefix)
        return ClientBody(source=self._chunks(), length=self.length)

    async def _chunks(self):
        if self.prefix:
            yield self.prefix
        self.tapped = True
        while True:
            self.active_at = time.monotonic()
            self.waiting = True
            try:
                data = await self.live.aread(self.chunk)
            except Exception as exc:           # too large, gone away; a cancellation is not the client's
                self.error = exc
                raise
            finally:
                self.waiting = False
            self.active_at = time.monotonic()
            if not data:
                self.finished = True
                return
            yield data


async def read_body(request: Any, replay_limit: int, chunk: int) -> ForwardBody:
    """Buffer a body up to ``replay_limit`` bytes; a longer one (or one announced longer) is streamed."""
    body = request.body
    if getattr(body, "complete", False) and not getattr(body, "received", 0):
        return ForwardBody(b"")                      # no body, or an empty one
    length = _content_length(request.headers.get("content-length"))
    if length is not None and length > replay_limit:
        return ForwardBody(b"", body, length, chunk)
    prefix = await body.aread(replay_limit + 1)
    if len(prefix) <= replay_limit:
        return ForwardBody(prefix)
    return ForwardBody(prefix, body, length, chunk)


def _content_length(value: str | None) -> int | None:
    if value and value.strip().isdigit():
        return int(value.strip())
    return None
