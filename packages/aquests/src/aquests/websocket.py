"""A one-shot WebSocket client (inventory AQ-05): connect, send one message, return the first reply.

The protocol is wsproto's (RFC 6455 handshake, masking, fragments, ping/pong, close handshake);
this module only moves bytes between it and an asyncio connection. The reply comes back as a
:class:`WSResponse` whose ``content`` is ``(opcode, payload)`` (1 text, 2 binary) and whose
``data`` is the payload. Every failure (refused, TLS, rejected handshake, peer closing early,
oversized reply, timeout) comes back as a 7xx response, never as an exception.
"""
from __future__ import annotations

import asyncio
import json as _json
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, RejectConnection,
                            Request, TextMessage)
from wsproto.utilities import ProtocolError as WSProtocolError

from . import codes
from .http import errors, tls
from .http import url as urlmod
from .response import Response

OPCODE_TEXT = 1
OPCODE_BINARY = 2
MAX_MESSAGE_SIZE = 16 * 1024 * 1024   # bytes (or characters) in the reply
CLOSE_TIMEOUT = 2.0                   # seconds to wait for the server's close frame
_BURST = 0.02                         # seconds of frames handled before the loop gets a turn
_SCHEMES = {"ws": False, "wss": True, "http": False, "https": True}
_READ_SIZE = 65536


class WSResponse(Response):
    """The reply of a :func:`request`: ``content`` is ``(opcode, payload)``, ``data`` the payload."""

    def __init__(self, opcode: int, payload: str | bytes, **kw: Any) -> None:
        super().__init__(200, "OK", **kw)
        self.opcode = opcode
        self.content = (opcode, payload)  # type: ignore[assignment]
        self.data = payload

    @property
    def text(self) -> str:
        payload = self.content[1]
        return payload if isinstance(payload, str) else payload.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.content[1])


def _fail(code: int, reason: str) -> errors.ClientError:
    """The exception for a failure with a known code (turned into a 7xx response by _send)."""
    return errors.ClientError(reason, code)


