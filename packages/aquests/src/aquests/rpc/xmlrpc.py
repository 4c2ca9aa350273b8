"""XML-RPC over the HTTP client: encode a call, decode the result or Fault (AQ-06)."""
from __future__ import annotations

import xmlrpc.client
from typing import Any
from xml.parsers import expat

from .. import codes
from ..http.body import Body
from ..http.client import Client
from ..http.url import URL
from ..response import Response


def encode_call(method: str, args: tuple) -> Body:
    try:
        return Body(xmlrpc.client.dumps(tuple(args), method, allow_none=True).encode("utf-8"))
    except TypeError as exc:
        raise TypeError(f"cannot marshal XML-RPC arguments for {method}: {exc}") from exc


MAX_DEPTH = 64  # arrays/structs nested in one response


def _no_dtd(*_args: Any) -> None:
    # XML-RPC has no use for a DTD; its entities are how a small body expands to gigabytes
    # (expat stops "billion laughs" only after ~70 MB and seconds of the loop's time)
    raise ValueError("a DOCTYPE is not allowed in an XML-RPC response")


def loads(data: bytes, use_builtin_types: bool = True, use_datetime: bool = False) -> tuple:
    """The params of an XML-RPC document, as ``xmlrpc.client.loads(...)[0]``, without DTDs (so without
    entity expansion) and with nesting bound by MAX_DEPTH (``loads_call`` gives the method name too)."""
    return loads_call(data, use_builtin_types, use_datetime)[0]


def loads_call(data: bytes | str, use_builtin_types: bool = True,
               use_datetime: bool = False) -> tuple[tuple, str | None]:
    """``(params, methodname)``, as ``xmlrpc.client.loads``, with the guards of ``loads``: for documents
    from anyone (a server reading requests uses it too)."""
    target = xmlrpc.client.Unmarshaller(use_datetime=use_datetime, use_builtin_types=use_builtin_types)
    depth = 0

    def start(tag: str, attrs: Any) -> None:
        nonlocal depth
        if tag in ("array", "struct"):
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"arrays/structs nested deeper than {MAX_DEPTH}")
        target.start(tag, attrs)

    def end(tag: str) -> None:
        nonlocal depth
        if tag in ("array", "struct"):
            depth -= 1
        target.end(tag)

    parser = expat.ParserCreate(None, None)
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = target.data
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = _no_dtd
    target.xml(None, None)
    parser.Parse(data, True)
    return target.close(), target.getmethodname()


def decode(resp: Response) -> Response:
    """Set ``data`` to the result; a Fault becomes ``error`` with a readable ``reason``."""
    if resp.status_code != 200:
        resp.data = None
        return resp
    try:
        result = loads(resp.content)
    except xmlrpc.client.Fault as fault:
        resp.data = None
        resp.error = fault
        resp.reason = f"XML-RPC Fault {fault.faultCode}: {fault.faultString}"
        return resp
    except Exception as exc:  # noqa: BLE001 - xmlrpc.client fails in many ways on bad bodies
        # (an unnamed struct member is an IndexError, a non-XML-RPC document a bare ResponseError)
        why = str(exc)
        if isinstance(exc, xmlrpc.client.ResponseError) or not why:
            why = "not an XML-RPC methodResponse"
        elif isinstance(exc, (IndexError, KeyError)):
            why = "incomplete struct member"
        bad = Response.failed(codes.PROTOCOL_ERROR, f"malformed XML-RPC response: {why}",
                              url=resp.url, meta=resp.meta, method="POST", error=exc)
        bad.content, bad.headers = resp.content, resp.headers
        return bad
    resp.data = result[0] if len(result) == 1 else result
    return resp


async def call(client: Client, u: URL, method: str, args: tuple, **kw: Any) -> Response:
    resp = await client.send("POST", u, encode_call(method, args), "text/xml", **kw)
    return decode(resp)
