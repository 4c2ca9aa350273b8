"""Result cache (inventory SK-55): keep normal results for a while, keyed by request identity.

Per process and in memory. One lock guards every access, so the loop and the server's worker
threads may share one instance. Two bounds: ``maxobj`` entries (when full, the entries closest to
expiry, about 20 % of ``maxobj``, make room) and ``max_bytes`` of stored results in all (64 MiB by
default: past it the least recently used entries go). Expired entries are dropped whenever they
are looked up.

Results are stored pickled, and every hit unpickles a fresh copy: a caller that changes
``result.data`` (appends to the list, sets a key of the dict) changes its own copy, never what the
next caller gets. Pickling was chosen over ``copy.deepcopy`` on each hit because it is paid once
per store, its size is the exact byte count the budget needs, and ``pickle.loads`` runs in C (a
hit on a typical JSON or row-list result is several times faster than a deep copy). A result
that cannot be pickled (one holding a socket or a lambda) is not cached: ``put`` says False.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import pickle
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DEFAULT_MAXOBJ = 2000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
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


# -- a result knows the cache that keeps it: pickled, that reference stays the same cache

_caches: weakref.WeakValueDictionary[int, ResultCache] = weakref.WeakValueDictionary()
_serials = itertools.count(1)


def _cache_by_serial(serial: int) -> ResultCache | None:
    return _caches.get(serial)


class ResultCache:
    """A TTL cache of results bounded in entries and in bytes (thread-safe); hits are copies."""

    def __init__(self, maxobj: int = DEFAULT_MAXOBJ, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        # key -> (expiry, pickled result), least recently used first
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._clock = clock
        self._hits = 0
        self._requests = 0
        self._serial = next(_serials)
        _caches[self._serial] = self
        self.maxobj = maxobj
        self.max_bytes = max_bytes

    def __reduce__(self) -> tuple:
        return _cache_by_serial, (self._serial,)

    @property
    def maxobj(self) -> int:
        return self._maxobj

    @maxobj.setter
    def maxobj(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"maxobj must be a positive int, not {value!r}")
        self._maxobj = value

    @property
    def max_bytes(self) -> int:
        """Bytes the stored (pickled) results may take in all; lowering it evicts at once."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"max_bytes must be a positive int, not {value!r}")
        self._max_bytes = value
        with self._lock:
            self._trim()

    @property
    def bytes(self) -> int:
        """Bytes the stored results take now."""
        return self._bytes

    @staticmethod
    def key(ident: str) -> str:
        """The storage key of an identity string (a short digest, not a security hash)."""
        return hashlib.blake2b(ident.encode("utf8"), digest_size=16).hexdigest()

    def get(self, ident: str) -> Any | None:
        """A copy of the cached result for ``ident``, or None (counts a request, and a hit when found)."""
        key = self.key(ident)
        now = self._clock()
        with self._lock:
            self._requests += 1
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                self._drop(key)
                return None
            self._hits += 1
            self._entries.move_to_end(key)
        return pickle.loads(entry[1])

    def put(self, ident: str, result: Any, timeout: float = 300) -> bool:
        """Cache ``result`` for ``timeout`` seconds; ``timeout <= 0`` expires the entry instead.

        Returns True when stored. Results that did not finish normally are never stored, nor
        those that cannot be pickled or are larger than ``max_bytes`` on their own.
        """
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise TypeError(f"timeout must be a number of seconds, not {timeout!r}")
        if timeout <= 0:
            self.expire(ident)
            return False
        if not is_normal(result):
            return False
        try:
            frozen = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
            return False
        key = self.key(ident)
        if len(frozen) > self._max_bytes:
            self.expire(ident)
            return False
        now = self._clock()
        with self._lock:
            if key in self._entries:
                self._drop(key)
            elif len(self._entries) >= self._maxobj:
                self._make_room(now)
            self._entries[key] = (now + timeout, frozen)
            self._bytes += len(frozen)
            self._trim()
        return True

    def expire(self, ident: str) -> None:
        with self._lock:
            self._drop(self.key(ident))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])

    def _trim(self) -> None:
        """Drop least recently used entries until the bytes fit ``max_bytes`` (lock held)."""
        while self._bytes > self._max_bytes and self._entries:
            self._bytes -= len(self._entries.popitem(last=False)[1][1])

    def _make_room(self, now: float) -> None:
        """Drop expired entries, then the ~20 % with the least remaining lifetime (lock held)."""
        expired = [k for k, (until, _) in self._entries.items() if until <= now]
        for k in expired:
            self._drop(k)
        if len(self._entries) < self._maxobj:
            return
        count = max(1, int(self._maxobj * EVICT_FRACTION))
        for k in heapq.nsmallest(count, self._entries, key=lambda k: self._entries[k][0]):
            self._drop(k)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, ident: str) -> bool:
        key = self.key(ident)
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and entry[0] > self._clock()

    def stats(self) -> dict[str, Any]:
        """Numbers for the status page: current_cached, maxobj, bytes, max_bytes, hits, requests and
        ratio (hits/requests, %)."""
        with self._lock:
            hits, requests, current, size = self._hits, self._requests, len(self._entries), self._bytes
        ratio = round(hits * 100.0 / requests, 1) if requests else 0.0
        return {"current_cached": current, "maxobj": self._maxobj, "bytes": size, "max_bytes": self._max_bytes,
                "hits": hits, "requests": requests, "ratio": ratio}
