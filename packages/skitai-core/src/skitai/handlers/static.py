"""Static files from one directory mounted at one URL point (``skitai.mount('/', 'static')``).

Construction (the router does this for every static mount)::

    StaticHandler(root, mount_point, max_ages, config=None, *, index_files=("index.html", "index.htm"),
                  cache_max_file=256 KiB, cache_max_bytes=32 MiB, cache_max_entries=4096, cache_max_open=64,
                  revalidate=1.0)

- ``root``: the directory (must exist); ``mount_point``: the URL point, e.g. ``"/"`` or ``"/v1"``;
  ``max_ages``: a ``MaxAges`` (or the ``config.max_ages`` dict), matched against the decoded URL path.
- ``config``: a ``skitai.config.Config`` or ``None``; ``config.extra["static"]`` may hold the keyword
  settings above as a dict (explicit keywords win).
- ``handler(exchange)`` is a ``Dispatch``: it answers in place (``None``) for small cached files, errors,
  redirects and HEAD, and returns a coroutine when the file goes out through ``exchange.sendfile``.
- ``handler.has(rel_path)``: would this handler answer with content (a file, or a directory holding an
  index file, or the slash redirect of such a directory)? ``rel_path`` is the raw request path with the
  mount point cut off (``""``, ``"/"``, ``"/css/a.css"``). The router uses it when an app shares the point.

Answers: GET and HEAD only (405 with ``Allow`` otherwise); 400 for a path that cannot name a file (see
``fspath``); 404 for anything else not found, hidden or outside the root; 301 from a directory to its
slash form (query kept); no directory listings. Validators, Range and max-age: see ``conditional``,
``ranges`` and ``maxage``. A resolved path is re-checked with ``os.stat`` at most every ``revalidate``
seconds (0: on every request). Files not kept in memory stay open (up to ``cache_max_open``, see
``sharedfile``) or are opened per request, and are ``fstat``-ed per request, so what is sent always matches
the headers.
"""
from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Mapping
from typing import IO, Any

from ..http.errors import error_page
from . import conditional, fspath, ranges
from .contenttype import content_type
from .filecache import Entry, FileCache
from .maxage import MaxAges
from .sharedfile import SharedFile

