"""What a ``was`` call gives back: a ``Result`` (one response) or ``Results`` (a map call).

A result delegates every attribute to the aquests response (``data``, ``status_code``, ...) and adds
``status`` (SK-54): 0 initial, 1 timeout, 2 exception (code >= 700 or a database error), 3 normal.
"""
from __future__ import annotations

from typing import Any

from aquests import codes
from aquests.response import Response

INITIAL, TIMEOUT, EXCEPTION, NORMAL = 0, 1, 2, 3
MAX_CACHED_BYTES = 10 * 1024 * 1024     # a result whose bodies add up to more is not kept (the cache counts
                                        # entries, not bytes: this keeps ``maxobj`` entries from holding GBs)


def classify(response: Any) -> int:
    """The ``status`` of a finished response. HTTP 4xx/5xx are answers, so they are NORMAL (SK-43)."""
    code = getattr(response, "status_code", None) or 0
    if code == codes.TIMEOUT:
        return TIMEOUT
    if code >= 700 or getattr(response, "expt_class", None) or getattr(response, "error", None) is not None:
        return EXCEPTION          # a network/database failure, an XML-RPC Fault, a gRPC error status
    return NORMAL


def body_size(result: Any) -> int:
    """Bytes of the response bodies a result holds (every member's for a map)."""
    members = getattr(result, "results", None)
    if members is not None:
        return sum(body_size(r) for r in members)
    content = getattr(getattr(result, "response", result), "content", None)
    return len(content) if isinstance(content, (bytes, bytearray, str)) else 0


def keep(cache: Any, ident: str | None, result: Any, timeout: float, normal: bool) -> bool:
    """Store ``result`` under ``ident`` for ``timeout`` seconds when it is normal and not over
    ``MAX_CACHED_BYTES``; ``timeout <= 0`` expires it."""
    if cache is None or ident is None:
        return False
    if timeout <= 0:
        cache.expire(ident)
        return False
    if normal and body_size(result) > MAX_CACHED_BYTES:
        return False
    return normal and cache.put(ident, result, timeout)


class WasTimeout(TimeoutError):
    """Raised by ``reraise`` when a call did not finish within its wait timeout."""


class Result:
    """One finished call. ``result.data``, ``result.status_code``... come from the response."""

    __slots__ = ("response", "status", "node", "_ident", "_cache")

    def __init__(self, response: Any, status: int | None = None, *, node: str | None = None,
                 ident: str | None = None, cache: Any = None) -> None:
        self.response = response
        self.status = classify(response) if status is None else status
        self.node = node if node is not None else (getattr(response, "meta", None) or {}).get("node")
        self._ident = ident
        self._cache = cache

    @classmethod
    def timed_out(cls, reason: str, *, url: str = "", node: str | None = None, ident: str | None = None,
                  cache: Any = None) -> Result:
        return cls(Response.failed(codes.TIMEOUT, reason, url=url), TIMEOUT, node=node, ident=ident, cache=cache)

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__":      # pickle and copy ask for hooks before any slot is set (the result cache)
            raise AttributeError(name)
        return getattr(self.response, name)

    def __repr__(self) -> str:
        return f"<Result status={self.status} code={getattr(self.response, 'status_code', None)}>"

    def is_normal(self) -> bool:
        return self.status == NORMAL

    def reraise(self) -> Result:
        """Raise when the call did not finish normally (status 1 or 2); a normal result is returned.

        HTTP 4xx/5xx answers are normal results (status 3, SK-53): check ``status_code`` for those.
        """
        if self.status == TIMEOUT:
            raise WasTimeout(getattr(self.response, "reason", "") or "timed out")
        if self.status != NORMAL:
            raise_for_status = getattr(self.response, "raise_for_status", None)
            if raise_for_status is not None:
                raise_for_status()
            raise RuntimeError(f"{getattr(self.response, 'status_code', '')} "
                               f"{getattr(self.response, 'expt_str', None) or getattr(self.response, 'reason', '')}")
        return self

    def cache(self, timeout: float = 300) -> bool:
        """Keep this result for ``timeout`` seconds (only a normal one); 0 or less expires it."""
        return keep(self._cache, self._ident, self, timeout, self.status == NORMAL)


class Results:
    """The results of a map call, one per member, iterable."""

    def __init__(self, results: list[Result], *, ident: str | None = None, cache: Any = None) -> None:
        self.results = results
        self._ident = ident
        self._cache = cache

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> Result:
        return self.results[i]

    @property
    def status_code(self) -> list[int]:
        return [r.status_code for r in self.results]

    @property
    def status(self) -> list[int]:
        return [r.status for r in self.results]

    @property
    def data(self) -> list[Any]:
        return [r.data for r in self.results]

    def is_normal(self) -> bool:
        return all(r.status == NORMAL for r in self.results)

    def reraise(self) -> Results:
        for r in self.results:
            r.reraise()
        return self

    def cache(self, timeout: float = 300) -> bool:
        """Keep every member's result (only when all are normal); 0 or less expires them."""
        return keep(self._cache, self._ident, self, timeout, bool(self.results) and self.is_normal())
