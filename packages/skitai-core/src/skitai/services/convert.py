"""``was.tojson/fromjson/toxml/fromxml/togrpc/fromgrpc`` (SK-71)."""
from __future__ import annotations

import json
import xmlrpc.client
from typing import Any

from aquests.rpc.xmlrpc import loads_call


def tojson(obj: Any) -> str:
    return json.dumps(obj)


def fromjson(data: str | bytes) -> Any:
    return json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)


def toxml(obj: Any, use_datetime: int = 0) -> str:
    """An XML-RPC params document of ``obj`` (a tuple is the params list)."""
    params = obj if isinstance(obj, tuple) else (obj,)
    return xmlrpc.client.dumps(params, methodresponse=False, allow_none=True)


def fromxml(data: str | bytes, use_datetime: int = 0) -> tuple[tuple, str | None]:
    """``(params, methodname)`` of an XML-RPC document, as ``xmlrpc.client.loads``, except that a DTD is
    refused (its entities let a few hundred bytes of a request expand to gigabytes) and nesting is bounded:
    a ``ValueError`` then."""
    return loads_call(data, use_builtin_types=False, use_datetime=bool(use_datetime))


def togrpc(message: Any) -> bytes:
    return message.SerializeToString()


def fromgrpc(message: Any, data: bytes) -> Any:
    """Parse ``data`` into ``message`` (a class or an instance) and return the message."""
    if isinstance(message, type):
        message = message()
    message.ParseFromString(data)
    return message
