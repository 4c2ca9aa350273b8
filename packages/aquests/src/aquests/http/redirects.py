"""Following 3xx answers (AQ-17)."""
from __future__ import annotations

MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))


def next_method(status: int, method: str) -> tuple[str, bool]:
    """(method for the next hop, whether the body is kept). 303 → GET; 301/302 turn POST into GET."""
    if status == 303 and method != "HEAD":
        return "GET", False
    if status in (301, 302) and method == "POST":
        return "GET", False
    return method, True


def strip_on_cross_origin(headers: dict[str, str], same_origin: bool) -> dict[str, str]:
    """Credentials are not carried to another origin."""
    if same_origin:
        return headers
    return {k: v for k, v in headers.items() if k not in ("authorization", "cookie", "proxy-authorization")}