def _target(url: str, force_tls: bool) -> tuple[bool, str, int, str, str]:
    """(secure, host, port, Host header, request target) of a ws://, wss:// (or http[s]://) URL."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    scheme, sep, rest = url.strip().partition("://")
    secure = _SCHEMES.get(scheme.lower())
    if not sep or secure is None:
        raise ValueError(f"unsupported WebSocket URL {url!r} (use ws:// or wss://)")
    u = urlmod.parse(f"{'https' if secure or force_tls else 'http'}://{rest}")
    return u.scheme == "https", u.host, u.port, u.authority, u.target


def _check_message(message: Any) -> str | bytes:
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, str):
        return message
    raise TypeError(f"message must be str or bytes, not {type(message).__name__}")


@dataclass(frozen=True)
class _Plan:
    """A checked request: everything :func:`_send` needs."""

    secure: bool
    host: str
    port: int
    handshake: Request
    payload: str | bytes
    url: str
    timeout: float
    verify: Any
    max_size: int
    meta: dict


def _plan(url: str, message: Any, *, timeout: float = 10.0,
          headers: dict[str, str] | list[tuple[str, str]] | None = None, subprotocols: list[str] | None = None,
          verify: Any = True, max_size: int = MAX_MESSAGE_SIZE, meta: dict | None = None,
          force_tls: bool = False) -> _Plan:
    payload = _check_message(message)
    secure, host, port, authority, path = _target(url, force_tls)
    if isinstance(timeout, bool) or not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")
    if isinstance(max_size, bool) or not (isinstance(max_size, int) and max_size > 0):
        raise ValueError(f"max_size must be a positive int, not {max_size!r}")
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    handshake = Request(host=authority, target=path, extra_headers=hdrs, subprotocols=list(subprotocols or []))
    return _Plan(secure, host, port, handshake, payload, f"{'wss' if secure else 'ws'}://{authority}{path}",
                 float(timeout), verify, max_size, dict(meta or {}))


async def request(url: str, message: str | bytes, *, timeout: float = 10.0,
                  headers: dict[str, str] | list[tuple[str, str]] | None = None,
                  subprotocols: list[str] | None = None, verify: Any = True,
                  max_size: int = MAX_MESSAGE_SIZE, meta: dict | None = None,
                  force_tls: bool = False) -> Response:
    """Open ``url``, send ``message`` (str → text, bytes → binary), return the first reply.

    ``timeout`` covers connecting, the handshake and the reply; ``verify`` is as for HTTPS
    (False, a CA bundle path, or an SSLContext); ``max_size`` bounds the reply; ``force_tls``
    turns a ``ws://`` URL into ``wss://``.
    """
    return await _send(_plan(url, message, timeout=timeout, headers=headers, subprotocols=subprotocols,
                             verify=verify, max_size=max_size, meta=meta, force_tls=force_tls))


async def _send(plan: _Plan) -> Response:
    started = time.monotonic()
    meta = plan.meta
    writer: asyncio.StreamWriter | None = None
    replied = False
    try:
        async with asyncio.timeout(plan.timeout):
            ctx = tls.context(plan.verify, ("http/1.1",)) if plan.secure else None
            reader, writer = await asyncio.open_connection(plan.host, plan.port, ssl=ctx,
                                                           server_hostname=plan.host if ctx else None)
            resp = await _exchange(_Stream(reader, writer, started + plan.timeout), plan, started)
            replied = True
            return resp
    except WSProtocolError as e:
        return Response.failed(codes.PROTOCOL_ERROR, f"bad WebSocket handshake: {e}", url=plan.url, meta=meta,
                               method="WS")
    except (OSError, TimeoutError, asyncio.TimeoutError, errors.ClientError) as e:
        code, reason = errors.classify(e)
        return Response.failed(code, reason, url=plan.url, meta=meta, method="WS", error=e)
    finally:
        # outside the timeout block: closing never turns a reply into a timeout, and never adds
        # more than what is left of the call's time
        if writer is not None:
            await _shut(writer, replied, started + plan.timeout)


class _Stream:
    """wsproto fed from one asyncio connection, with the call's deadline checked per event.

    ``StreamReader.read`` returns buffered bytes without giving the loop a turn, and a few
    hundred KiB of 2-byte PING frames keep wsproto busy for over a second: ``asyncio.timeout``
    alone fired seconds late under a ping flood and every other task of the loop stalled. So
    each event checks the deadline, and a long run of events lets the loop run every
    ``_BURST`` seconds. Pings are answered once per read, for the last one (RFC 6455 5.5.3
    allows it), so a flood costs one pong per read instead of one per ping.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float) -> None:
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.reader = reader
        self.writer = writer
        self.ping: Ping | None = None  # the last ping not answered yet
        self.set_deadline(deadline)

    def set_deadline(self, deadline: float) -> None:
        """``deadline`` is a ``time.monotonic()`` value."""
        self.deadline = deadline
        self.pause_at = min(time.monotonic() + _BURST, deadline)

    def send(self, event: Any) -> None:
        self.writer.write(self.conn.send(event))

    async def events(self) -> AsyncIterator[Any]:
        conn, reader = self.conn, self.reader
        while True:
            for event in conn.events():
                now = time.monotonic()
                if now >= self.pause_at:
                    if now >= self.deadline:
                        raise TimeoutError("no answer within the timeout")
                    await asyncio.sleep(0)
                    self.pause_at = min(time.monotonic() + _BURST, self.deadline)
                yield event
            if self.ping is not None:
                self._pong()
            data = await reader.read(_READ_SIZE)
            if data:
                conn.receive_data(data)
                continue
            try:
                conn.receive_data(None)
                eof_events = list(conn.events())
            except WSProtocolError:
                raise _fail(codes.CONNECTION_CLOSED,
                            "the server closed the connection during the WebSocket handshake") from None
            for event in eof_events:
                yield event
            return

    def _pong(self) -> None:
        ping, self.ping = self.ping, None
        if self.conn.state is not ConnectionState.OPEN:
            return
        self.send(ping.response())


