"""A cookie jar for ``cookie=True`` (stdlib http.cookiejar) and per-response cookie dicts."""
from __future__ import annotations

import http.cookiejar
import ipaddress

from ..response import Headers
from .url import URL


class _Req:
    """The slice of urllib's Request that CookieJar reads and writes."""

    def __init__(self, u: URL, headers: dict[str, str]) -> None:
        self.u = u
        self.headers = headers
        self.unverifiable = False
        self.type = u.scheme
        self.host = u.authority
        self.origin_req_host = u.host

    def get_full_url(self) -> str:
        return self.u.full

    def get_host(self) -> str:
        return self.host

    def get_type(self) -> str:
        return self.type

    def get_origin_req_host(self) -> str:
        return self.origin_req_host

    def is_unverifiable(self) -> bool:
        return False

    def has_header(self, name: str) -> bool:
        return name.lower() in self.headers

    def get_header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.headers.items())

    def add_unredirected_header(self, name: str, value: str) -> None:
        self.headers[name.lower()] = value


class _Msg:
    def __init__(self, headers: Headers) -> None:
        self.h = headers

    def get_all(self, name: str, default: list | None = None) -> list[str] | None:
        return self.h.get_all(name, default)


class _Resp:
    def __init__(self, headers: Headers) -> None:
        self._m = _Msg(headers)

    def info(self) -> _Msg:
        return self._m


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Policy(http.cookiejar.DefaultCookiePolicy):
    """The stdlib rules plus two of RFC 6265bis that it lacks.

    - A ``Secure`` cookie is only taken from an https answer: a plain-http server (or anyone on
      its path) cannot plant one that the https site would then receive.
    - A host that is an IP address only gets cookies set for exactly that address: the stdlib
      would take ``Domain=.0.0.1`` from 127.0.0.1 and send it on to 10.0.0.1.
    """

    def set_ok(self, cookie: http.cookiejar.Cookie, request) -> bool:  # type: ignore[override]
        if cookie.secure and request.type != "https":
            return False
        if not self._ip_ok(cookie, request):
            return False
        return super().set_ok(cookie, request)

    def return_ok(self, cookie: http.cookiejar.Cookie, request) -> bool:  # type: ignore[override]
        return self._ip_ok(cookie, request) and super().return_ok(cookie, request)

    def domain_return_ok(self, domain: str, request) -> bool:  # type: ignore[override]
        host = request.u.host
        if _is_ip(host) and domain.lstrip(".") != host:
            return False
        return super().domain_return_ok(domain, request)

    @staticmethod
    def _ip_ok(cookie: http.cookiejar.Cookie, request) -> bool:
        host = request.u.host
        return not _is_ip(host) or cookie.domain.lstrip(".") == host


class Jar:
    """Cookies shared by every request of a client (the spec's "localstorage")."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar(Policy())

    def cookie_header(self, u: URL) -> str | None:
        req = _Req(u, {})
        self.jar.add_cookie_header(req)  # type: ignore[arg-type]
        return req.headers.get("cookie")

    def store(self, u: URL, headers: Headers) -> None:
        if "set-cookie" in headers:
            self.jar.extract_cookies(_Resp(headers), _Req(u, {}))  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, str]:
        return {c.name: c.value or "" for c in self.jar}

    def clear(self) -> None:
        self.jar.clear()

