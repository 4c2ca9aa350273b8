"""Request, Headers and Body: the protocol-independent request objects of ``skitai.http.contract``.

Every protocol (HTTP/1.1 here, HTTP/2 and WebSocket elsewhere) builds these from what its parser gives:
``Headers`` from a list of ``(lower-case name, value)`` str tuples, a ``Body`` fed on the loop with
``feed()`` / ``feed_eof()`` / ``fail()``, and a ``Request`` holding both.

``Body`` is read either by a worker thread (``read`` and friends block that thread: ``wsgi.input``) or on the
loop (``aread``). Its buffer is bounded: ``feed()`` returns True above the high-water mark so the protocol
pauses reading, and the ``on_drain`` callback (run on the loop) tells it when to resume.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

from .errors import BodyTooLarge, ClientDisconnected
from .txn import txn_ids

BODY_HIGH_WATER = 256 * 1024
BODY_LOW_WATER = 64 * 1024


class Headers:
    """Request headers in arrival order; lookups are case-insensitive, repeated fields are comma-joined
    (``Cookie`` with ``"; "``)."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items = items if items is not None else []
        self._map: dict[str, list[str]] | None = None

    def _index(self) -> dict[str, list[str]]:
        m: dict[str, list[str]] = {}
        for k, v in self._items:
            vals = m.get(k)
            if vals is None:
                m[k] = [v]
            else:
                vals.append(v)
        self._map = m
        return m

    def get(self, name: str, default: str | None = None) -> str | None:
        vals = (self._map or self._index()).get(name.lower())
        if vals is None:
            return default
        if len(vals) == 1:
            return vals[0]
        return ("; " if name.lower() == "cookie" else ", ").join(vals)

    def getall(self, name: str) -> list[str]:
        return list((self._map or self._index()).get(name.lower(), ()))

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return list((self._map or self._index()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in (self._map or self._index())

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class EmptyBody:
    """The body of a request that has none (shared: it has no state)."""

    __slots__ = ()
    complete = True
    consumed = False
    received = 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    async def aread(self, size: int = -1) -> bytes:
        return b""

    def feed(self, data: bytes) -> bool:  # pragma: no cover - nothing feeds an empty body
        raise RuntimeError("a request without a body received body bytes")

    def feed_eof(self) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        pass

    def discard(self) -> None:
        pass


EMPTY_BODY = EmptyBody()


class Body:
    """A streaming request body.

    Loop side: ``feed(data) -> paused?``, ``feed_eof()``, ``fail(exc)``, ``discard()``.
    Reader side: ``read/readline/readlines/iter`` (blocking, worker threads) and ``aread`` (loop).
    ``on_first_read`` (e.g. send ``100 Continue``) and ``on_drain`` (resume reading) run on ``loop``.
    """

    __slots__ = ("loop", "limit", "on_first_read", "on_drain", "_buf", "_eof", "_error", "_cond",
                 "_waiter", "_paused", "consumed", "received", "_discarding")

    def __init__(self, loop, limit: int | None = None, on_first_read: Callable[[], None] | None = None,
                 on_drain: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.limit = limit
        self.on_first_read = on_first_read
        self.on_drain = on_drain
        self._buf = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._cond = threading.Condition(threading.Lock())
        self._waiter = None
        self._paused = False
        self.consumed = False        # a reader asked for bytes
        self.received = 0            # bytes fed so far
        self._discarding = False

    # ---- loop side -------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self._eof

    def feed(self, data: bytes) -> bool:
        """Append bytes; True means the buffer is over the high-water mark (pause the producer).
        Raises ``BodyTooLarge`` (and fails the readers) past ``limit``."""
        self.received += len(data)
        if self.limit is not None and self.received > self.limit:
            exc = BodyTooLarge(f"request body over {self.limit} bytes")
            self.fail(exc)
            raise exc
        if self._discarding:
            return False
        with self._cond:
            self._buf += data
            self._cond.notify_all()
        self._wake()
        if len(self._buf) > BODY_HIGH_WATER:
            self._paused = True
            return True
        return False

    def feed_eof(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """Readers get ``exc`` (a size limit, a disconnect, bad framing) instead of more bytes."""
        with self._cond:
            if self._error is None and not self._eof:
                self._error = exc
            self._cond.notify_all()
        self._wake()

    def discard(self) -> None:
        """The answer is done: drop what is buffered and what still arrives."""
        self._discarding = True
        with self._cond:
            self._buf.clear()
            self._cond.notify_all()
        if self._paused and self.on_drain is not None:
            self._paused = False         # the producer waits for a reader that will never come: resume it
            self.on_drain()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def _taken(self, threaded: bool) -> None:
        """After a read: resume the producer once the buffer is low again."""
        if self._paused and len(self._buf) < BODY_LOW_WATER and self.on_drain is not None:
            self._paused = False
            if threaded:
                self.loop.call_soon_threadsafe(self.on_drain)
            else:
                self.on_drain()

    def _first(self, threaded: bool) -> None:
        self.consumed = True
        cb = self.on_first_read
        if cb is not None:
            self.on_first_read = None
            if threaded:
                self.loop.call_soon_threadsafe(cb)
            else:
                cb()

    def _raise(self) -> None:
        err = self._error
        if isinstance(err, BodyTooLarge | ClientDisconnected):
            raise type(err)(*err.args)
        raise err  # type: ignore[misc]

    def _pull(self, size: int, line: bool) -> tuple[bytes, bool]:
        """Take up to ``size`` buffered bytes (up to a newline when ``line``), waiting for at least one.
        Returns ``(data, finished)``; caller holds no lock. Threads only."""
        with self._cond:
            while not self._buf and not self._eof and self._error is None:
                self._cond.wait(1.0)
            if self._error is not None:
                self._raise()
            data, hit = self._cut(size, line)
            finished = hit or (self._eof and not self._buf)
        self._taken(True)
        return data, finished

    def _cut(self, size: int, line: bool) -> tuple[bytes, bool]:
        buf = self._buf
        n = len(buf)
        hit = False
        if line:
            i = buf.find(b"\n")
            if i >= 0:
                n, hit = i + 1, True
        if 0 <= size <= n:
            n, hit = size, True
        data = bytes(buf[:n])
        del buf[:n]
        return data, hit

    def _collect(self, size: int, line: bool) -> bytes:
        if size is None:
            size = -1
        if not self.consumed:
            self._first(True)
        if size == 0:
            return b""
        parts = []
        while True:
            data, finished = self._pull(size, line)
            parts.append(data)
            if size > 0:
                size -= len(data)
            if finished:
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # ---- reader side: worker threads -------------------------------------------------------------
    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all when negative); blocks until that many came or the body ended."""
        return self._collect(size, False)

    def readline(self, size: int = -1) -> bytes:
        return self._collect(size, True)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    # ---- reader side: the loop -------------------------------------------------------------------
    async def aread(self, size: int = -1) -> bytes:
        """Like ``read`` but waits on the loop."""
        if not self.consumed:
            self._first(False)
        if size == 0:
            return b""
        parts = []
        while True:
            while not self._buf and not self._eof and self._error is None:
                self._waiter = self.loop.create_future()
                await self._waiter
            if self._error is not None:
                self._raise()
            with self._cond:
                data, hit = self._cut(size, False)
                finished = hit or (self._eof and not self._buf)
            self._taken(False)
            parts.append(data)
            if size > 0:
                size -= len(data)
            if finished:
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Request:
    """One parsed request (see ``skitai.http.contract.Request``). ``gtxnid``/``ltxnid`` are computed on
    first use from the ``X-Gtxn-Id``/``X-Ltxn-Id`` headers and the connection and request numbers."""

    __slots__ = ("method", "target", "path", "query", "version", "headers", "scheme", "_host", "client",
                 "server", "body", "started", "conn_no", "req_no", "keep_alive", "upgrade", "expect_continue",
                 "_txn", "authority")

    def __init__(self, method: str, target: str, version: str, headers: Headers, scheme: str = "http",
                 host: str = "", client: tuple[str, int] = ("", 0), server: tuple[str, int] = ("", 0),
                 body=EMPTY_BODY, started: float = 0.0, conn_no: int = 0, req_no: int = 0,
                 keep_alive: bool = True, upgrade: str = "", path: str | None = None,
                 query: str | None = None) -> None:
        self.method = method
        self.target = target
        if path is None:
            path, url_host, query = split_target(target)
            host = url_host or host
        self.path = path
        self.query = query or ""
        self.version = version
        self.headers = headers
        self.scheme = scheme
        self.authority = host             # Host (or :authority) as sent, port included; see ``host``
        self._host: str | None = None
        self.client = client
        self.server = server
        self.body = body
        self.started = started
        self.conn_no = conn_no
        self.req_no = req_no
        self.keep_alive = keep_alive
        self.upgrade = upgrade            # lower-case Upgrade token ("h2c", "websocket") or ""
        self.expect_continue = False
        self._txn: tuple[str, int] | None = None

    @property
    def host(self) -> str:
        """Host (or :authority) without the port, lower-case; "" if absent."""
        h = self._host
        if h is None:
            h = self._host = host_without_port(self.authority) if self.authority else ""
        return h

    @host.setter
    def host(self, value: str) -> None:
        self.authority = value
        self._host = None

    def _ids(self) -> tuple[str, int]:
        txn = self._txn
        if txn is None:
            h = self.headers
            txn = self._txn = txn_ids(h.get("x-gtxn-id"), h.get("x-ltxn-id"), self.conn_no, self.req_no)
        return txn

    @property
    def gtxnid(self) -> str:
        return self._ids()[0]

    @property
    def ltxnid(self) -> int:
        return self._ids()[1]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} HTTP/{self.version}>"


# uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): an IP literal in brackets, or a reg-name/IPv4 made of
# non-empty labels; one trailing dot is the absolute form of the same name ("a.com."), an empty label
# ("a..com", ".a.com", "a.com..") names no host. An empty Host is allowed (RFC 9112 3.2).
_LABEL = r"[A-Za-z0-9\-_~!$&'()*+,;=%]+"
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|(?:%s(?:\.%s)*\.?)?)(?::[0-9]{0,5})?" % (_LABEL, _LABEL))
HOSTS_SEEN: dict[str, bool] = {}     # Host values already checked (shared, bounded)


def valid_host(value: str) -> bool:
    """Whether a Host header (or ``:authority``) is a host and optional port: RFC 9112 3.2 wants a 400
    for anything else (``a b``, ``user@host``, ``host/path``, ``h:1:2``, an empty label as in ``a.com..``).
    The usual values are answered from ``HOSTS_SEEN``."""
    ok = HOSTS_SEEN.get(value)
    if ok is None:
        ok = _HOST.fullmatch(value) is not None
        if len(HOSTS_SEEN) < 4096:
            HOSTS_SEEN[value] = ok
    return ok


def split_target(target: str) -> tuple[str, str, str]:
    """``(path, host, query)`` of an origin-form or absolute-form request-target; the fragment is dropped."""
    host = ""
    if not target.startswith("/"):
        lower = target[:8].lower()
        if lower.startswith("http://") or lower.startswith("https://"):
            rest = target.split("://", 1)[1]
            slash = rest.find("/")
            q = rest.find("?")
            cut = min(i for i in (slash, q, len(rest)) if i >= 0)
            host, rest = rest[:cut], rest[cut:]
            target = rest if rest.startswith("/") else "/" + rest
    if "#" in target:
        target = target.split("#", 1)[0]
    path, _, query = target.partition("?")
    return path, host, query


def host_without_port(value: str) -> str:
    """``Host`` header value → lower-case host name without the port (IPv6 literals keep brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[:end + 1] if end > 0 else value
    return value.split(":", 1)[0]
