"""The HTTP request pipeline: pools, HTTP/1.1 or HTTP/2, redirects, auth, cookies, proxies.

Every network failure ends as a failed :class:`~aquests.response.Response` (7xx), never an
exception; bad arguments raise ValueError/TypeError when the request is built.
"""
from __future__ import annotations

import asyncio
import json as _json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from .. import codes
from ..response import Headers, Response
from . import decoding, exchange_h1, exchange_h2, multipart, redirects, tls
from . import url as urlmod
from .auth import Auth, digest_header, parse_challenge
from .body import Body, make_body
from .connect import open_connection
from .cookies import Jar
from .errors import ClientError, ConnectionClosed, ProtocolError, Unprocessed, classify
from .h1 import MAX_BODY_SIZE, MAX_HEADER_SIZE, H1Connection
from .h2 import H2Connection, H2Stream
from .pool import IDLE_TIMEOUT, MAX_PER_ORIGIN, OriginPool, PoolManager, for_loop
from .proxy import Proxy



_EMPTY = Body(b"")
# methods whose request is sent again on a fresh connection when a kept-alive one dies before the
# answer (RFC 9112 9.3.1): a server may have acted on any other request before dropping the connection
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
# a header name is an RFC 9110 token; a value has no CR, LF or NUL (they would end or split the line)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
INLINE_DECODE = 4096  # compressed bodies above this many bytes are decoded in a worker thread


