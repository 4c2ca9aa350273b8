"""HTTP response caching of ``was`` GET calls when ``skitai.enable_cachefs(...)`` is on (SK-56).

A 200 answer to a GET that says it may be cached (``Cache-Control: max-age``/``s-maxage`` or ``Expires``,
and not ``no-store``/``no-cache``/``private``, qualified forms like ``private="x"`` included) is kept for
that long: in memory up to ``memmax`` bytes, then on disk under ``path`` up to ``diskmax`` bytes
(``enable_cachefs`` sizes are in MB; an entry's headers count as well as its body). A request carrying
credentials (``auth=``, ``Authorization``, ``Cookie``) is only cached when the answer says ``public``; an
answer that sets a cookie (``Set-Cookie``) or says ``Vary: *`` is never cached, since it belongs to one
client; bodies over 10 MB are never cached (SK-60). An answer with ``Vary: <headers>`` is only given to a
later call that sends the same values of those headers. A cache write that fails (disk full, the
directory removed) is logged and skipped: the call still gets its answer. A later GET of the same URL that does not ask for a
fresh copy (no ``Cache-Control: no-cache``/``max-age=0``, no ``Pragma: no-cache``, ``use_cache`` left on)
is answered from the cache without any network I/O: a synthetic ``200`` with
``X-Skitaid-Cache-Lookup: MEM_HIT`` (memory) or ``HIT`` (disk).

Keys are the request URL, hashed. Bodies, not requests, are the unit of size; the oldest entries make room.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from aquests.response import Response

LOOKUP_HEADER = "X-Skitaid-Cache-Lookup"
MAX_OBJECT = 10 * 1024 * 1024       # bytes: larger bodies are not cached
MB = 1024 * 1024
ENTRY_OVERHEAD = 256                # bytes charged per entry on top of its body and headers (key, bookkeeping)
_NEVER = ("no-store", "no-cache", "private")

log = logging.getLogger("skitai.app")


def wants_fresh(headers: dict[str, str]) -> bool:
    """True when the outgoing headers ask for a fresh answer (the cache must not answer)."""
    for name, value in headers.items():
        low, v = name.lower(), str(value).lower()
        if low == "pragma" and "no-cache" in v:
            return True
        if low == "cache-control" and ("no-cache" in v or "max-age=0" in v or "no-store" in v):
            return True
    return False


def has_credentials(headers: dict[str, str], auth: Any) -> bool:
    return auth is not None or any(k.lower() in ("authorization", "cookie") for k in headers)


def refused(response: Any) -> str | None:
    """Why an answer must not be shared with other callers (None: it may be).

    aquests' ``max_age`` already honours the plain directives; the qualified forms
    (``private="Set-Cookie"``), a cookie being set and ``Vary: *`` mean the answer is one client's.
    """
    headers = response.headers
    directives = [d.strip().lower() for d in (headers.get("cache-control") or "").split(",")]
    for d in directives:
        name = d.split("=", 1)[0].strip()
        if name in _NEVER:
            return f"Cache-Control: {d}"
    if "set-cookie" in headers:
        return "Set-Cookie"
    if any(v.strip() == "*" for v in _vary_names(headers)):
        return "Vary: *"
    return None


def _vary_names(headers: Any) -> list[str]:
    return [n.strip().lower() for n in (headers.get("vary") or "").split(",") if n.strip()]


def _request_values(names: list[str], request: dict[str, str] | None) -> dict[str, str]:
    """The calling request's values of the headers an answer varies on ("" when it sent none)."""
    low = {str(k).lower(): str(v) for k, v in (request or {}).items()}
    return {n: low.get(n, "") for n in names}


