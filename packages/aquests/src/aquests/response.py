"""The response every aquests request ends with (inventory AQ-13, AQ-14).

Network failures do not raise: they come back as a :class:`Response` whose ``status_code``
is a 7xx code from :mod:`aquests.codes` and whose ``reason`` says what went wrong.
"""
from __future__ import annotations

import email.utils
import json as _json
import time
import xmlrpc.client
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable

from . import codes


class HTTPError(Exception):
    """Raised by :meth:`Response.raise_for_status` for 4xx/5xx/7xx responses."""

    def __init__(self, message: str, response: "Response") -> None:
        super().__init__(message)
        self.response = response


class Headers(Mapping):
    """Case-insensitive, multi-valued header mapping; ``h[name]`` joins repeats with ", ".

    The lookup index is built on first use, so responses nobody inspects stay cheap.
    """

    __slots__ = ("_list", "_raw", "_idx")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        if not items:
            self._list: list[tuple[str, str]] | None = []
        elif isinstance(items, Mapping):
            self._list = list(items.items())
        else:
            self._list = list(items)
        self._raw: list[tuple[bytes, bytes]] | None = None
        self._idx: dict[str, list[str]] | None = None

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> "Headers":
        """Headers from the parser's byte pairs, decoded (latin-1) only when first read."""
        h = cls.__new__(cls)
        h._raw, h._list, h._idx = raw, None, None
        return h

    @property
    def _items(self) -> list[tuple[str, str]]:
        lst = self._list
        if lst is None:
            lst = self._list = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]
        return lst

    @property
    def _index(self) -> dict[str, list[str]]:
        idx = self._idx
        if idx is None:
            idx = self._idx = {}
            for k, v in self._items:
                key = k.lower()
                if key in idx:
                    idx[key].append(v)
                else:
                    idx[key] = [v]
        return idx

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        self._idx = None

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._index[name.lower()])

    def get_all(self, name: str, default: Any = None) -> list[str] | Any:
        return list(self._index.get(name.lower(), ())) or default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def items(self):  # type: ignore[override]
        """Every (name, value) pair in arrival order, repeats included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Response:
    """A finished request. Mirrors the parts of ``requests.Response`` the spec uses."""

    # set by aquests.http when the body is streamed (``stream=True``)
    stream: Any = None

    def __init__(
        self,
        status_code: int,
        reason: str = "",
        *,
        version: str = "1.1",
        headers: Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        content: bytes = b"",
        url: str = "",
        method: str = "GET",
        meta: dict | None = None,
        history: list["Response"] | None = None,
        cookies: dict[str, str] | None = None,
        elapsed: float = 0.0,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.version = version
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.content = content
        self.url = url
        self.method = method
        self.meta: dict = meta if meta is not None else {}
        self.history: list[Response] = history or []
        self._cookies = cookies
        self.elapsed = elapsed
        #: an exception object describing a failure that is not an HTTP status (e.g. an XML-RPC Fault)
        self.error: BaseException | None = None
        #: gRPC trailers / HTTP/2 trailers, when the server sent any
        self.trailers: Headers | None = None
        self._data: Any = _UNSET
        #: optional decoder set by the protocol layer (gRPC): bytes -> object
        self.decoder: Callable[[Response], Any] | None = None

    # -- construction helpers -------------------------------------------------------------------
    @classmethod
    def failed(cls, code: int, reason: str = "", *, url: str = "", meta: dict | None = None,
               method: str = "GET", error: BaseException | None = None) -> "Response":
        """A synthetic 7xx response for a failure below HTTP (AQ-14)."""
        label = codes.REASONS.get(code, "Request Failed")
        r = cls(code, f"{label}: {reason}" if reason else label, url=url, meta=meta, method=method)
        r.error = error
        return r

    # -- content --------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status_code < 400 and self.error is None

    @property
    def content_type(self) -> str:
        ct = self.headers.get("content-type", "")
        return ct.split(";", 1)[0].strip().lower()

    @property
    def encoding(self) -> str:
        ct = self.headers.get("content-type", "")
        for part in ct.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                return v.strip('"').strip()
        return "utf-8"

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.encoding, "replace")
        except (LookupError, UnicodeError):  # unknown charset, or a codec that refuses "replace" (idna)
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.content)

    @property
    def data(self) -> Any:
        """The body decoded by content type: JSON → object, XML-RPC → result, gRPC → message."""
        if self._data is _UNSET:
            self._data = self._decode()
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value

    def _decode(self) -> Any:
        if self.decoder is not None:
            return self.decoder(self)
        if codes.is_failure(self.status_code):
            return None
        ct = self.content_type
        if ct.endswith("json"):
            try:
                return self.json()
            except ValueError:
                return self.content
        if ct in ("text/xml", "application/xml") and b"<methodResponse" in self.content[:200]:
            from .rpc.xmlrpc import loads  # no DTD (entity bombs), bounded nesting
            try:
                return loads(self.content)[0]
            except xmlrpc.client.Fault as fault:
                self.error = fault
                return None
            except Exception:  # noqa: BLE001 - a body that is not XML-RPC after all fails in many ways
                return self.content  # as for JSON: the bytes, not a parser's exception
        return self.content

    @property
    def cookies(self) -> dict[str, str]:
        """name → value of the cookies this response sets."""
        if self._cookies is None:
            from http.cookies import CookieError, SimpleCookie
            out: dict[str, str] = {}
            for raw in self.headers.get_all("set-cookie", ()):
                c = SimpleCookie()
                try:
                    c.load(raw)
                except CookieError:
                    continue
                out.update((name, m.value) for name, m in c.items())
            self._cookies = out
        return self._cookies

    @cookies.setter
    def cookies(self, value: dict[str, str]) -> None:
        self._cookies = value

    # -- headers --------------------------------------------------------------------------------
    def get_header(self, name: str, default: Any = None) -> Any:
        return self.headers.get(name, default)

    @property
    def max_age(self) -> int:
        """Seconds this response may be cached, from Cache-Control or Expires (0: do not cache)."""
        cc = self.headers.get("cache-control")
        if cc:
            directives = [d.strip().lower() for d in cc.split(",")]
            if "no-store" in directives or "no-cache" in directives or "private" in directives:
                return 0
            for d in directives:
                for key in ("s-maxage=", "max-age="):
                    if d.startswith(key):
                        try:
                            return max(0, int(d[len(key):]))
                        except ValueError:
                            return 0
        expires = self.headers.get("expires")
        if expires:
            try:
                ts = email.utils.parsedate_to_datetime(expires).timestamp()
            except (TypeError, ValueError):
                return 0
            return max(0, int(ts - time.time()))
        return 0

    # -- status ---------------------------------------------------------------------------------
    def raise_for_status(self) -> None:
        if self.error is not None:
            raise HTTPError(f"{self.status_code} {self.reason} for {self.url}", self) from self.error
        if self.status_code >= 400:
            kind = "Failure" if codes.is_failure(self.status_code) else (
                "Client Error" if self.status_code < 500 else "Server Error")
            raise HTTPError(f"{self.status_code} {kind}: {self.reason} for {self.url}", self)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason}] {self.method} {self.url}>"


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "_UNSET"  # stays the one marker through pickle and copy (the result cache pickles responses)


_UNSET: Any = _Unset()