def _check_header(name: str, value: str) -> None:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}: names are tokens (no CR/LF, ':', spaces)")
    if _BAD_VALUE.search(value):
        raise ValueError(f"invalid header {name!r}: values may not contain CR/LF/NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"invalid header {name!r}: the value is not latin-1 (encode it first)") from None


class Client:
    """Options shared by many requests plus the connection pools they use.

    With ``pools=None`` the pools of the running event loop are shared with every other
    client on that loop; a :class:`~aquests.aio.Session` owns its own.
    """

    def __init__(self, *, timeout: float = 10.0, verify: Any = True, cert: Any = None,
                 force_http1: bool = False, http2: bool = False, http2_streams: int = 100,
                 allow_redirects: bool = True, max_redirects: int = redirects.MAX_REDIRECTS,
                 max_header_size: int = MAX_HEADER_SIZE, max_body_size: int = MAX_BODY_SIZE,
                 cookie: bool = False, proxy: str | None = None, headers: Mapping[str, str] | None = None,
                 pools: PoolManager | None = None, max_per_origin: int = MAX_PER_ORIGIN,
                 idle_timeout: float = IDLE_TIMEOUT, decompress: bool = True) -> None:
        if timeout is None or timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if http2_streams < 1:
            raise ValueError("http2_streams must be >= 1")
        if max_header_size < 1024:
            raise ValueError("max_header_size must be at least 1024 bytes")
        if max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        self.timeout = float(timeout)
        self.verify = verify
        self.cert = cert
        self.force_http1 = force_http1
        self.http2 = http2
        self.http2_streams = http2_streams
        self.allow_redirects = allow_redirects
        self.max_redirects = max_redirects
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.decompress = decompress
        self.jar = Jar() if cookie else None
        self.proxy = Proxy(proxy) if proxy else None
        self.headers = self._norm_headers(headers)
        self._pools = pools
        # pools are shared per loop: connections opened with other settings are not ours
        self._conn_opts = (id(verify), repr(cert), force_http1, http2_streams, max_header_size, max_body_size)
        self._heads: dict[tuple, bytes] = {}  # request heads without extra headers, by (method, url, length)
        self._pool_opts = (max_per_origin, idle_timeout)
        if pools is None and (max_per_origin, idle_timeout) != (MAX_PER_ORIGIN, IDLE_TIMEOUT):
            self._pools = PoolManager(max_per_origin, idle_timeout)

    @property
    def pools(self) -> PoolManager:
        return self._pools if self._pools is not None else for_loop()

    async def close(self) -> None:
        if self._pools is not None:
            await self._pools.close()

    # -- building -------------------------------------------------------------------------------
    @staticmethod
    def _norm_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
        if not headers:
            return {}
        if not isinstance(headers, Mapping):
            headers = dict(headers)
        out = {}
        for k, v in headers.items():
            v = str(v)
            _check_header(k, v)
            out[k.lower()] = v
        return out

    def build_body(self, data: Any = None, json: Any = None, files: Mapping | None = None,
                   content_type: str | None = None) -> tuple[Body, str | None]:
        """(body, content-type) from exactly one of ``data``/``json``/``files``."""
        if data is None and json is None and files is None:
            return _EMPTY, content_type
        if sum(x is not None for x in (data, json, files)) > 1:
            raise ValueError("pass only one of data=, json= and files=")
        if files is not None:
            body, ctype = multipart.encode(files)
            return body, ctype
        if json is not None:
            return Body(_json.dumps(json).encode()), content_type or "application/json"
        if isinstance(data, Mapping) or (isinstance(data, list) and data and isinstance(data[0], tuple)):
            return Body(urlencode(data, doseq=True).encode()), content_type or "application/x-www-form-urlencoded"
        return make_body(data), content_type

    # -- the request ----------------------------------------------------------------------------
    async def request(self, method: str, url: str, *, params: Any = None, data: Any = None, json: Any = None,
                      files: Mapping | None = None, headers: Mapping[str, str] | None = None,
                      auth: Any = None, proxy: str | None = None, timeout: float | None = None,
                      stream: bool = False, allow_redirects: bool | None = None,
                      content_type: str | None = None, http2: bool | None = None,
                      meta: dict | None = None) -> Response:
        """Send one request; network failures come back as a 7xx Response."""
        if not isinstance(method, str) or not method.isalpha():
            raise ValueError(f"bad HTTP method {method!r}")
        method = method.upper()
        u = urlmod.parse(url, params)
        body, ctype = self.build_body(data, json, files, content_type)
        return await self.send(method, u, body, ctype, headers=headers, auth=auth, proxy=proxy,
                               timeout=timeout, stream=stream, allow_redirects=allow_redirects,
                               http2=http2, meta=meta)

    async def send(self, method: str, u: urlmod.URL, body: Body, ctype: str | None = None, *,
                   headers: Mapping[str, str] | None = None, auth: Any = None, proxy: str | None = None,
                   timeout: float | None = None, stream: bool = False, allow_redirects: bool | None = None,
                   http2: bool | None = None, meta: dict | None = None) -> Response:
        """Like :meth:`request` with the URL parsed and the body built (the queue's fast path)."""
        t0 = time.perf_counter()
        hdrs = dict(self.headers)
        if headers:
            hdrs.update(self._norm_headers(headers))
        if ctype and "content-type" not in hdrs:
            hdrs["content-type"] = ctype
        a = Auth(auth) if auth is not None else None
        if a is not None and "authorization" not in hdrs:
            h = a.header()
            if h:
                hdrs["authorization"] = h
        px = Proxy(proxy) if proxy else self.proxy
        follow = self.allow_redirects if allow_redirects is None else allow_redirects
        tmo = self.timeout if timeout is None else timeout
        if tmo <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {tmo!r}")
        h2c = self.http2 if http2 is None else http2
        # the timeout bounds the whole call: every redirect hop, the Digest retry and a retry on a
        # fresh connection share it (a streamed body is then bound per read, by ``tmo``)
        deadline = time.monotonic() + tmo
        decode = self.decompress and not stream
        history: list[Response] = []
        challenged = False
        origin = u.origin
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                resp = Response.failed(codes.TIMEOUT, "no answer within the timeout", url=u.full, method=method,
                                       error=TimeoutError())
                break
            resp = await self._exchange(method, u, hdrs, body, px, tmo, left, stream, h2c, decode)
            if self.jar is not None and not codes.is_failure(resp.status_code):
                self.jar.store(u, resp.headers)
            status = resp.status_code
            if (follow and status in redirects.REDIRECT_CODES and "location" in resp.headers):
                if len(history) >= self.max_redirects:
                    resp = Response.failed(codes.REQUEST_FAILED,
                                           f"more than {self.max_redirects} redirects", url=u.full,
                                           method=method)
                    break
                new_method, keep = redirects.next_method(status, method)
                if keep and not body.replayable:
                    break  # a streamed body is used up: the 3xx is the answer (the caller may send again)
                await _discard(resp, deadline)
                history.append(resp)
                try:
                    u = urlmod.join(u, redirects.location(resp.headers))
                except ValueError as exc:
                    resp = Response.failed(codes.REQUEST_FAILED, f"bad redirect: {exc}", url=u.full,
                                           method=method)
                    break
                method = new_method
                if not keep:
                    body = _EMPTY
                    hdrs = redirects.strip_body_headers(hdrs)
                if u.origin != origin:
                    hdrs = redirects.strip_on_cross_origin(hdrs)
                    a = None  # nor is a Digest answer computed for another origin
                continue
            if status == 401 and a is not None and a.bearer is None and not challenged:
                scheme, chal = _pick_digest(resp.headers)
                if scheme == "digest" and body.replayable:
                    challenged = True
                    try:
                        hdrs["authorization"] = digest_header(a, chal, method, u.target)
                    except ValueError as exc:
                        resp.reason = f"{resp.reason} ({exc})"
                        break
                    await _discard(resp, deadline)
                    history.append(resp)
                    continue
            break
        if decode and resp.content and "content-encoding" in resp.headers and not codes.is_failure(resp.status_code):
            resp = await self._decoded(resp)
        resp.history = history
        resp.elapsed = time.perf_counter() - t0
        if meta is not None:
            resp.meta = meta
        return resp

    async def _decoded(self, resp: Response) -> Response:
        """``resp`` with its Content-Encoding undone, or a 735 when the body is corrupt or too big."""
        raw, coding = resp.content, resp.headers["content-encoding"]
        try:
            if len(raw) > INLINE_DECODE:  # a big inflate would hold up the loop
                resp.content = await asyncio.to_thread(decoding.decode, raw, coding, self.max_body_size)
            else:
                resp.content = decoding.decode(raw, coding, self.max_body_size)
        except ProtocolError as exc:
            return Response.failed(codes.PROTOCOL_ERROR, str(exc), url=resp.url, method=resp.method, error=exc)
        return resp

    async def _exchange(self, method: str, u: urlmod.URL, hdrs: dict[str, str], body: Body,
                        px: Proxy | None, tmo: float, left: float, stream: bool, h2c: bool,
                        decode: bool) -> Response:
        """One request on a pooled connection within ``left`` seconds (``tmo``: per read of a stream)."""
        if self.jar is not None:
            cookie = self.jar.cookie_header(u)
            if cookie:
                hdrs = {**hdrs, "cookie": cookie}
        pool, may_h2 = self._pool_for(u, px, h2c)
        end = time.monotonic() + left
        for attempt in (0, 1):
            conn = None
            reused = False
            if attempt:
                left = end - time.monotonic()
                if left <= 0:
                    return Response.failed(codes.TIMEOUT, "no answer within the timeout", url=u.full,
                                           method=method, error=TimeoutError())
            try:
                if body.data is not None and (conn := pool.take_idle()) is not None:
                    # fast path: a kept-alive connection and a body in memory; the pool's
                    # coarse deadline timer stands in for a per-request timer
                    reused = True
                    deadlines = self.pools.deadlines
                    deadlines.add(conn, left)
                    try:
                        return await exchange_h1.exchange(conn, pool, method, u, hdrs, body, stream, px, tmo,
                                                         self._heads, decode)
                    finally:
                        deadlines.discard(conn)
                async with asyncio.timeout(left):
                    conn = await pool.acquire(may_h2)
                    if conn.http2:
                        return await exchange_h2.exchange(conn, pool, method, u, hdrs, body, stream, tmo,
                                                         self.max_body_size, decode)
                    reused = conn.served > 0
                    return await exchange_h1.exchange(conn, pool, method, u, hdrs, body, stream, px, tmo,
                                                         self._heads, decode)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a Response
                stale = (attempt == 0 and conn is not None and not conn.http2 and reused
                         and isinstance(exc, (ConnectionClosed, ConnectionResetError, BrokenPipeError))
                         and not conn.headers_done and body.replayable and method in IDEMPOTENT)
                if stale:
                    continue  # the server dropped an idle keep-alive connection: try a fresh one
                if (attempt == 0 and isinstance(exc, Unprocessed) and body.replayable
                        and method in IDEMPOTENT):
                    continue  # HTTP/2 GOAWAY or REFUSED_STREAM: the server did not act on it
                code, reason = classify(exc)
                return Response.failed(code, reason, url=u.full, method=method, error=exc)
        raise AssertionError("unreachable")

    def _pool_for(self, u: urlmod.URL, px: Proxy | None, h2c: bool) -> tuple[OriginPool, bool]:
        https = u.scheme == "https"
        may_h2 = (https and not self.force_http1) or (not https and h2c and px is None)
        key = (u.scheme, u.host, u.port, px.key if px else None, may_h2, self._conn_opts)
        pools = self.pools
        pool = pools.pools.get(key)
        if pool is None:
            ctx = None
            if https:
                alpn = ("http/1.1",) if self.force_http1 else ("h2", "http/1.1")
                ctx = tls.context(self.verify, alpn, self.cert)
            mhs, mbs, streams = self.max_header_size, self.max_body_size, self.http2_streams

            def opener():
                return open_connection(u, proxy=px, ssl_ctx=ctx, h2_prior=may_h2 and not https,
                                       make_h1=lambda: H1Connection(mhs, mbs),
                                       make_h2=lambda: H2Connection(streams, mhs))
            pool = pools.get(key, opener)
        return pool, may_h2

    # -- HTTP/2 streams (gRPC) ----------------------------------------------------------------
    async def open_stream(self, u: urlmod.URL, headers: list[tuple[bytes, bytes]], *,
                          end_stream: bool = False, timeout: float | None = None) -> H2Stream:
        """An HTTP/2 stream to ``u`` (h2c prior knowledge for http://): gRPC's transport.

        The stream slot goes back to the pool when the stream ends or is reset.
        """
        pool, _ = self._pool_for(u, None, True)
        async with asyncio.timeout(timeout or self.timeout):
            conn = await pool.acquire(True)
        if not conn.http2:
            pool.release(conn)
            raise ProtocolError(f"{u.authority} does not speak HTTP/2 (ALPN chose HTTP/1.1)")
        try:
            st = conn.open_stream(headers, end_stream)
        except BaseException:
            pool.release(conn)
            raise
        st.on_done = lambda: pool.release(conn)
        return st

async def _discard(resp: Response, deadline: float) -> None:
    """Drain (or drop) a streamed body we are not going to hand out, within the call's ``deadline``
    (a time.monotonic() value): a trickling redirect body must not outlast the timeout."""
    if resp.stream is not None:
        try:
            async with asyncio.timeout(max(0.0, min(5.0, deadline - time.monotonic()))):
                resp.content = await exchange_h2.read_limited(resp.stream, 1024 * 1024)
        except (ClientError, TimeoutError, OSError):
            resp.stream.close()
        resp.stream = None


def _pick_digest(headers: Headers) -> tuple[str, dict[str, str]]:
    for value in headers.get_all("www-authenticate", ()):
        scheme, params = parse_challenge(value)
        if scheme == "digest":
            return scheme, params
    return "", {}
