"""Request header checks for HTTP/2 (RFC 9113 8.2 and 8.3), done in one pass over the decoded list.

h2's built-in validation is switched off because it costs more than everything else a small request
needs; these are the checks that protect what comes after us (WSGI environ, HTTP/1.1 proxies):
no CR/LF/NUL anywhere, lower-case names, no connection-specific fields, pseudo-headers first, known,
once each, and the required ones present.
"""
from __future__ import annotations

from skitai.http.request import valid_host

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
        method, path, authority = pseudo.get(":method"), pseudo.get(":path"), pseudo.get(":authority")
        if method == "CONNECT" and ":protocol" not in pseudo:
            if not authority or ":scheme" in pseudo or path is not None:
                raise ValueError("CONNECT names only an :authority (RFC 9113 8.5)")
        elif not method or not path or ":scheme" not in pseudo:
            raise ValueError("a required pseudo-header is missing")
        elif path[0] != "/" and not (path == "*" and method == "OPTIONS"):
            raise ValueError(f":path {path!r} is neither an absolute path nor OPTIONS '*' (RFC 9113 8.3.1)")
        if ":protocol" in pseudo and method != "CONNECT":
            raise ValueError(":protocol needs CONNECT with :path and :scheme (RFC 8441 4)")
        if authority is not None:
            if not valid_host(authority):
                raise ValueError(":authority is not a host and port (RFC 9113 8.3.1)")
            hosts = [v for n, v in headers if n == "host"]
            if not hosts:
                headers.append(("host", authority))
            elif any(_origin(v, pseudo.get(":scheme")) != _origin(authority, pseudo.get(":scheme")) for v in hosts):
                # routing follows :authority, the app reads Host: they must name one origin (RFC 9113 8.3.1)
                raise ValueError("Host differs from :authority")
        elif any(n == "host" and not valid_host(v) for n, v in headers):
            raise ValueError("the Host header is not a host and port")
    return pseudo, headers


def _origin(authority: str, scheme: str | None) -> str:
    """``authority`` lower-cased, without the port its scheme implies (RFC 3986 6.2.3)."""
    authority = authority.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme or "")
    return authority[:-len(default)] if default and authority.endswith(default) else authority
