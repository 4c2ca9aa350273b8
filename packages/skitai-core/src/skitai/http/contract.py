"""The contract between the protocols (HTTP/1.1, HTTP/2, WebSocket) and the handlers.

A protocol parses bytes into a ``Request``, makes an ``Exchange`` for it and calls the dispatcher:
``dispatch(exchange)``, which may return ``None`` (the answer was given synchronously) or an awaitable
(the protocol runs it as a task). Handlers never touch transports: they only use the ``Exchange``.

Every ``Exchange`` method runs on the loop thread. Worker threads cross to the loop themselves
(``loop.call_soon_threadsafe`` / ``asyncio.run_coroutine_threadsafe``): see ``skitai.wsgi``.

This file names the shapes; ``skitai.http.request`` and the protocol modules implement them.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import IO, Any, Protocol


class Headers(Protocol):
    """Request headers in arrival order. Names are lower-case ``str``; values are ``str`` (latin-1)."""

    def get(self, name: str, default: str | None = None) -> str | None: ...
    def getall(self, name: str) -> list[str]: ...
    def items(self) -> list[tuple[str, str]]: ...
    def __contains__(self, name: str) -> bool: ...


class Body(Protocol):
    """The request body as a stream. The sync methods block the calling worker thread (``wsgi.input``);
    the async ones are for handlers on the loop. Reading the first byte sends ``100 Continue`` when the
    client asked for it. Reading past ``Limits.max_body_size`` raises ``BodyTooLarge``."""

    def read(self, size: int = -1) -> bytes: ...
    def readline(self, size: int = -1) -> bytes: ...
    def readlines(self, hint: int = -1) -> list[bytes]: ...
    def __iter__(self): ...
    async def aread(self, size: int = -1) -> bytes: ...


class Request(Protocol):
    method: str              # "GET"
    target: str              # the raw request-target: "/a%20b?x=1"
    path: str                # the raw path part, not percent-decoded: "/a%20b"
    query: str               # after "?", without it ("" when absent)
    version: str             # "1.0", "1.1" or "2"
    headers: Headers
    scheme: str              # "http" or "https"
    host: str                # Host (or :authority) without the port, lower-case; "" if absent
    client: tuple[str, int]  # peer address
    server: tuple[str, int]  # local address
    body: Body
    gtxnid: str              # X-Gtxn-Id from the request or minted: "GTID-C<conn>-R<req>"
    ltxnid: int              # 1000 when minted, else int(X-Ltxn-Id) + 1000
    started: float           # time.monotonic() when the head was parsed


class Exchange(Protocol):
    """One request and its answer on one connection or stream."""

    request: Request
    loop: Any                # the asyncio loop that owns the connection
    config: Any              # skitai.config.Config
    closed: bool             # the client went away; handlers stop producing
    log_extra: dict          # "user", "token" for the request log line

    # A whole answer in one write: the fast path (small WSGI responses, errors, redirects).
    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes = b"",
                reason: str | None = None) -> None: ...

    # Streaming: head first, then chunks (chunked on HTTP/1.1 when no Content-Length), then end().
    def start(self, status: int, headers: list[tuple[str, str]], reason: str | None = None) -> None: ...
    async def write(self, data: bytes) -> None: ...      # returns when the transport can take more
    def end(self, data: bytes = b"") -> None: ...
    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None: ...   # zero-copy when plain HTTP/1.1

    def push(self, path: str, headers: list[tuple[str, str]] | None = None) -> None: ...  # HTTP/2 push; no-op elsewhere
    def error(self, status: int, detail: str = "") -> None: ...   # a small HTML error page (respond())


Dispatch = Callable[[Exchange], Awaitable[None] | None]
