"""WebSocket for WSGI apps through the environ, as the spec's "For Flask Users" section shows.

The app is first called with ``env['websocket.event'] = WS_EVT_INIT`` and answers the handshake by setting
``env['websocket.config'] = (spec, keep_alive_timeout, varnames)`` (optionally a 4th item, the message
encoding ``WS_MSG_JSON``/``WS_MSG_XMLRPC``). An app that sets nothing gets its answer sent as plain HTTP
(a 404 of Flask, say). After the upgrade the app is called again for ``WS_EVT_OPEN``, every message and
``WS_EVT_CLOSE``; a message arrives in the query argument named by ``varnames[0]`` (and, not percent-encoded
and already decoded by the encoding, in ``env['websocket.message']``). A non-empty answer is sent back:
text when the app returned str or a text/JSON/XML content type, binary otherwise.
``env['websocket']`` sends from any thread; ``env['websocket.client']`` is the numeric client id.
During INIT, ``env['websocket.subprotocols']`` lists what the client offers; setting
``env['websocket.subprotocol']`` to one of them answers it (browsers fail a handshake that offered some and
got none back).

Frameworks (Saddle's ``was.wsconfig``/``was.wsinit``...) build on exactly these keys.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode

from skitai.http.errors import error_page
from skitai.http.request import EMPTY_BODY
from skitai.wsgi.threadpool import refuse

from . import encoding as enc
from .designs import DEDICATED, DESIGNS, WS_DEDICATE, WS_EVT_INIT, WS_GROUPCHAT, make_session, next_client_id
from .handshake import HandshakeError, accept, offered_subprotocols
from .protocol import WebSocketProtocol

log = logging.getLogger("skitai.websocket")
DEFAULT_TIMEOUT = 60.0
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


class WSConfig:
    """``env['websocket.config']`` checked: a bad value is a clear ``ValueError`` (the handshake gets 500)."""

    def __init__(self, value: Any) -> None:
        if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 4:
            raise ValueError(f"websocket.config must be (spec, timeout, varnames[, encoding]), got {value!r}")
        value = tuple(value) + (None,) * (4 - len(value))
        spec, timeout, varnames, encoding = value
        if spec not in DESIGNS:
            raise ValueError(f"unknown websocket design {spec!r}")
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"websocket keep-alive timeout must be seconds >= 0, got {timeout!r}")
        if isinstance(varnames, str):
            varnames = (varnames,)
        elif varnames is None:
            varnames = ()
        elif not all(isinstance(v, str) for v in varnames):
            raise ValueError(f"websocket varnames must be a str or a list of str, got {varnames!r}")
        enc.check(encoding)
        self.spec, self.timeout, self.varnames, self.encoding = spec, float(timeout), tuple(varnames), encoding


def call_app(app: Callable, env: dict) -> tuple[str, list[tuple[str, str]], list]:
    """Run a WSGI app to the end: ``(status line, headers, body items)``. It runs once per message, so
    the usual answer, a list, is taken as it is (a list has no ``close`` to call)."""
    items: list = []
    answer = ["200 OK", []]

    def start_response(status, headers, exc_info=None):
        answer[0] = status
        answer[1] = headers
        return items.append

    result = app(env, start_response)
    if result.__class__ is list:
        if items:                                 # write() was used too: its pieces come first
            items.extend(filter(None, result))
        elif len(result) == 1 and result[0]:      # the usual answer: taken as it is
            items = result
        else:
            items = [item for item in result if item]
    else:
        try:
            for item in result:
                if item:
                    items.append(item)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    return answer[0], answer[1], items


def reply_of(headers: list[tuple[str, str]], items: list) -> str | bytes | None:
    """The message an app's answer stands for: None when empty. Bytes become text (a text frame) under a
    text/JSON/XML content type, or none (text/plain is the default), when they are valid UTF-8."""
    if not items:
        return None
    if len(items) == 1 and items[0].__class__ is bytes:    # the usual answer: no join
        body = items[0]
    elif all(isinstance(i, str) for i in items):
        return "".join(items)
    else:
        body = b"".join(i.encode("utf-8") if isinstance(i, str) else i for i in items)
    for name, value in headers:
        if len(name) == 12 and name.lower() == "content-type":
            if not value.lower().startswith(_TEXT_TYPES):
                return body
            break
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"     # RFC 3986 unreserved
_PLUS_TABLE = [chr(b) if b in _SAFE else "+" if b == 32 else f"%{b:02X}" for b in range(256)]


def form_quote(message: str | bytes) -> str:
    """``quote_plus(message)``, the same text, at a fraction of the cost: it runs once per message.
    Safe bytes pass as they are; the others map through a 256-entry table (``str.translate`` in C)."""
    raw = message.encode("utf-8") if message.__class__ is str else bytes(message)
    if not raw.rstrip(_SAFE):
        return raw.decode("ascii")
    return raw.decode("latin-1").translate(_PLUS_TABLE)


def _query_prefix(query: str, name: str) -> str:
    """The connection's query string without ``name``, ready for ``name=<message>`` to be appended."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != name]
    return (urlencode(pairs) + "&" if pairs else "") + quote_plus(name) + "="


