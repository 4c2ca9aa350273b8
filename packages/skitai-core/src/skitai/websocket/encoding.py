"""Message encodings: ``WS_MSG_JSON`` and ``WS_MSG_XMLRPC`` turn text messages into objects and back."""
from __future__ import annotations

import json
import xmlrpc.client
from typing import Any

from aquests.rpc.xmlrpc import loads_call

WS_MSG_DEFAULT = None
WS_MSG_JSON = "json"
WS_MSG_XMLRPC = "xmlrpc"
WS_MSG_GRPC = "grpc"          # named by the spec; not supported (a clear error at config time)
ENCODINGS = (WS_MSG_DEFAULT, WS_MSG_JSON, WS_MSG_XMLRPC)


class DecodeError(ValueError):
    """An incoming message is not valid for the connection's encoding (the close code is 1007)."""


def check(encoding: Any) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown websocket message encoding {encoding!r}; use WS_MSG_JSON or WS_MSG_XMLRPC")


def decode(encoding: str | None, message: str | bytes) -> Any:
    """The object an encoded message carries; XML-RPC gives its single parameter (or the tuple of them)."""
    if encoding is None:
        return message
    try:
        if encoding == WS_MSG_JSON:
            return json.loads(message)
        # no DTD (a few hundred bytes of entities expand to gigabytes) and bounded nesting: any client sends
        params, _ = loads_call(message, use_builtin_types=False)
    except Exception as e:            # json, expat and xmlrpc errors alike
        raise DecodeError(f"not a {encoding} message: {e}") from None
    return params[0] if len(params) == 1 else params


def encode(encoding: str | None, obj: Any) -> str | bytes:
    """str stays text and bytes binary without an encoding; with one, every object is dumped to text."""
    if encoding is None:
        return obj if isinstance(obj, (str, bytes)) else str(obj)
    if isinstance(obj, bytes):
        return obj
    if encoding == WS_MSG_JSON:
        return json.dumps(obj, ensure_ascii=False)
    return xmlrpc.client.dumps((obj,), methodresponse=True, allow_none=True)
