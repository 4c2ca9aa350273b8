"""URL splitting for requests: origin key, request target and Host header."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


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
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r} (use http:// or https://)")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {url!r}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"bad port in URL {url!r}") from exc
    query = parts.query
    extra = encode_params(params)
    if extra:
        query = f"{query}&{extra}" if query else extra
    target = (parts.path or "/") + (f"?{query}" if query else "")
    netloc = parts.netloc.rpartition("@")[2]
    return URL(scheme, host, port, target, f"{scheme}://{netloc}{target}")


def join(base: URL, location: str) -> URL:
    """Resolve a redirect ``Location`` against the URL that answered."""
    from urllib.parse import urljoin
    return parse(urljoin(base.full, location))
