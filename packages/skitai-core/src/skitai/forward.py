"""The ``enable_forward(80, 443)`` listener: every request is redirected to HTTPS.

GET and HEAD get ``301 Moved Permanently``; other methods ``308 Permanent Redirect``, so a POST stays a
POST with its body. The host name (``forward_domain`` or the request's ``Host``) and the whole request
target are kept; the port is the HTTPS port, left out when it is 443.
"""
from __future__ import annotations

from typing import Any

_SAFE = ("GET", "HEAD")


def _host_name(request: Any) -> str:
    host = request.host or "localhost"
    return host if not (":" in host and not host.startswith("[")) else f"[{host}]"   # bare IPv6 literal


class ForwardToHTTPS:
    """A ``Dispatch`` answering each request with a redirect to ``https://host[:port]/same/target``."""

    def __init__(self, config: Any) -> None:
        self.port = config.forward_to or 443
        self.domain = getattr(config, "forward_domain", None)

    def location(self, request: Any) -> str:
        host = self.domain or _host_name(request)
        port = "" if self.port == 443 else f":{self.port}"
        target = request.path or "/"
        if request.query:
            target += "?" + request.query
        return f"https://{host}{port}{target}"

    def __call__(self, exchange: Any) -> None:
        request = exchange.request
        status = 301 if request.method in _SAFE else 308
        exchange.respond(status, [("Location", self.location(request)), ("Content-Type", "text/plain"),
                                  ("Cache-Control", "max-age=3600")], b"" if request.method == "HEAD" else
                         f"Moved to {self.location(request)}\n".encode("latin-1", "replace"))