def _key(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()


class ResponseCache:
    """Memory then disk, both size-bounded; thread-safe (one lock)."""

    def __init__(self, memmax: int = 0, diskmax: int = 0, path: str | None = None) -> None:
        if memmax < 0 or diskmax < 0:
            raise ValueError("cachefs sizes must be 0 or more bytes")
        self.memmax, self.diskmax = memmax, (diskmax if path else 0)
        self.path = path
        # key -> (until, status, headers, body, vary values, cost in bytes)
        self._mem: OrderedDict[str, tuple[float, int, list, bytes, dict, int]] = OrderedDict()
        self._mem_bytes = 0
        self._lock = threading.Lock()
        self.hits = {"MEM_HIT": 0, "HIT": 0}
        if self.diskmax:
            os.makedirs(path, exist_ok=True)

    @classmethod
    def from_config(cls, cachefs: dict[str, Any] | None, varpath: str | None) -> ResponseCache | None:
        """The cache of ``Config.cachefs`` (``enable_cachefs``, sizes in MB), or None when it is off."""
        if not cachefs or not (cachefs.get("memmax") or cachefs.get("diskmax")):
            return None
        path = cachefs.get("path") or (os.path.join(varpath, "cachefs") if varpath else None)
        return cls(int(cachefs.get("memmax") or 0) * MB, int(cachefs.get("diskmax") or 0) * MB, path)

    # -- lookup ----------------------------------------------------------------------------------
    def get(self, url: str, headers: dict[str, str] | None = None) -> Response | None:
        """The cached answer for ``url``, when it is fresh and its ``Vary`` headers match ``headers``."""
        key, now = _key(url), time.time()
        with self._lock:
            entry = self._mem.get(key)
            if entry is not None:
                if entry[0] <= now:
                    self._drop_mem(key)
                elif entry[4] != _request_values(list(entry[4]), headers):
                    return None
                else:
                    self.hits["MEM_HIT"] += 1
                    return _answer(url, entry, "MEM_HIT")
        entry = self._read_disk(key, now)
        if entry is None or entry[4] != _request_values(list(entry[4]), headers):
            return None
        with self._lock:
            self.hits["HIT"] += 1
        return _answer(url, entry, "HIT")

    def put(self, url: str, response: Any, private: bool = False, headers: dict[str, str] | None = None) -> bool:
        """Keep a cacheable 200 answer for its ``max_age``; ``private``: the request carried credentials,
        so only a ``public`` answer is kept; ``headers``: the request's, for the answer's ``Vary``.
        Returns True when kept."""
        age = getattr(response, "max_age", 0) if getattr(response, "status_code", 0) == 200 else 0
        if not age or getattr(response, "stream", None) is not None or refused(response):
            return False
        if private and "public" not in (response.headers.get("cache-control") or "").lower():
            return False
        content = response.content if isinstance(response.content, bytes) else b""
        if len(content) > MAX_OBJECT:
            return False
        kept = [(k, v) for k, v in response.headers.items() if k.lower() != LOOKUP_HEADER.lower()]
        vary = _request_values(_vary_names(response.headers), headers)
        entry = (time.time() + age, 200, kept, content, vary, _cost(url, kept, content, vary))
        key = _key(url)
        if entry[5] <= self.memmax:
            with self._lock:
                self._drop_mem(key)
                while self._mem and self._mem_bytes + entry[5] > self.memmax:
                    self._drop_mem(next(iter(self._mem)))
                self._mem[key] = entry
                self._mem_bytes += entry[5]
            return True
        try:
            return self._write_disk(key, entry)
        except OSError as exc:       # a cache that cannot write must not fail the call it would have kept
            log.warning("cachefs: could not keep %s on disk: %s", url, exc)
            return False

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"memory_entries": len(self._mem), "memory_bytes": self._mem_bytes, "memmax": self.memmax,
                    "diskmax": self.diskmax, "mem_hits": self.hits["MEM_HIT"], "disk_hits": self.hits["HIT"]}

    # -- storage ---------------------------------------------------------------------------------
    def _drop_mem(self, key: str) -> None:
        entry = self._mem.pop(key, None)
        if entry is not None:
            self._mem_bytes -= entry[5]

    def _files(self, key: str) -> tuple[str, str]:
        base = os.path.join(self.path or "", key)
        return base + ".json", base + ".body"

    def _write_disk(self, key: str, entry: tuple) -> bool:
        if not self.diskmax or entry[5] > self.diskmax:
            return False
        os.makedirs(self.path, exist_ok=True)      # it may have been cleaned away under us
        self._make_disk_room(entry[5])
        meta_file, body_file = self._files(key)
        with open(body_file + ".tmp", "wb") as f:
            f.write(entry[3])
        with open(meta_file + ".tmp", "w") as f:
            json.dump({"until": entry[0], "status": entry[1], "headers": entry[2], "vary": entry[4]}, f)
        os.replace(body_file + ".tmp", body_file)
        os.replace(meta_file + ".tmp", meta_file)
        return True

    def _read_disk(self, key: str, now: float) -> tuple | None:
        if not self.diskmax:
            return None
        meta_file, body_file = self._files(key)
        try:
            with open(meta_file) as f:
                meta = json.load(f)
            if meta["until"] <= now:
                raise FileNotFoundError(meta_file)
            with open(body_file, "rb") as f:
                body = f.read()
        except (OSError, ValueError, KeyError):
            return None
        return meta["until"], meta["status"], [tuple(h) for h in meta["headers"]], body, meta.get("vary") or {}

    def _make_disk_room(self, size: int) -> None:
        """Remove the oldest entries until ``size`` more bytes fit under ``diskmax`` (body and metadata
        files both count, so many empty bodies cannot fill the disk)."""
        bodies = []
        for name in os.listdir(self.path):
            if name.endswith(".body"):
                full = os.path.join(self.path, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                meta = os.path.getsize(full[:-5] + ".json") if os.path.exists(full[:-5] + ".json") else 0
                bodies.append((st.st_mtime, st.st_size + meta + ENTRY_OVERHEAD, full))
        total = sum(b[1] for b in bodies)
        for _, length, full in sorted(bodies):
            if total + size <= self.diskmax:
                break
            for f in (full, full[:-5] + ".json"):
                try:
                    os.remove(f)
                except OSError:
                    pass
            total -= length


def _cost(url: str, headers: list, content: bytes, vary: dict[str, str]) -> int:
    """The bytes an entry holds: body, headers and bookkeeping (an empty body is not free)."""
    return (len(content) + len(url) + ENTRY_OVERHEAD + sum(len(k) + len(v) for k, v in headers)
            + sum(len(k) + len(v) for k, v in vary.items()))


def _answer(url: str, entry: tuple, how: str) -> Response:
    headers = list(entry[2]) + [(LOOKUP_HEADER, how)]
    return Response(entry[1], "OK", headers=headers, content=entry[3], url=url, method="GET",
                    meta={"cache": how})
