"""The load-balanced reverse proxy behind ``skitai.mount('/search', '@mysearch')`` (inventory SK-41).

``ReverseProxy(cluster, point, config)`` is the handler ``skitai.site`` mounts for a ``'@name'`` target. For
each request it cuts the mount point off the path (``/search/x?q=1`` → ``/x?q=1``), asks the cluster for a
member (weighted, least busy: ``aquests.cluster.Cluster.choose``), sends the request there with the
``aquests`` HTTP client and streams the answer back with back-pressure.

- **Fail-over.** A connection-level failure (aquests code >= 700) marks the member dead (the cluster's
  back-off) and the request goes to another member, each member at most once, as long as the body can
  be sent again: bodies up to ``replay_limit`` are read whole first; a larger one is streamed and fails
  over only while the member got nothing of it but the buffered part. POST/PATCH are resent only when
  the member surely never got them (refused, DNS, TLS); see ``forwarding.may_retry``.
- **Answers of the proxy itself.** No usable member (none, or all stopped): 503. Every member tried
  failed: 502, or 503 with ``Retry-After`` when all of them were already known dead, or 504 when the
  last one timed out. (The original answered 506 here; 502/503/504 are what clients and monitors
  understand.) A member that fails in the middle of its answer: the client's connection (HTTP/1.1) or
  stream (HTTP/2) is cut, so the client sees a truncated answer, never a clean end or a hang.
- **Host.** The member gets ``Host: <member host:port>`` (like Apache's ProxyPass), the client's Host goes
  in ``X-Forwarded-Host``; ``preserve_host=True`` sends the client's Host instead.
- WebSocket upgrades (HTTP/1.1) are tunnelled to a member as bytes: see ``tunnel``.

Settings: ``config.extra["proxy"]`` (a dict; see ``DEFAULTS``).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aquests import codes
from aquests.cluster import Cluster, is_connection_failure
from aquests.http.client import Client
from aquests.http.url import URL
from aquests.members import Member, is_db, normalize_ctype
from aquests.response import Response

from ..http.errors import REASONS, BodyTooLarge, ClientDisconnected, HeaderError, error_page
from ..loader import MountError
from . import forwarding
from .replay import ForwardBody, read_body

log = logging.getLogger("skitai.server")

DEFAULTS: dict[str, Any] = {
    "timeout": None,             # seconds a member may take to answer (and between body chunks);
                                 # None: the server's network timeout (set_network_timeout, 30 s)
    "replay_limit": 1024 * 1024,  # request bodies up to this many bytes are buffered so they can be resent
    "chunk": 64 * 1024,          # bytes read from the client per write to the member
    "preserve_host": False,      # True: send the client's Host to the member instead of the member's
    "verify": True,              # TLS verification of https members: True, False or a CA bundle path
}
UNBOUNDED = 7 * 24 * 3600.0     # the client's total timeout for streamed bodies; ``watched`` times them
_UNSUPPORTED = {"grpc": "gRPC needs HTTP/2 trailers end to end", "grpcs": "gRPC needs HTTP/2 trailers end to end"}


def options_of(config: Any) -> dict[str, Any]:
    """``DEFAULTS`` updated with ``config.extra["proxy"]``; unknown keys and bad values are a MountError."""
    given = (getattr(config, "extra", None) or {}).get("proxy") or {}
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise MountError(f"unknown reverse proxy setting(s) {sorted(unknown)}: use {sorted(DEFAULTS)}")
    opts = {**DEFAULTS, **given}
    if opts["timeout"] is None:
        opts["timeout"] = getattr(getattr(config, "limits", None), "network_timeout", 30.0)
    for key, least in (("timeout", 0.001), ("replay_limit", 0), ("chunk", 1)):
        value = opts[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
            raise MountError(f"reverse proxy setting {key} must be a number >= {least}, not {value!r}")
    return opts


# ---------------------------------------------------------------- the handler

@dataclass
class Outcome:
    """How sending to the cluster went: a response from ``member``, or the last failure."""

    response: Response | None
    member: Member | None = None
    all_dead: bool = False


class ReverseProxy:
    """The handler of a ``'@cluster'`` mount (a ``Dispatch``: ``handler(exchange)`` returns a coroutine)."""

    def __init__(self, cluster: str, point: str, config: Any) -> None:
        spec = (getattr(config, "clusters", None) or {}).get(cluster)
        if spec is None:
            raise MountError(f"{point} mounts '@{cluster}', but no alias() or run(clusters=...) defines it")
        try:
            ctype = normalize_ctype(spec.ctype)
        except (TypeError, ValueError) as e:
            raise MountError(f"{point} mounts '@{cluster}': {e}") from e
        if is_db(ctype):
            raise MountError(f"{point} mounts '@{cluster}', a {ctype.lstrip('*')} database cluster: only "
                             "HTTP clusters (http, https, rpc, ws...) can be mounted as a reverse proxy")
        if ctype in _UNSUPPORTED:
            raise MountError(f"{point} mounts '@{cluster}', a {ctype} cluster: the reverse proxy does not "
                             f"carry it ({_UNSUPPORTED[ctype]}); call it with was.grpc instead")
        self.name = cluster
        self.spec = spec
        self.point = quote(point.rstrip("/") or "/", safe="/:@!$&'()*+,;=-._~%")   # as the router keys it
        self.config = config
        opts = options_of(config)
        self.timeout = float(opts["timeout"])
        self.replay_limit = int(opts["replay_limit"])
        self.chunk = int(opts["chunk"])
        self.preserve_host = bool(opts["preserve_host"])
        self.verify = opts["verify"]
        self.client = Client(timeout=self.timeout, verify=opts["verify"], force_http1=True,
                             allow_redirects=False)
        self._own: Cluster | None = None

    def __repr__(self) -> str:
        return f"<ReverseProxy {self.point} -> @{self.name}>"

    # -- the cluster ------------------------------------------------------------------------------
    def cluster(self, wasc: Any) -> Cluster:
        """The server's ``Cluster`` object for the name (so ``was.status()`` shows what the proxy saw);
        one of our own when no ``was`` context (``wasc``) serves this loop."""
        if wasc is not None:
            found = wasc.clusters.get(self.name)
            if found is not None:
                return found
        if self._own is None:
            s = self.spec
            self._own = Cluster(self.name, s.ctype, s.members, role=s.role, source=s.source, ssl=s.ssl)
        return self._own

    # -- one request ------------------------------------------------------------------------------
    def __call__(self, exchange: Any) -> Any:
        return self.forward(exchange)

    async def forward(self, exchange: Any) -> None:
        req = exchange.request
        wasc = server_context(exchange.loop)
        if wasc is not None:
            wasc.count(self.point)                   # requests per mount on the status page
        cluster = self.cluster(wasc)
        if req.upgrade == "websocket":
            from .tunnel import tunnel
            await tunnel(self, exchange, cluster)
            return
        try:
            body = await read_body(req, self.replay_limit, self.chunk)
        except BodyTooLarge as e:
            exchange.error(413, str(e))
            return
        except ClientDisconnected:
            return
        outcome = await self.send(cluster, exchange, body)
        resp = outcome.response
        if resp is not None and outcome.member is not None:
            await self.relay(exchange, resp, cluster, outcome.member)
        elif body.error is not None:
            self.client_failed(exchange, body.error)
        elif resp is not None and resp.status_code == codes.TIMEOUT and body.waiting:
            exchange.error(408, "The request body did not arrive in time.")
        else:
            failure = (resp.status_code, resp.reason) if resp is not None else None
            self.answer_failure(exchange, cluster, failure, outcome.all_dead)

    async def send(self, cluster: Cluster, exchange: Any, body: ForwardBody) -> Outcome:
        """Try members until one answers at the HTTP level (its member is still counted in flight)."""
        req = exchange.request
        target = forwarding.member_target(self.point, req.path, req.query)
        last: Response | None = None
        all_dead = True
        for member in cluster.candidates():
            was_dead = member.fails > 0
            try:
                resp = await self.attempt(member, req, target, body)
            except BaseException:                    # cancelled (shutdown): not in flight any more
                cluster.release(member)
                raise
            if not is_connection_failure(resp):
                cluster.report(member, True)
                return Outcome(resp, member)
            cluster.release(member)
            last = resp
            if body.error is not None:
                break                                # the client failed, not the member
            if resp.status_code == codes.TIMEOUT and body.waiting:
                break                                # the client was too slow to send its body
            cluster.report(member, False, resp.reason)
            log.warning("proxy %s -> @%s %s failed: %s", req.path, self.name, member.address, resp.reason)
            all_dead = all_dead and was_dead
            if not (body.replayable and forwarding.may_retry(req.method, resp.status_code)):
                break
        return Outcome(last, None, all_dead)

    async def attempt(self, member: Member, req: Any, target: str, body: ForwardBody) -> Response:
        """Send the request to one member; failures come back as 7xx responses (aquests never raises them)."""
        scheme = "https" if member.ssl else "http"
        url = URL(scheme, member.host, member.port, target, f"{scheme}://{member.address}{target}")
        headers = forwarding.request_headers(req.headers.items(), **forward_args(req, url.authority,
                                                                                 self.preserve_host))
        streamed = body.live is not None
        sending = self.client.send(req.method, url, body.for_client(), headers=headers, stream=True,
                                   timeout=UNBOUNDED if streamed else self.timeout, allow_redirects=False)
        try:
            resp = await (self.watched(sending, body) if streamed else sending)
        except (TimeoutError, OSError) as e:       # defensive: the client turns these into responses
            return Response.failed(codes.REQUEST_FAILED, f"{member.address}: {e}")
        if resp.stream is not None:
            resp.stream.timeout = self.timeout       # between two pieces of the answer
        return resp

    async def watched(self, sending: Any, body: ForwardBody) -> Response:
        """Send a streamed body with an idle timeout instead of a total one: the upload may take as long
        as it takes, but no ``timeout`` seconds may pass without a byte moving (or, after the body, without
        the answer's head)."""
        task = asyncio.ensure_future(sending)
        seen = body.live.received
        try:
            while True:
                if body.live.received != seen:          # bytes arrived while a read collects a chunk
                    seen = body.live.received
                    body.active_at = time.monotonic()
                left = self.timeout - (time.monotonic() - body.active_at)
                if left > 0:
                    done, _ = await asyncio.wait((task,), timeout=min(left, self.timeout / 4))
                    if done:
                        return task.result()
                    continue
                who = "the client" if body.waiting else "the member"
                task.cancel()
                await asyncio.wait((task,))
                body.waiting = who == "the client"
                return Response.failed(codes.TIMEOUT, f"{who} sent nothing for {self.timeout:g} s")
        finally:
            if not task.done():
                task.cancel()

    # -- answers ----------------------------------------------------------------------------------
    def client_failed(self, exchange: Any, error: BaseException) -> None:
        if isinstance(error, BodyTooLarge):
            exchange.error(413, str(error))
        elif not isinstance(error, ClientDisconnected) and not exchange.closed:
            exchange.error(400, "The request body could not be read.")

    def answer_failure(self, exchange: Any, cluster: Cluster, failure: tuple[int, str] | None,
                       all_dead: bool) -> None:
        """The proxy's own answer when no member answered: ``failure`` is the last (aquests code, reason),
        None when there was no member to try."""
        if failure is None:
            exchange.error(503, f"Cluster @{self.name} has no member to send the request to.")
            return
        code, reason = failure
        status = forwarding.failure_status(code, all_dead)
        if status == 504:
            detail = f"No member of @{self.name} answered within {self.timeout:g} s."
        elif status == 503:
            detail = f"Every member of @{self.name} is down; try again later."
        elif code == codes.TLS_FAILED:
            detail = f"No member of @{self.name} could be reached: TLS failed (is its certificate trusted?)."
        elif code == codes.PROTOCOL_ERROR:
            detail = f"A member of @{self.name} answered with something that is not valid HTTP."
        else:
            # the low-level reason names member addresses: it is in the log and the status page, not here
            detail = f"No member of @{self.name} could be reached."
        headers = [("Content-Type", "text/html; charset=utf-8")]
        if status == 503:
            headers.append(("Retry-After", str(retry_after(cluster))))
        exchange.respond(status, headers, error_page(status, detail))

    async def relay(self, exchange: Any, resp: Response, cluster: Cluster, member: Member) -> None:
        """Stream the member's answer to the client, then release the member."""
        stream = resp.stream
        try:
            if stream is not None and stream.failed is not None:
                # the body broke in the bytes that came with the head: nothing went out yet, so the
                # client gets a 502 rather than a connection closed without a byte
                self.answer_cut(exchange, cluster, member, stream.failed)
                exchange.error(502, f"A member of @{self.name} answered with something that is not valid HTTP.")
                return
            headers = forwarding.response_headers(resp.headers.items())
            reason = None if resp.status_code in REASONS else _printable(resp.reason)
            try:
                exchange.start(resp.status_code, headers, reason)
            except (HeaderError, ValueError):
                exchange.error(502, f"A member of @{self.name} answered with a header that cannot be passed on.")
                return
            if stream is None:                    # HEAD, 204, 304: no body
                exchange.end()
                return
            while not exchange.closed:
                try:
                    chunk = await stream.read_chunk()
                except Exception as exc:      # noqa: BLE001 - cut, closed, timed out: the member failed
                    if exchange.closed:
                        return                # ... unless the client left meanwhile: not the member's fault
                    self.answer_cut(exchange, cluster, member, exc)
                    exchange.abort()
                    return
                if not chunk:
                    exchange.end()
                    return
                await exchange.write(chunk)
        except ClientDisconnected:
            pass
        finally:
            if stream is not None:
                stream.close()               # an unfinished answer drops the member's connection
            cluster.release(member)

    def answer_cut(self, exchange: Any, cluster: Cluster, member: Member, exc: BaseException) -> None:
        """Blame ``member`` for an answer that broke off (and log it)."""
        if isinstance(exc, TimeoutError):
            why = f"nothing for {self.timeout:g} s"
        else:
            why = str(exc) or type(exc).__name__
        cluster.report(member, False, f"answer cut: {why}")
        log.warning("proxy %s -> @%s %s: answer cut: %s", exchange.request.path, self.name, member.address, why)


def forward_args(req: Any, member_host: str, preserve_host: bool) -> dict[str, Any]:
    """``forwarding.request_headers`` keywords for ``req`` going to ``member_host`` (its ``host:port``).

    A request without a Host header (HTTP/2 may send only ``:authority``) uses its host name, without the port.
    """
    client_host = req.headers.get("host") or req.host
    return {"client_ip": req.client[0] if req.client else "", "scheme": req.scheme, "gtxnid": req.gtxnid,
            "ltxnid": req.ltxnid, "host": (client_host if preserve_host else "") or member_host,
            "forwarded_host": client_host, "version": req.version}


def _printable(reason: str) -> str | None:
    reason = (reason or "").strip()
    return reason if reason and reason.isascii() and reason.isprintable() else None


def retry_after(cluster: Cluster) -> int:
    """Whole seconds until the first dead member is tried again (at least 1)."""
    now = time.monotonic()
    waits = [m.retry_at - now for m in cluster.members if not m.stopped and m.retry_at > now]
    return max(1, math.ceil(min(waits))) if waits else 1


def server_context(loop: Any) -> Any:
    """The ``was`` server context (``Wasc``) serving ``loop``, or None."""
    from ..services import binding

    by_loop = getattr(binding, "_by_loop", None) or {}
    wasc = by_loop.get(id(loop))
    if wasc is None:
        wasc = binding.server_context()
    return wasc if wasc is not None and getattr(wasc, "loop", None) is loop else None
