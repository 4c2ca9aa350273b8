"""``was.tojson/fromjson/toxml/fromxml/togrpc/fromgrpc`` (SK-71)."""
from __future__ import annotations

import json
import xmlrpc.client
from typing import Any


def tojson(obj: Any) -> str:
    return json.dumps(obj)


def fromjson(data: str | bytes) -> Any:
    return json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)


def toxml(obj: Any, use_datetime: int = 0) -> str:
    """An XML-RPC params document of ``obj`` (a tuple is the params list)."""
    params = obj if isinstance(obj, tuple) else (obj,)
    return xmlrpc.client.dumps(params, methodresponse=False, allow_none=True)


def fromxml(data: str | bytes, use_datetime: int = 0) -> tuple[tuple, str | None]:
    """``(params, methodname)`` of an XML-RPC document."""
    return xmlrpc.client.loads(data, use_datetime=bool(use_datetime))


def togrpc(message: Any) -> bytes:
    return message.SerializeToString()


def fromgrpc(message: Any, data: bytes) -> Any:
    """Parse ``data`` into ``message`` (a class or an instance) and return the message."""
    if isinstance(message, type):
        message = message()
    message.ParseFromString(data)
    return message