async def _exchange(stream: _Stream, plan: _Plan, started: float) -> Response:
    conn = stream.conn
    stream.send(plan.handshake)
    events = stream.events()
    accepted: AcceptConnection | None = None
    async for event in events:
        if isinstance(event, AcceptConnection):
            accepted = event
            break
        if isinstance(event, RejectConnection):
            raise _fail(codes.PROTOCOL_ERROR,
                           f"WebSocket handshake rejected: the server answered HTTP {event.status_code}")
    if accepted is None:
        raise _fail(codes.CONNECTION_CLOSED, "the server closed the connection during the WebSocket handshake")
    payload = plan.payload
    stream.send(TextMessage(data=payload) if isinstance(payload, str) else BytesMessage(data=payload))
    parts: list[Any] = []
    size = 0
    async for event in events:
        if isinstance(event, Ping):
            stream.ping = event  # answered before the next read
        elif isinstance(event, CloseConnection):
            if conn.state is ConnectionState.REMOTE_CLOSING:
                stream.send(event.response())
            code = codes.PROTOCOL_ERROR if event.code in (1002, 1007) else codes.CONNECTION_CLOSED
            why = f" ({event.reason})" if event.reason else ""
            raise _fail(code, f"the WebSocket closed before a reply: code {event.code}{why}")
        elif isinstance(event, (TextMessage, BytesMessage)):
            size += len(event.data)
            if size > plan.max_size:
                stream.send(CloseConnection(code=1009, reason="message too big"))
                raise _fail(codes.PROTOCOL_ERROR, f"the reply is larger than max_size={plan.max_size}")
            parts.append(event.data)
            if event.message_finished:
                break
    else:
        raise _fail(codes.CONNECTION_CLOSED, "the server closed the connection before replying")
    text = isinstance(parts[0], str)
    reply = "".join(parts) if text else b"".join(parts)
    await _close(stream, events, min(CLOSE_TIMEOUT, plan.timeout - (time.monotonic() - started) - 0.1))
    return WSResponse(OPCODE_TEXT if text else OPCODE_BINARY, reply, url=plan.url, method="WS", meta=plan.meta,
                      headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in accepted.extra_headers],
                      elapsed=time.monotonic() - started)


async def _shut(writer: asyncio.StreamWriter, clean: bool, deadline: float) -> None:
    """Close the socket before returning (not on some later turn of the loop).

    After a failure the connection is aborted: unsent bytes are dropped, since a peer that does
    not read would otherwise hold ``close()`` until they are flushed. After a reply it is closed
    normally, waiting at most until ``deadline`` (and ``CLOSE_TIMEOUT``) for TLS to finish.
    """
    if clean:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), max(0.0, min(CLOSE_TIMEOUT, deadline - time.monotonic())))
            return
        except (OSError, TimeoutError, asyncio.TimeoutError):
            pass
    writer.transport.abort()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)  # done on the loop's next turn
    except (OSError, TimeoutError, asyncio.TimeoutError):
        pass


async def _close(stream: _Stream, events: AsyncIterator[Any], wait: float) -> None:
    """Send our close frame and give the server a moment to answer with its own."""
    try:
        stream.send(CloseConnection(code=1000))
        if wait <= 0:
            return
        stream.set_deadline(min(stream.deadline, time.monotonic() + wait))
        async with asyncio.timeout(wait):
            async for event in events:
                if isinstance(event, CloseConnection):
                    break
    except (OSError, TimeoutError, WSProtocolError, errors.ClientError):
        pass


async def _cluster_send(cluster: Any, path: str, message: str | bytes, options: dict[str, Any]) -> Response:
    return await cluster.call(lambda m: _send(_plan(m.url(path), message, **options)))


def connect(url: str, message: str | bytes, **options: Any) -> Awaitable[Response]:
    """The awaitable for ``url``: a ``ws(s)://`` URL, or a cluster address ``"@name/path"``
    (one member answers, with fail-over). Bad arguments raise here, before anything is sent.
    """
    if isinstance(url, str) and url.startswith("@"):
        from .aliases import split_cluster_url

        cluster, path = split_cluster_url(url)
        if cluster.ctype not in ("ws", "wss", "http", "https"):
            raise ValueError(f"cluster @{cluster.name} is of type {cluster.ctype!r}, not a WebSocket cluster")
        options = dict(options, force_tls=cluster.ssl or options.get("force_tls", False))
        _plan("ws://localhost" + path, message, **options)  # checks everything but the member
        return _cluster_send(cluster, path, message, options)
    return _send(_plan(url, message, **options))


def ws(url: str, message: str | bytes, callback: Any = None, meta: dict | None = None,
       **options: Any) -> dict:
    """Queue a one-shot WebSocket request for ``aquests.fetchall()`` and return its meta dict.

    Like the HTTP verbs, inside a running event loop (and outside fetchall) it returns a
    coroutine instead: ``resp = await aquests.ws(url, "hello")``. ``options`` are those of
    :func:`request`; ``timeout`` defaults to ``configure(timeout=)``.
    """
    from . import api, queue

    options.setdefault("timeout", queue.config().timeout)
    connect(url, message, **options).close()  # raises now on bad arguments
    return api._dispatch(lambda: connect(url, message, **options), callback, meta, "WS")


def wss(url: str, message: str | bytes, callback: Any = None, meta: dict | None = None,
        **options: Any) -> dict:
    """:func:`ws` over TLS (a ``ws://`` URL is upgraded to ``wss://``)."""
    return ws(url, message, callback, meta, force_tls=True, **options)
