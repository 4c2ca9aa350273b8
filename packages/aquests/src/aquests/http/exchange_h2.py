"""One HTTP/2 request/response as a stream of a shared connection."""
from __future__ import annotations

import http
from collections.abc import Mapping

from ..response import Headers, Response
from .body import Body, BodyStream
from .decoding import ACCEPT
from .errors import ConnectionClosed, ProtocolError
from .exchange_h1 import USER_AGENT, set_trailers
from .h2 import H2Connection
from .pool import OriginPool
from .url import URL

# connection-specific headers HTTP/2 forbids, plus the ones we set ourselves
_SKIP = frozenset((b"connection", b"host", b"keep-alive", b"transfer-encoding", b"upgrade",
                   b"proxy-connection", b"content-length"))


def request_headers(method: str, u: URL, hdrs: Mapping[str, str], length: int | None,
                    decode: bool = False) -> list[tuple[bytes, bytes]]:
    authority = hdrs.get("host") or u.authority
    out = [(b":method", method.encode()), (b":scheme", u.scheme.encode()),
           (b":authority", authority.encode()), (b":path", u.target.encode())]
    if "user-agent" not in hdrs:
        out.append((b"user-agent", USER_AGENT.encode()))
    if decode and "accept-encoding" not in hdrs:
        out.append((b"accept-encoding", ACCEPT.encode()))
    for k, v in hdrs.items():
        kb = k.encode("latin-1")
        if kb not in _SKIP:
            out.append((kb, v.encode("latin-1")))
    if length:
        out.append((b"content-length", str(length).encode()))
    return out


def response_from(raw: list[tuple[bytes, bytes]], u: URL, method: str) -> Response:
    """A Response (without body) from the response header block."""
    status = 0
    items = []
    for k, v in raw:
        if k == b":status":
            status = int(v) if len(v) == 3 and v.isdigit() else -1
            if not 100 <= status <= 599:
                raise ProtocolError(f"HTTP/2 response with a bad :status {bytes(v[:20])!r}")
        elif not k.startswith(b":"):
            items.append((k.decode("latin-1"), v.decode("latin-1")))
    if not status:
        raise ProtocolError("HTTP/2 response without :status")
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return Response(status, phrase, headers=Headers(items), url=u.full, method=method, version="2")


async def read_limited(stream: BodyStream, limit: int) -> bytes:
    """The whole body, or ProtocolError past ``limit`` bytes."""
    parts = []
    size = 0
    while chunk := await stream.read_chunk():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"response body exceeds the {limit}-byte limit (use stream=True)")
        parts.append(chunk)
    return b"".join(parts)


async def exchange(conn: H2Connection, pool: OriginPool, method: str, u: URL, hdrs: dict[str, str],
                   body: Body, stream: bool, tmo: float, max_body_size: int, decode: bool = False) -> Response:
    """Open a stream, send the body with flow control, read the response and its trailers."""
    has_body = body.data is None or bool(body.data)
    try:
        st = conn.open_stream(request_headers(method, u, hdrs, body.length, decode), not has_body)
    except BaseException:
        pool.release(conn)
        raise
    st.on_done = lambda: pool.release(conn)
    try:
        if has_body:
            try:
                if body.data is not None:
                    await st.send(body.data, True)
                else:
                    async for chunk in body.chunks():
                        await st.send(chunk)
                    st.end()
            except ConnectionClosed:
                fut = st.headers_fut
                if not fut.done() or fut.cancelled() or fut.exception() is not None:
                    raise  # no answer came: a real failure, not an early response
        resp = response_from(await st.response(), u, method)
        if stream:
            resp.stream = st.body
            resp.stream.timeout = tmo
            resp.stream.on_close = st.reset if not st.ended else None
            st.body.on_eof = lambda: set_trailers(resp, st.trailers)
            if st.ended:
                set_trailers(resp, st.trailers)
            return resp
        resp.content = await read_limited(st.body, max_body_size)
    except BaseException:
        if not st.ended:
            st.reset()
        raise
    set_trailers(resp, st.trailers)
    return resp

