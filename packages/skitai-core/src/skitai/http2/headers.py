"""Request header checks for HTTP/2 (RFC 9113 8.2 and 8.3), done in one pass over the decoded list.

h2's built-in validation is switched off because it costs more than everything else a small request
needs; these are the checks that protect what comes after us (WSGI environ, HTTP/1.1 proxies):
no CR/LF/NUL anywhere, lower-case names, no connection-specific fields, pseudo-headers first, known,
once each, and the required ones present.
"""
from __future__ import annotations

_CONNECTION_SPECIFIC = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"))
_PSEUDO = frozenset((":method", ":scheme", ":authority", ":path", ":protocol"))
_BAD = ("\r", "\n", "\0")


def check_request(items, trailers: bool = False) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """``(pseudo-headers, headers)`` of a request header block (or trailers); ``ValueError`` when malformed."""
    pseudo: dict[str, str] = {}
    headers: list[tuple[str, str]] = []
    for name, value in items:
        if "\r" in value or "\n" in value or "\0" in value or value[:1] in (" ", "\t") or \
                value[-1:] in (" ", "\t"):
            raise ValueError(f"bad characters in the value of {name!r}")
        if name[:1] == ":":
            if trailers or headers or name not in _PSEUDO or name in pseudo:
                raise ValueError(f"misplaced, unknown or repeated pseudo-header {name!r}")
            pseudo[name] = value
            continue
        if not name or name != name.lower() or any(c in name for c in _BAD) or " " in name or ":" in name:
            raise ValueError(f"bad header name {name!r}")
        if name in _CONNECTION_SPECIFIC or (name == "te" and value.lower() != "trailers"):
            raise ValueError(f"connection-specific header {name!r}")
        headers.append((name, value))
    if not trailers:
        method = pseudo.get(":method")
        if not method or (method != "CONNECT" and (not pseudo.get(":path") or ":scheme" not in pseudo)):
            raise ValueError("a required pseudo-header is missing")
        if ":protocol" in pseudo and (method != "CONNECT" or not pseudo.get(":path") or ":scheme" not in pseudo):
            raise ValueError(":protocol needs CONNECT with :path and :scheme (RFC 8441 4)")
        if ":authority" in pseudo and not any(n == "host" for n, _ in headers):
            headers.append(("host", pseudo[":authority"]))
    return pseudo, headers
