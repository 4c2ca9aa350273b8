"""HTTP response caching of ``was`` GET calls when ``skitai.enable_cachefs(...)`` is on (SK-56).

A 200 answer to a GET that says it may be cached (``Cache-Control: max-age``/``s-maxage`` or ``Expires``,
and not ``no-store``/``no-cache``/``private``) is kept for that long: in memory up to ``memmax`` bytes,
then on disk under ``path`` up to ``diskmax`` bytes (``enable_cachefs`` sizes are in MB). A request
carrying credentials (``auth=``, ``Authorization``, ``Cookie``) is only cached when the answer says
``public``; bodies over 10 MB are never cached (SK-60). A later GET of the same URL that does not ask for a
fresh copy (no ``Cache-Control: no-cache``/``max-age=0``, no ``Pragma: no-cache``, ``use_cache`` left on)
is answered from the cache without any network I/O: a synthetic ``200`` with
``X-Skitaid-Cache-Lookup: MEM_HIT`` (memory) or ``HIT`` (disk).

Keys are the request URL, hashed. Bodies, not requests, are the unit of size; the oldest entries make room.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Any

from aquests.response import Response

LOOKUP_HEADER = "X-Skitaid-Cache-Lookup"
MAX_OBJECT = 10 * 1024 * 1024       # bytes: larger bodies are not cached
MB = 1024 * 1024


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


def _key(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()


class ResponseCache:
    """Memory then disk, both size-bounded; thread-safe (one lock)."""

    def __init__(self, memmax: int = 0, diskmax: int = 0, path: str | None = None) -> None:
        if memmax < 0 or diskmax < 0:
            raise ValueError("cachefs sizes must be 0 or more bytes")
        self.memmax, self.diskmax = memmax, (diskmax if path else 0)
        self.path = path
        self._mem: OrderedDict[str, tuple[float, int, list, bytes]] = OrderedDict()
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
    def get(self, url: str) -> Response | None:
        key, now = _key(url), time.time()
        with self._lock:
            entry = self._mem.get(key)
            if entry is not None:
                if entry[0] > now:
                    self.hits["MEM_HIT"] += 1
                    return _answer(url, entry, "MEM_HIT")
                self._drop_mem(key)
        entry = self._read_disk(key, now)
        if entry is None:
            return None
        with self._lock:
            self.hits["HIT"] += 1
        return _answer(url, entry, "HIT")

    def put(self, url: str, response: Any, private: bool = False) -> bool:
        """Keep a cacheable 200 answer for its ``max_age``; ``private``: the request carried credentials,
        so only a ``public`` answer is kept. Returns True when kept."""
        age = getattr(response, "max_age", 0) if getattr(response, "status_code", 0) == 200 else 0
        if not age or getattr(response, "stream", None) is not None:
            return False
        if private and "public" not in (response.headers.get("cache-control") or "").lower():
            return False
        content = response.content if isinstance(response.content, bytes) else b""
        if len(content) > MAX_OBJECT:
            return False
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != LOOKUP_HEADER.lower()]
        entry = (time.time() + age, 200, headers, content)
        key = _key(url)
        if len(content) <= self.memmax:
            with self._lock:
                self._drop_mem(key)
                while self._mem and self._mem_bytes + len(content) > self.memmax:
                    self._drop_mem(next(iter(self._mem)))
                self._mem[key] = entry
                self._mem_bytes += len(content)
            return True
        return self._write_disk(key, entry)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"memory_entries": len(self._mem), "memory_bytes": self._mem_bytes, "memmax": self.memmax,
                    "diskmax": self.diskmax, "mem_hits": self.hits["MEM_HIT"], "disk_hits": self.hits["HIT"]}

    # -- storage ---------------------------------------------------------------------------------
    def _drop_mem(self, key: str) -> None:
        entry = self._mem.pop(key, None)
        if entry is not None:
            self._mem_bytes -= len(entry[3])

    def _files(self, key: str) -> tuple[str, str]:
        base = os.path.join(self.path or "", key)
        return base + ".json", base + ".body"

    def _write_disk(self, key: str, entry: tuple) -> bool:
        if not self.diskmax or len(entry[3]) > self.diskmax:
            return False
        self._make_disk_room(len(entry[3]))
        meta_file, body_file = self._files(key)
        with open(body_file + ".tmp", "wb") as f:
            f.write(entry[3])
        with open(meta_file + ".tmp", "w") as f:
            json.dump({"until": entry[0], "status": entry[1], "headers": entry[2]}, f)
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
        return meta["until"], meta["status"], [tuple(h) for h in meta["headers"]], body

    def _make_disk_room(self, size: int) -> None:
        """Remove expired, then the oldest bodies until ``size`` more bytes fit under ``diskmax``."""
        bodies = []
        for name in os.listdir(self.path):
            if name.endswith(".body"):
                full = os.path.join(self.path, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                bodies.append((st.st_mtime, st.st_size, full))
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


def _answer(url: str, entry: tuple, how: str) -> Response:
    headers = list(entry[2]) + [(LOOKUP_HEADER, how)]
    return Response(entry[1], "OK", headers=headers, content=entry[3], url=url, method="GET",
                    meta={"cache": how})
