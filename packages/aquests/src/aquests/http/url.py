"""URL splitting for requests: origin key, request target and Host header."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode, urljoin, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# C0 controls, DEL: urlsplit silently drops CR, LF and TAB, so "/a\r\nX: y" would reach the request
# line as "/aX: y"; a URL carrying any of them is refused instead
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# what may go on the request line as it is: RFC 3986 unreserved, sub-delims, ":@/?" and a "%" that
# starts an escape; anything else (space, quote, "<>\\^`{|}", non-ASCII) is percent-encoded (UTF-8)
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?\[\]%]|%(?![0-9A-Fa-f]{2})")
_TARGET_SAFE = "!$&'()*+,;=:@/?[]~%"
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_OK = re.compile(r"[a-z0-9\-._~!$&'()*+,;=%]+\Z")
_IPV6_OK = re.compile(r"[0-9a-f:.]+(%[A-Za-z0-9\-._~%]+)?\Z")


class URL(NamedTuple):
    scheme: str   # "http" or "https"
    host: str     # no brackets for IPv6
    port: int
    target: str   # path?query sent on the request line
    full: str     # the whole URL, normalised

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def encode_params(params: Any) -> str:
    if params is None or params == "":
        return ""
    if isinstance(params, (str, bytes)):
        return params.decode() if isinstance(params, bytes) else params
    return urlencode(params, doseq=True)


def parse(url: str, params: Any = None) -> URL:
    """Split ``url`` (adding ``params`` to its query); raises ValueError on a URL we cannot fetch."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    if params is None or params == "":
        return _parse_cached(url)
    return _parse(url, params)


@lru_cache(maxsize=512)
def _parse_cached(url: str) -> URL:
    return _parse(url, None)  # URL is immutable: the same URL fetched again costs one lookup


def _parse(url: str, params: Any) -> URL:
    url = url.strip()
    if _CONTROL.search(url):
        raise ValueError(f"control characters (CR, LF, NUL, ...) in URL {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r} (use http:// or https://)")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {url!r}")
    host = _check_host(host, url)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"bad port in URL {url!r}") from exc
    if parts.port == 0:
        raise ValueError(f"bad port in URL {url!r}")
    query = parts.query
    extra = encode_params(params)
    if extra:
        query = f"{query}&{extra}" if query else extra
    target = (parts.path or "/") + (f"?{query}" if query else "")
    if _NEEDS_QUOTING.search(target):
        if _CONTROL.search(target):
            raise ValueError(f"control characters (CR, LF, NUL, ...) in the query of {url!r}")
        target = quote(_BAD_PERCENT.sub("%25", target), safe=_TARGET_SAFE)
    netloc = parts.netloc.rpartition("@")[2]  # userinfo never goes into Host or the URL we report
    if not netloc.isascii():
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return URL(scheme, host, port, target, f"{scheme}://{netloc}{target}")


def _check_host(host: str, url: str) -> str:
    """The host as it goes into Host and DNS: IDNA for non-ASCII names, nothing a header cannot carry."""
    if ":" in host:
        if _IPV6_OK.match(host):
            return host
    else:
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise ValueError(f"bad host name in URL {url!r}: {exc}") from None
        if _HOST_OK.match(host):
            return host
    raise ValueError(f"bad host in URL {url!r}")


def join(base: URL, location: str) -> URL:
    """Resolve a redirect ``Location`` against the URL that answered."""
    if _CONTROL.search(location):
        raise ValueError(f"control characters in Location {location!r}")
    return parse(urljoin(base.full, location))
