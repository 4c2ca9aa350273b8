"""The ``enable_forward(80, 443)`` listener: every request is redirected to HTTPS.

GET and HEAD get ``301 Moved Permanently``; other methods ``308 Permanent Redirect``, so a POST stays a
POST with its body. The host name (``forward_domain`` or the request's ``Host``) and the whole request
target are kept; the port is the HTTPS port, left out when it is 443.

What the client sent never reaches the ``Location`` as is: a host that is not a DNS name or an IP literal
(``user@host`` in an absolute-form target, say) is a 400, characters a URI may not hold are
percent-encoded, and a target that is not a path (``OPTIONS *``) redirects to ``/``. ``CONNECT`` is a 405.
The target's length is bounded by ``max_request_line``.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

_SAFE = ("GET", "HEAD")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9.])?|\[[0-9a-f:.]+\]|[0-9a-f:.]*:[0-9a-f:.]*", re.I)
_URI_SAFE = "/?#[]@!$&'()*+,;=:%~-._"          # RFC 3986 reserved and unreserved, and existing %XX escapes
ALLOW = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def _host_name(request: Any) -> str | None:
    """The request's host for the redirect, or None when it is not a host name or IP literal."""
    host = request.host or "localhost"
    if not _HOST.fullmatch(host):
        return None
    return host if not (":" in host and not host.startswith("[")) else f"[{host}]"   # bare IPv6 literal


class ForwardToHTTPS:
    """A ``Dispatch`` answering each request with a redirect to ``https://host[:port]/same/target``."""

    def __init__(self, config: Any) -> None:
        self.port = config.forward_to or 443
        self.domain = getattr(config, "forward_domain", None)

    def location(self, request: Any) -> str | None:
        """``https://host[:port]/target``; None when the request's host cannot be used."""
        host = self.domain or _host_name(request)
        if host is None:
            return None
        port = "" if self.port == 443 else f":{self.port}"
        target = request.path if (request.path or "").startswith("/") else "/"
        if request.query:
            target += "?" + request.query
        return f"https://{host}{port}{quote(target, safe=_URI_SAFE)}"

    def __call__(self, exchange: Any) -> None:
        request = exchange.request
        if request.method == "CONNECT":
            exchange.respond(405, [("Allow", ALLOW), ("Content-Type", "text/plain")],
                             b"CONNECT is not served here\n")
            return
        location = self.location(request)
        if location is None:
            exchange.error(400, "the host is not a host name or IP address")
            return
        status = 301 if request.method in _SAFE else 308
        exchange.respond(status, [("Location", location), ("Content-Type", "text/plain"),
                                  ("Cache-Control", "max-age=3600")], b"" if request.method == "HEAD" else
                         f"Moved to {location}\n".encode("latin-1", "replace"))
