"""Following 3xx answers (AQ-17): the next method, the next URL and what is not carried along."""
from __future__ import annotations

from ..response import Headers

MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
# credentials, and a Host the caller chose for the first origin, stay with that origin
CROSS_ORIGIN_DROPPED = frozenset(("authorization", "cookie", "proxy-authorization", "host"))


def next_method(status: int, method: str) -> tuple[str, bool]:
    """(method for the next hop, whether the body is kept). 303 → GET; 301/302 turn POST into GET."""
    if status == 303 and method != "HEAD":
        return "GET", False
    if status in (301, 302) and method == "POST":
        return "GET", False
    return method, True


def location(headers: Headers) -> str:
    """The one Location of a 3xx; ValueError when the server sent several that differ."""
    values = headers.get_all("location", [])
    if len(set(values)) > 1:
        raise ValueError(f"{len(values)} different Location headers")
    return values[0]


def strip_body_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers describing a request body (Content-Type, Content-Encoding, ...) go when the body goes."""
    return {k: v for k, v in headers.items() if not k.startswith("content-")}


def strip_on_cross_origin(headers: dict[str, str]) -> dict[str, str]:
    """Credentials are not carried to another origin (another scheme, host or port)."""
    return {k: v for k, v in headers.items() if k not in CROSS_ORIGIN_DROPPED}
