"""XML-RPC over the HTTP client: encode a call, decode the result or Fault (AQ-06)."""
from __future__ import annotations

import xmlrpc.client
from typing import Any

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


def decode(resp: Response) -> Response:
    """Set ``data`` to the result; a Fault becomes ``error`` with a readable ``reason``."""
    if resp.status_code != 200:
        resp.data = None
        return resp
    try:
        result = xmlrpc.client.loads(resp.content, use_builtin_types=True)[0]
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
