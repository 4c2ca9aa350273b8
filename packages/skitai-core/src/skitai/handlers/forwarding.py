"""Header and target rules of the reverse proxy (inventory SK-41, SK-23a), without any I/O.

What goes to a cluster member: the path with the mount point cut off (the query kept), the client's
headers minus the hop-by-hop ones (RFC 9110 7.6.1: ``Connection`` and every field it names,
``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, ``Proxy-*``), plus
``Via`` (appended, RFC 9110 7.6.3), ``X-Forwarded-For`` (appended), ``X-Forwarded-Proto``,
``X-Forwarded-Host`` and the transaction IDs
(``X-Gtxn-Id`` = the request's gtxnid, ``X-Ltxn-Id`` = its ltxnid + 1). What comes back: the member's
headers minus the hop-by-hop ones and minus ``Date``/``Server``, which the front server writes itself.
"""
from __future__ import annotations

from collections.abc import Iterable

from aquests import codes

HOP_BY_HOP = frozenset(("connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
                        "proxy-connection", "proxy-authenticate", "proxy-authorization", "http2-settings"))
# the client library writes these itself (from the body it is given), or we replace them
_REWRITTEN = frozenset(("host", "content-length", "expect", "via", "x-forwarded-for", "x-forwarded-proto",
                        "x-forwarded-host", "x-gtxn-id", "x-ltxn-id"))
VIA_NAME = "skitai"
_FRONT_WRITES = frozenset(("date", "server"))
IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
# failures where the member certainly did not see the request: safe to resend whatever the method
NOT_DELIVERED = frozenset((codes.CONNECTION_REFUSED, codes.DNS_FAILED, codes.TLS_FAILED))


def member_target(point: str, path: str, query: str) -> str:
    """The request-target for the member: ``path`` without the mount ``point`` ("" becomes "/"), query kept.

    ``/search/x?q=1`` on a mount at ``/search`` → ``/x?q=1``; ``/search`` → ``/``.
    """
    rest = path[len(point):] if point != "/" and path.startswith(point) else path
    if not rest.startswith("/"):
        rest = "/" + rest
    return f"{rest}?{query}" if query else rest


def connection_named(values: Iterable[str]) -> set[str]:
    """The field names listed in ``Connection`` header values (they are hop-by-hop too)."""
    names = set()
    for value in values:
        for token in value.split(","):
            token = token.strip().lower()
            if token:
                names.add(token)
    return names


def _is_hop(name: str, named: set[str]) -> bool:
    return name in HOP_BY_HOP or name in named or name.startswith("proxy-")


def request_headers(items: list[tuple[str, str]], *, client_ip: str, scheme: str, gtxnid: str,
                    ltxnid: int, host: str, forwarded_host: str, version: str = "1.1") -> dict[str, str]:
    """The headers sent to the member, lower-case names; ``host`` is the ``Host`` to send,
    ``forwarded_host`` the one the client asked for (``X-Forwarded-Host``; "" leaves it out) and
    ``version`` the HTTP version the request came with (for ``Via``).

    Repeated fields are joined with ", " (``Cookie`` with "; "), as HTTP allows for a proxy.
    """
    named = connection_named(v for k, v in items if k.lower() == "connection")
    out: dict[str, str] = {}
    forwarded_for: list[str] = []
    via: list[str] = []
    for name, value in items:
        name = name.lower()
        if _is_hop(name, named):      # named in Connection: meant for the last hop only, kept by none
            continue
        if name == "x-forwarded-for":
            forwarded_for.append(value.strip())
        elif name == "via":
            via.append(value.strip())
        if name in _REWRITTEN:
            continue
        if name in out:
            out[name] += ("; " if name == "cookie" else ", ") + value
        else:
            out[name] = value
    forwarded_for.append(client_ip)
    out["host"] = host
    out["via"] = ", ".join(via + [f"{version} {VIA_NAME}"])
    out["x-forwarded-for"] = ", ".join(v for v in forwarded_for if v)
    out["x-forwarded-proto"] = scheme
    if forwarded_host:
        out["x-forwarded-host"] = forwarded_host
    out["x-gtxn-id"] = gtxnid
    out["x-ltxn-id"] = str(ltxnid + 1)
    return out


def response_headers(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The member's response headers the client gets: hop-by-hop, ``Date`` and ``Server`` dropped."""
    named = connection_named(v for k, v in items if k.lower() == "connection")
    return [(k, v) for k, v in items
            if not _is_hop(k.lower(), named) and k.lower() not in _FRONT_WRITES]


def may_retry(method: str, code: int) -> bool:
    """Whether a connection-level failure ``code`` may be sent to another member.

    Idempotent methods always; others (POST, PATCH) only when the member never got the request.
    """
    return method in IDEMPOTENT or code in NOT_DELIVERED


def failure_status(code: int, all_dead: bool) -> int:
    """The answer when no member could answer: 504 for a timeout, 503 when every member tried was already
    known to be dead, else 502."""
    if code == codes.TIMEOUT:
        return 504
    return 503 if all_dead else 502
