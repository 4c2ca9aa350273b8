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
    try:
        async with asyncio.timeout(plan.timeout):
            ctx = tls.context(plan.verify, ("http/1.1",)) if plan.secure else None
            reader, writer = await asyncio.open_connection(plan.host, plan.port, ssl=ctx,
                                                           server_hostname=plan.host if ctx else None)
            try:
                return await _exchange(reader, writer, plan, started)
            finally:
                await _shut(writer)
    except WSProtocolError as e:
        return Response.failed(codes.PROTOCOL_ERROR, f"bad WebSocket handshake: {e}", url=plan.url, meta=meta,
                               method="WS")
    except (OSError, TimeoutError, asyncio.TimeoutError, errors.ClientError) as e:
        code, reason = errors.classify(e)
        return Response.failed(code, reason, url=plan.url, meta=meta, method="WS", error=e)


async def _events(conn: WSConnection, reader: asyncio.StreamReader) -> AsyncIterator[Any]:
    while True:
        for event in conn.events():
            yield event
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


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, plan: _Plan,
                    started: float) -> Response:
    conn = WSConnection(ConnectionType.CLIENT)
    writer.write(conn.send(plan.handshake))
    events = _events(conn, reader)
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
    message = TextMessage(data=payload) if isinstance(payload, str) else BytesMessage(data=payload)
    writer.write(conn.send(message))
    parts: list[Any] = []
    size = 0
    async for event in events:
        if isinstance(event, Ping):
            writer.write(conn.send(event.response()))
        elif isinstance(event, CloseConnection):
            if conn.state is ConnectionState.REMOTE_CLOSING:
                writer.write(conn.send(event.response()))
            code = codes.PROTOCOL_ERROR if event.code in (1002, 1007) else codes.CONNECTION_CLOSED
            why = f" ({event.reason})" if event.reason else ""
            raise _fail(code, f"the WebSocket closed before a reply: code {event.code}{why}")
        elif isinstance(event, (TextMessage, BytesMessage)):
            size += len(event.data)
            if size > plan.max_size:
                writer.write(conn.send(CloseConnection(code=1009, reason="message too big")))
                raise _fail(codes.PROTOCOL_ERROR, f"the reply is larger than max_size={plan.max_size}")
            parts.append(event.data)
            if event.message_finished:
                break
    else:
        raise _fail(codes.CONNECTION_CLOSED, "the server closed the connection before replying")
    text = isinstance(parts[0], str)
    reply = "".join(parts) if text else b"".join(parts)
    await _close(conn, writer, events, min(CLOSE_TIMEOUT, plan.timeout - (time.monotonic() - started) - 0.1))
    return WSResponse(OPCODE_TEXT if text else OPCODE_BINARY, reply, url=plan.url, method="WS", meta=plan.meta,
                      headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in accepted.extra_headers],
                      elapsed=time.monotonic() - started)


async def _shut(writer: asyncio.StreamWriter) -> None:
    """Close the socket now (not on the loop's next turn) without waiting long for TLS."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except (OSError, TimeoutError, asyncio.TimeoutError):
        pass


async def _close(conn: WSConnection, writer: asyncio.StreamWriter, events: AsyncIterator[Any],
                 wait: float) -> None:
    """Send our close frame and give the server a moment to answer with its own."""
    try:
        writer.write(conn.send(CloseConnection(code=1000)))
        if wait <= 0:
            return
        async with asyncio.timeout(wait):
            async for event in events:
                if isinstance(event, CloseConnection):
                    break
    except (OSError, TimeoutError, WSProtocolError):
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
