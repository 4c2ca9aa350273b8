"""Result cache (inventory SK-55): keep normal results for a while, keyed by request identity.

Per process and in memory. One lock guards every access, so the loop and the server's worker
threads may share one instance. When the cache is full, the entries closest to expiry (about
20 % of ``maxobj``) make room; expired entries are dropped whenever they are looked up.
"""
from __future__ import annotations

import hashlib
import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

DEFAULT_MAXOBJ = 2000
EVICT_FRACTION = 0.2


def make_ident(cluster: str | None, uri: str, reqtype: str, method: str, params: Any = None,
               *, mapped: bool = False) -> str:
    """The identity of a request: ``<cluster>/<uri>/<reqtype>/<method>/<params>`` (+ ``/M`` for map).

    Requests sent to a plain address (no cluster) have no cluster prefix.
    """
    parts = [uri, reqtype, method, "" if params is None else repr(params)]
    if cluster:
        parts.insert(0, cluster.lstrip("@"))
    ident = "/".join(str(p) for p in parts)
    return ident + "/M" if mapped else ident


def is_normal(result: Any) -> bool:
    """True for a result worth caching: it finished normally (SK-54 status 3, no 7xx, no DB error).

    Objects with an ``is_normal()`` method (the server's results) decide for themselves.

    A list or tuple of results (a map) is normal when every member is.
    """
    if isinstance(result, (list, tuple)):
        return bool(result) and all(is_normal(r) for r in result)
    check = getattr(result, "is_normal", None)
    if callable(check):
        return bool(check())
    code = getattr(result, "status_code", None)
    if not isinstance(code, int) or code >= 700:
        return False
    return not getattr(result, "expt_class", None)


class ResultCache:
    """A size-bounded TTL cache of results (thread-safe)."""

    def __init__(self, maxobj: int = DEFAULT_MAXOBJ, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Any]] = {}
        self._clock = clock
        self._hits = 0
        self._requests = 0
        self.maxobj = maxobj

    @property
    def maxobj(self) -> int:
        return self._maxobj

    @maxobj.setter
    def maxobj(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"maxobj must be a positive int, not {value!r}")
        self._maxobj = value

    @staticmethod
    def key(ident: str) -> str:
        """The storage key of an identity string (a short digest, not a security hash)."""
        return hashlib.blake2b(ident.encode("utf8"), digest_size=16).hexdigest()

    def get(self, ident: str) -> Any | None:
        """The cached result for ``ident``, or None (counts a request, and a hit when found)."""
        key = self.key(ident)
        now = self._clock()
        with self._lock:
            self._requests += 1
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            self._hits += 1
            return entry[1]

    def put(self, ident: str, result: Any, timeout: float = 300) -> bool:
        """Cache ``result`` for ``timeout`` seconds; ``timeout <= 0`` expires the entry instead.

        Returns True when stored. Results that did not finish normally are never stored.
        """
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise TypeError(f"timeout must be a number of seconds, not {timeout!r}")
        if timeout <= 0:
            self.expire(ident)
            return False
        if not is_normal(result):
            return False
        key = self.key(ident)
        now = self._clock()
        with self._lock:
            if key not in self._entries and len(self._entries) >= self._maxobj:
                self._make_room(now)
            self._entries[key] = (now + timeout, result)
        return True

    def expire(self, ident: str) -> None:
        with self._lock:
            self._entries.pop(self.key(ident), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _make_room(self, now: float) -> None:
        """Drop expired entries, then the ~20 % with the least remaining lifetime (lock held)."""
        expired = [k for k, (until, _) in self._entries.items() if until <= now]
        for k in expired:
            del self._entries[k]
        if len(self._entries) < self._maxobj:
            return
        count = max(1, int(self._maxobj * EVICT_FRACTION))
        for k in heapq.nsmallest(count, self._entries, key=lambda k: self._entries[k][0]):
            del self._entries[k]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, ident: str) -> bool:
        key = self.key(ident)
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and entry[0] > self._clock()

    def stats(self) -> dict[str, Any]:
        """Numbers for the status page: current_cached, hits, requests, ratio (hits/requests, %)."""
        with self._lock:
            hits, requests, current = self._hits, self._requests, len(self._entries)
        ratio = round(hits * 100.0 / requests, 1) if requests else 0.0
        return {"current_cached": current, "maxobj": self._maxobj, "hits": hits,
                "requests": requests, "ratio": ratio}