class WSGIWebSocket:
    """Calls one app for the events and messages of one connection (on a worker thread, or on the loop).

    Per message: a copy of the connection's environ (every per-connection key is in it already, with an
    empty ``wsgi.input``), the event and message keys, and the query string with the message appended."""

    def __init__(self, app: Callable, base_env: dict, cfg: WSConfig) -> None:
        self.app, self.base, self.cfg = app, base_env, cfg
        self.prefix = _query_prefix(base_env.get("QUERY_STRING", ""), cfg.varnames[0]) if cfg.varnames else ""
        base_env["CONTENT_LENGTH"] = "0"
        base_env["wsgi.input"] = EMPTY_BODY     # stateless: one serves every call

    def __call__(self, event: Any, message: Any, sender: Any) -> Any:
        env = self.base.copy()
        env["websocket.event"] = event
        env["websocket"] = sender
        env["websocket.message"] = message
        if self.prefix:
            raw = message if message.__class__ is str or message.__class__ is bytes else \
                enc.encode(self.cfg.encoding, message)
            env["QUERY_STRING"] = self.prefix + form_quote(raw)
        _, headers, items = call_app(self.app, env)
        return reply_of(headers, items)


def in_pool(loop: asyncio.AbstractEventLoop, pool: Any, fn: Callable, *args: Any) -> asyncio.Future:
    """Run ``fn`` on a pool with ``submit(fn, *args)`` (ours or an Executor); the result as a loop future."""
    future = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def job() -> None:
        try:
            value, ok = fn(*args), True
        except BaseException as e:
            value, ok = e, False
        loop.call_soon_threadsafe(settle, ok, value)

    pool.submit(job)
    return future


def room_key(env: dict, request: Any, cfg: WSConfig) -> str:
    """Group-chat rooms: the route path + "/" + the value of the second argument (the room id)."""
    value = ""
    if len(cfg.varnames) > 1:
        value = dict(parse_qsl(env.get("QUERY_STRING", ""), keep_blank_values=True)).get(cfg.varnames[1], "")
    return f"{request.path}/{value}"


async def serve_websocket(exchange: Any, app: Callable, env: dict, executor: Any = None) -> None:
    """Answer an ``Upgrade: websocket`` request for a WSGI ``app`` whose ``env`` is built: handshake,
    the INIT call, then ``exchange.upgrade()`` to a ``WebSocketProtocol`` running the chosen design."""
    limits = exchange.config.limits
    try:
        accepted = accept(exchange.request.headers, limits, over_h2=exchange.request.version == "2")
    except HandshakeError as e:
        exchange.respond(e.status, e.headers + [("Content-Type", "text/html; charset=utf-8")],
                         error_page(e.status, e.detail))
        return
    client_id = next_client_id()
    # the server does the upgrade: frameworks that route "ws://" rules apart (Werkzeug answers a plain
    # route 400 "WebsocketMismatch") see an ordinary GET carrying the websocket.* keys
    env.pop("HTTP_UPGRADE", None)
    env["websocket.event"] = WS_EVT_INIT
    env["websocket.client"] = client_id
    env["websocket.subprotocols"] = offered = offered_subprotocols(exchange.request.headers)
    env.pop("websocket.config", None)
    env.pop("websocket.subprotocol", None)
    loop = asyncio.get_running_loop()
    if executor is None:
        status, headers, items = call_app(app, env)
    else:
        full = getattr(executor, "full", None)          # the worker pool's bound (max_queued_requests)
        if full is not None and full():
            refuse(exchange, "the server is busy: try again shortly")
            return
        status, headers, items = await in_pool(loop, executor, call_app, app, env)
    value = env.pop("websocket.config", None)
    chosen = env.pop("websocket.subprotocol", None)
    env.pop("websocket.event", None)
    if value is None:                      # not a websocket route: its plain HTTP answer
        body = b"".join(i.encode("utf-8") if isinstance(i, str) else i for i in items)
        exchange.respond(int(status.split(" ", 1)[0]), [h for h in headers if h[0].lower() != "content-length"],
                         body)
        return
    try:
        cfg = WSConfig(value)
        if chosen is not None and chosen not in offered:
            raise ValueError(f"websocket.subprotocol {chosen!r} is not one the client offered ({offered})")
    except ValueError as e:
        log.error("%s %s: %s", exchange.request.method, exchange.request.path, e)
        exchange.error(500, str(e))
        return
    if exchange.closed:
        return
    if cfg.spec == WS_DEDICATE and not DEDICATED.take(limits.ws_max_dedicated):
        # one thread per connection: past the cap a clear refusal, before the upgrade
        exchange.respond(503, [("Content-Type", "text/html; charset=utf-8"), ("Retry-After", "5")],
                         error_page(503, "too many dedicated websocket connections: try again later"))
        return
    handler = WSGIWebSocket(app, env, cfg)
    key = room_key(env, exchange.request, cfg) if cfg.spec == WS_GROUPCHAT else None
    session, sender = make_session(cfg.spec, handler, client_id, cfg.encoding,
                                   None if cfg.spec == WS_DEDICATE else executor, limits, key)
    env["websocket"] = sender
    env["websocket.subprotocol"] = chosen
    answer = accepted.headers + ([("Sec-WebSocket-Protocol", chosen)] if chosen else [])
    threaded = executor is not None or cfg.spec == WS_DEDICATE      # replies come from worker threads
    try:
        exchange.upgrade(lambda: WebSocketProtocol(session, limits, accepted.extensions, cfg.timeout, loop,
                                                   direct_writes=threaded and limits.ws_direct_writes),
                         headers=answer)
    except BaseException:
        if cfg.spec == WS_DEDICATE and not session.started:
            session.release()
        raise