ALLOW = "GET, HEAD"
DEFAULTS: dict[str, Any] = {
    "index_files": ("index.html", "index.htm"),
    "cache_max_file": 256 * 1024,      # files up to this size are kept in memory ...
    "cache_max_bytes": 32 * 1024 * 1024,   # ... while all kept contents stay under this
    "cache_max_entries": 4096,         # resolved paths remembered (with or without content)
    "cache_max_open": 64,              # larger files kept open between requests (descriptors)
    "revalidate": 1.0,                 # seconds between os.stat checks of a remembered path
}
IDLE_OPEN = 60.0      # a large file kept open but not requested for this long gets closed ...
IDLE_SWEEP = 10.0     # ... by a sweep at most this often, run from a lookup
_monotonic = time.monotonic
log = logging.getLogger("skitai.static")
_CONDITIONAL = frozenset({"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "range"})
_REDIRECT = object()      # a directory without its slash, holding an index file
_BARE_DIR = object()      # a directory without its slash and without an index file (still redirected)


def _open_fd(real: str) -> tuple[int, os.stat_result]:
    """Open a regular file read-only, with its ``fstat``; O_NONBLOCK keeps a FIFO swapped in from blocking."""
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(real)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _open_regular(real: str) -> tuple[IO[bytes], os.stat_result]:
    fd, st = _open_fd(real)
    return os.fdopen(fd, "rb", buffering=0), st


def _cut_short(exchange: Any) -> None:
    """The file shrank while it was sent: an operational event, not a server bug, so a warning and no
    traceback; the connection (or stream) is cut, since only that tells the client the answer is short."""
    log.warning("%s %s: the file shrank while being sent; answer cut short",
                exchange.request.method, exchange.request.path)
    abort = getattr(exchange, "abort", None)
    if abort is not None:
        abort()


def _page(status: int, headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], bytes]:
    """The server's own error page, with headers an ``exchange.error()`` could not carry."""
    return headers + [("Content-Type", "text/html; charset=utf-8")], error_page(status)


class StaticHandler:
    def __init__(self, root: str, mount_point: str = "/", max_ages: MaxAges | Mapping[str, int] | None = None,
                 config: Any = None, **settings: Any) -> None:
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown static setting(s): {', '.join(sorted(unknown))}")
        extra = getattr(config, "extra", None) or {}
        merged = {**DEFAULTS, **(extra.get("static") or {}), **settings}
        if not os.path.isdir(root):
            raise ValueError(f"static root {root!r} is not a directory")
        self.root = os.path.realpath(root)
        self.mount_point = "/" + mount_point.strip("/")
        self._prefix = "" if self.mount_point == "/" else self.mount_point
        if max_ages is None:
            max_ages = getattr(config, "max_ages", None)
        self.max_ages = max_ages if isinstance(max_ages, MaxAges) else MaxAges(max_ages)
        self.index_files = tuple(merged["index_files"])
        self.revalidate = float(merged["revalidate"])
        if self.revalidate < 0:
            raise ValueError("revalidate must be 0 or more seconds")
        self.cache = FileCache(int(merged["cache_max_entries"]), int(merged["cache_max_bytes"]),
                               int(merged["cache_max_file"]), int(merged["cache_max_open"]))
        self._expires: dict[int, tuple[int, str]] = {}
        self._swept = time.monotonic()

    def __repr__(self) -> str:
        return f"<StaticHandler {self.mount_point} -> {self.root}>"

    def close(self) -> None:
        """Forget every remembered file and close the kept descriptors (sends in flight finish first)."""
        self.cache.clear()

    # -- lookup ------------------------------------------------------------------------------------------

    def has(self, rel_path: str) -> bool:
        try:
            found = self._lookup(self._prefix + rel_path, time.monotonic())
        except fspath.BadPath:
            return False
        return found is not None and found is not _BARE_DIR

    def _lookup(self, path: str, now: float) -> Entry | object | None:
        """The entry for a raw request path, a redirect marker for a directory without its slash, or None.

        A remembered entry is trusted for ``revalidate`` seconds; then the path is resolved again (a
        symlink may point elsewhere now) and the entry kept only if it still names the same, unchanged file.
        """
        entry = self.cache.get(path)
        if entry is not None and now - entry.checked < self.revalidate:
            return entry
        if now - self._swept > IDLE_SWEEP and self.cache.nopen:
            self._swept = now
            self.cache.close_idle(now - IDLE_OPEN)
            entry = self.cache.get(path)
        found = self._resolve(path)
        if type(found) is not tuple:
            if entry is not None:
                self.cache.discard(path)
            return found
        real, st, name, url_path = found
        if entry is not None and entry.real == real and entry.same_file(st):
            entry.checked = now
            return entry
        entry = self._load(real, content_type(name), self.max_ages.header(url_path), now)
        if entry is None:
            self.cache.discard(path)
        else:
            self.cache.put(path, entry)
        return entry

    def _resolve(self, path: str) -> tuple[str, os.stat_result, str, str] | object | None:
        """``(real path, stat, file name, decoded URL path)`` of the file to serve, a redirect marker, or None."""
        if not path.startswith(self._prefix):
            return None
        parsed = fspath.split(path[len(self._prefix):])
        if parsed is None:
            return None
        segments, trailing = parsed
        real = fspath.contain(self.root, *segments)
        st = self._stat(real)
        if st is None:
            return None
        name = segments[-1] if segments else ""
        if stat.S_ISDIR(st.st_mode):
            if not trailing:
                return _REDIRECT if self._index(segments) else _BARE_DIR
            found = self._index(segments)
            if found is None:
                return None
            real, st, name = found
        elif trailing or not stat.S_ISREG(st.st_mode):
            return None
        return real, st, name, self._prefix + "/" + "/".join(segments)

    @staticmethod
    def _stat(real: str | None) -> os.stat_result | None:
        if real is None:
            return None
        try:
            return os.stat(real)
        except (OSError, ValueError):
            return None

    def _index(self, segments: list[str]) -> tuple[str, os.stat_result, str] | None:
        for name in self.index_files:
            real = fspath.contain(self.root, *segments, name)
            st = self._stat(real)
            if st is not None and stat.S_ISREG(st.st_mode):
                return real, st, name
        return None

    def _load(self, real: str, ctype: str, cache_control: str | None, now: float) -> Entry | None:
        """Build an entry from the file itself: its content when small enough to keep, else maybe its
        descriptor, kept open for the requests to come."""
        body = shared = None
        try:
            fd, st = _open_fd(real)
            if self.cache.keeps(st.st_size):
                with os.fdopen(fd, "rb", buffering=0) as f:
                    body = f.read()
            elif self.cache.may_open():
                shared = SharedFile(fd)
            else:
                os.close(fd)
        except OSError:
            return None
        entry = self._entry(real, st, ctype, cache_control, body, now)
        entry.shared = shared
        return entry

    @staticmethod
    def _entry(real: str, st: os.stat_result, ctype: str, cache_control: str | None,
               body: bytes | None, now: float) -> Entry:
        size = st.st_size if body is None else len(body)
        etag = conditional.make_etag(size, st.st_mtime_ns)
        mtime = int(st.st_mtime)
        last_modified = conditional.http_date(mtime)
        validators = [("ETag", etag), ("Last-Modified", last_modified)]
        if cache_control:
            validators.append(("Cache-Control", cache_control))
        headers = [("Content-Type", ctype), ("Content-Length", str(size)), ("Accept-Ranges", "bytes"),
                   *validators]
        return Entry(real=real, size=size, mtime_ns=st.st_mtime_ns, ino=st.st_ino, etag=etag,
                     last_modified=last_modified, mtime=mtime, ctype=ctype, cache_control=cache_control,
                     headers=headers, validators=validators, body=body, checked=now)

    # -- answering ---------------------------------------------------------------------------------------

    def __call__(self, exchange):
        request = exchange.request
        method = request.method
        if method != "GET" and method != "HEAD":
            headers, body = _page(405, [("Allow", ALLOW)])
            exchange.respond(405, headers, body)
            return None
        path = request.path
        entry = self.cache.get(path)
        now = _monotonic()
        try:
            if entry is None or now - entry.checked >= self.revalidate:
                entry = self._lookup(path, now)
        except fspath.BadPath:
            exchange.error(400, "bad path")
            return None
        if entry is None:
            exchange.error(404)
            return None
        if entry is _REDIRECT or entry is _BARE_DIR:
            location = path + "/" + ("?" + request.query if request.query else "")
            headers, body = _page(301, [("Location", location)])
            exchange.respond(301, headers, body)
            return None
        if entry.body is not None:
            return self._answer(exchange, entry, None)
        try:
            if entry.shared is not None:
                st = os.fstat(entry.shared.fd)
                f = entry.shared.view()
            else:
                f, st = _open_regular(entry.real)
        except OSError:
            self.cache.discard(path)
            exchange.error(404)
            return None
        try:
            if not entry.same_file(st):         # changed since the last check: describe what is open now
                entry = self._entry(entry.real, st, entry.ctype, entry.cache_control, None, now)
                self.cache.put(path, entry)
            coro = self._answer(exchange, entry, f)
        except BaseException:
            f.close()
            raise
        if coro is None:
            f.close()
        return coro

    def _answer(self, exchange, entry: Entry, f: IO[bytes] | None):
        """The answer for a found file; returns a coroutine only when ``f`` must be sent."""
        headers = self._timed(entry) if entry.cache_control else entry.headers
        for name, _ in exchange.request.headers.items():     # one scan: a plain GET looks nothing up
            if name in _CONDITIONAL:
                return self._conditional(exchange, entry, f, headers)
        return self._deliver(exchange, entry, f, 200, headers, 0, entry.size)

    def _conditional(self, exchange, entry: Entry, f: IO[bytes] | None, headers: list[tuple[str, str]]):
        """Preconditions (304, 412), then Range (206, 416) and If-Range."""
        request = exchange.request
        hdrs = request.headers
        status = conditional.precondition(hdrs, entry.etag, entry.last_modified, entry.mtime)
        if status == 304:
            exchange.respond(304, entry.validators)
            return None
        if status == 412:
            exchange.error(412)
            return None
        rng = hdrs.get("range") if request.method == "GET" else None
        if rng is None or not conditional.range_applies(hdrs.get("if-range"), entry.etag, entry.mtime):
            return self._deliver(exchange, entry, f, 200, headers, 0, entry.size)
        try:
            selected = ranges.select(rng, entry.size)
        except ranges.NotSatisfiable:
            page, body = _page(416, [("Content-Range", f"bytes */{entry.size}")])
            exchange.respond(416, page, body)
            return None
        if selected is None:
            return self._deliver(exchange, entry, f, 200, headers, 0, entry.size)
        start, stop = selected
        headers = [h for h in headers if h[0] != "Content-Length"]
        headers += [("Content-Length", str(stop - start)), ("Content-Range", f"bytes {start}-{stop - 1}/{entry.size}")]
        return self._deliver(exchange, entry, f, 206, headers, start, stop)

    def _deliver(self, exchange, entry: Entry, f: IO[bytes] | None, status: int,
                 headers: list[tuple[str, str]], start: int, stop: int):
        """Bytes ``start:stop`` of the file: none for HEAD, from memory, or a coroutine sending ``f``."""
        if exchange.request.method == "HEAD":
            exchange.respond(status, headers)
            return None
        if f is None:
            body = entry.body if stop - start == entry.size else entry.body[start:stop]
            exchange.respond(status, headers, body)
            return None
        exchange.start(status, headers)
        count = stop - start
        offer = getattr(exchange, "offer_file", None)      # HTTP/1.1: head and file at once, mostly whole
        if offer is not None and count:
            try:
                left = offer(f, start, count)
            except EOFError:
                _cut_short(exchange)
                return None
            if not left:
                return None         # the caller closes f
            start += count - left
            count = left
        return self._send(exchange, f, start, count)

    @staticmethod
    async def _send(exchange, f: IO[bytes], offset: int, count: int) -> None:
        """The rest of the bytes by ``exchange.sendfile``; a client going away ends it (the server copes)."""
        with f:
            if count:
                try:
                    await exchange.sendfile(f, offset, count)
                except EOFError:
                    _cut_short(exchange)
                    return
            exchange.end()

    def _timed(self, entry: Entry) -> list[tuple[str, str]]:
        """The 200 headers plus ``Expires`` = now + max-age, rebuilt at most once a second per entry."""
        now = int(time.time())
        if entry.timed_at != now:
            seconds = int(entry.cache_control[8:])            # "max-age=N"
            memo = self._expires.get(seconds)
            if memo is None or memo[0] != now:
                memo = self._expires[seconds] = (now, conditional.http_date(now + seconds))
            entry.timed = entry.headers + [("Expires", memo[1])]
            entry.timed_at = now
        return entry.timed
