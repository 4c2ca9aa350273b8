"""One HTTP/1.1 request/response on a pooled connection."""
from __future__ import annotations

from ..response import Headers, Response
from .body import Body
from .decoding import ACCEPT
from .h1 import H1Connection
from .pool import OriginPool
from .proxy import Proxy
from .url import URL

USER_AGENT = "aquests/1.0"
_FRAMING = frozenset(("host", "content-length", "transfer-encoding"))  # written by us, never copied
HEAD_CACHE = 256  # request heads kept per client for repeated plain requests


async def exchange(conn: H1Connection, pool: OriginPool, method: str, u: URL, hdrs: dict[str, str],
                   body: Body, stream: bool, px: Proxy | None, tmo: float, heads: dict,
                   decode: bool = False) -> Response:
    """Send the request, read the response (or its head, when ``stream``), release the connection.

    ``decode``: the caller will undo gzip/deflate, so they are asked for (unless ``hdrs`` says otherwise).
    """
    n = body.length
    plain = not hdrs and px is None
    key = (method, u, n, decode)
    head = heads.get(key) if plain else None
    if head is None:
        head = request_head(method, u, hdrs, n, px, decode)
        if plain:
            if len(heads) >= HEAD_CACHE:
                heads.clear()
            heads[key] = head
    # A streamed body may end in the same read as its head: the connection must not go back to the
    # pool (where another request would reset it) before this response is built from it.
    conn.on_idle = None
    try:
        await conn.request(head, body, head_only=method == "HEAD", stream=stream)
    except BaseException:
        pool.release(conn)
        raise
    resp = Response(conn.status, conn.reason.decode("latin-1"), headers=Headers.from_raw(conn.headers),
                    url=u.full, method=method, version="1.1")
    if conn.stream is not None:
        resp.stream = conn.stream
        resp.stream.timeout = tmo
        resp.stream.on_eof = lambda: set_trailers(resp, conn.trailers)  # they come after the body
        if conn.complete:
            set_trailers(resp, conn.trailers)
        if conn.complete or conn.closed:
            pool.release(conn)          # the whole body came with the head (or the connection is gone)
        else:
            conn.on_idle = pool.release  # released when the body ends or the stream is closed
    else:
        conn.on_idle = None
        resp.content = b"".join(conn.body) if len(conn.body) != 1 else conn.body[0]
        set_trailers(resp, conn.trailers)
        pool.release(conn)
    return resp


def set_trailers(resp: Response, raw: list[tuple[bytes, bytes]] | None) -> None:
    """Fields after the body (HTTP/1.1 chunked, HTTP/2), kept apart from the head's headers."""
    if raw:
        resp.trailers = Headers.from_raw(list(raw))


def request_head(method: str, u: URL, hdrs: dict[str, str], n: int | None, px: Proxy | None,
                 decode: bool = False) -> bytes:
    """The request line and headers; absolute-URI form through an HTTP proxy."""
    target = u.full if (px is not None and u.scheme == "http") else u.target
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {hdrs.get('host') or u.authority}\r\n"]
    if "user-agent" not in hdrs:
        lines.append(f"user-agent: {USER_AGENT}\r\n")
    if decode and "accept-encoding" not in hdrs:
        lines.append(f"accept-encoding: {ACCEPT}\r\n")
    for k, v in hdrs.items():
        if k not in _FRAMING:
            lines.append(f"{k}: {v}\r\n")
    if px is not None and px.auth and u.scheme == "http":
        lines.append(f"proxy-authorization: {px.auth}\r\n")
    if n is None:
        lines.append("transfer-encoding: chunked\r\n")
    elif n or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {n}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")
