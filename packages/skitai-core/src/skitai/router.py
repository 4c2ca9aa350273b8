"""The dispatch callable the server calls for every request: virtual host, then mount point.

Virtual hosts (SK-02, SK-31): the Host name (no port, lower-case) is matched exactly first, then against
rules starting with "." as a suffix (``.site.com`` matches ``a.site.com`` and ``site.com``; the longest
wins), then the ``default`` (or ``*``) host. No match and no default: 404.

Mounts (SK-27): the longest mount point matching on whole path segments wins (``/t1`` never catches
``/t1x``). ``/app`` answers 301 to ``/app/`` when an app is mounted at ``/app``. A static directory and an
app at the same point: an existing file comes from the directory, everything else goes to the app. A
static directory alone answers itself (404 for a missing file, 405 for methods other than GET/HEAD).

Paths (``clean``): a path is used as it came unless it holds a ``%`` or a segment starting with ``.``; such a
path is checked once, before any handler sees it. Dot segments (``.``, ``..``, also written ``%2e``) are removed
as RFC 3986 5.2.4 says, from the percent-decoded path; a ``..`` that would climb above ``/`` is a 400. The mount
is then chosen on that clean path, which becomes ``request.path`` (re-quoted), so ``SCRIPT_NAME`` +
``PATH_INFO`` always name the path that chose the mount; ``request.target`` keeps what the client sent. One
rule covers percent-encoding as well: the raw path (its own dot segments removed, ``%2F`` still not a slash)
must pick the same mount as the decoded one, else 400. So ``/app%2Fadmin`` or ``/ap%70/x`` beside mounts at
``/app/admin`` or ``/app``, and ``/app/..%2Fadmin`` (one segment raw, ``..`` decoded), never reach a mount
their raw form does not name.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

log = logging.getLogger("skitai.server")

DEFAULT_HOSTS = ("default", "*")
HOST_CACHE_MAX = 1024           # distinct Host names remembered; any client can send any name


@dataclass
class Route:
    """What is mounted at one point of one host: a static directory and/or an app (or proxy) handler."""

    point: str
    static: Any = None        # has(rel_path) -> bool, and a dispatch call
    handler: Any = None       # a dispatch call (WSGI app, plugin adapter, reverse proxy)


class MountTable:
    """The mount points of one virtual host."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.depth = 0            # segments of the deepest point: longer paths are cut there first

    def add(self, point: str, handler: Any, static: bool = False, label: str = "") -> None:
        key = quote(point.rstrip("/") or "/", safe="/:@!$&'()*+,;=-._~%")
        self.depth = max(self.depth, key.count("/") if key != "/" else 0)
        route = self.routes.setdefault(key, Route(key))
        slot = "static" if static else "handler"
        if getattr(route, slot) is not None:
            log.warning("mount collision at %s%s: the later %s mount wins", label, point, slot)
        setattr(route, slot, handler)

    def match(self, path: str) -> tuple[Route, str] | None:
        """The route for a raw request path and the rest of the path after its point."""
        routes = self.routes
        probe, cut = path, 0
        for _ in range(self.depth):
            cut = path.find("/", cut + 1)
            if cut < 0:
                break
        else:
            probe = path[:cut] or "/"
        while True:
            route = routes.get(probe)
            if route is not None:
                return route, path[len(probe):] if probe != "/" else path
            if probe == "/" or not probe:
                return None
            probe = probe[:probe.rfind("/")] or "/"


class Router:
    """``dispatch(exchange)``: pick the host's mount table, then the route, then answer or delegate."""

    def __init__(self) -> None:
        self.exact: dict[str, MountTable] = {}
        self.suffixes: list[tuple[str, MountTable]] = []
        self.default: MountTable | None = None
        self._cache: dict[str, MountTable | None] = {}

    # ------------------------------------------------------------------ building
    def add(self, host: str, point: str, handler: Any, static: bool = False) -> None:
        """Mount ``handler`` at ``point`` for every name in ``host`` (space-separated)."""
        names = host.lower().split() if isinstance(host, str) else []
        if not names:
            raise ValueError(f"a virtual host must name at least one host: {host!r}")
        for name in names:
            self.table(name).add(point, handler, static, "" if name in DEFAULT_HOSTS else name)
        self._cache.clear()

    def table(self, name: str) -> MountTable:
        if name in DEFAULT_HOSTS:
            if self.default is None:
                self.default = MountTable()
            return self.default
        if name.startswith("."):
            for suffix, table in self.suffixes:
                if suffix == name:
                    return table
            table = MountTable()
            self.suffixes.append((name, table))
            self.suffixes.sort(key=lambda st: -len(st[0]))
            return table
        return self.exact.setdefault(name.rstrip("."), MountTable())

    def points(self) -> Iterable[tuple[str, str]]:
        """(host, point) pairs, for the start-up banner."""
        for name, table in [("*", self.default)] + list(self.exact.items()) + self.suffixes:
            for point in (table.routes if table else ()):
                yield name, point

    # ------------------------------------------------------------------ lookup
    def host_table(self, host: str) -> MountTable | None:
        cache = self._cache
        try:
            return cache[host]
        except KeyError:
            pass
        name = host[:-1] if host[-1:] == "." else host      # one: "a.com." is absolute; "a.com.." is a 400
        table = self.exact.get(name)
        if table is None:
            for suffix, candidate in self.suffixes:
                if name.endswith(suffix) or name == suffix[1:]:
                    table = candidate
                    break
            else:
                table = self.default
        if len(cache) >= HOST_CACHE_MAX:
            cache.clear()
        cache[host] = table
        return table

    def table_for(self, request: Any) -> MountTable | None:
        """The mount table serving ``request``'s host (None: no site for it)."""
        return self.default if not (self.exact or self.suffixes) else self.host_table(request.host)

    def __call__(self, exchange: Any) -> Any:
        request = exchange.request
        table = self.table_for(request)
        if table is None:
            return exchange.error(404, "No site is served for this host name.")
        path = request.path
        if "%" in path or "/." in path:
            found = clean(request, table)
            if isinstance(found, str):
                return exchange.error(400, found)
        elif path[:1] == "/":
            found = table.match(path)
        else:
            return exchange.error(400, "The request target must be a path.")
        if found is None:
            return exchange.error(404)
        route, rest = found
        handler, static = route.handler, route.static
        if handler is not None:
            if not rest and route.point != "/":
                location = route.point + "/" + ("?" + request.query if request.query else "")
                return exchange.respond(301, [("Location", location)])
            if static is not None and request.method in ("GET", "HEAD") and static.has(rest):
                return static(exchange)
            return handler(exchange)
        return static(exchange)


CLIMBS = "The path climbs above the root with '..'."
ANOTHER_MOUNT = "The percent-encoded path names another mount than its plain form."
_SAFE = "/:@!$&'()*+,;=-._~"          # what quote() leaves alone in a re-quoted path (the mount keys' form)
_NO_ROUTES = MountTable()


def clean(request: Any, table: MountTable | None) -> tuple[Route, str] | None | str:
    """Check and clean the path of a request that holds ``%`` or ``/.``: dot segments are removed, then the
    route is chosen. Returns the match (``None``: no mount), or the reason for a 400. When dot segments were
    removed, ``request.path`` becomes the clean path, re-quoted (it stays as sent otherwise). Running it again
    on a cleaned path changes nothing."""
    path = request.path
    if path[:1] != "/":
        return "The request target must be a path."
    if table is None:
        table = _NO_ROUTES
    if "%" not in path:
        segments = path.split("/")
        kept = _without_dots(segments, ".", "..")
        if kept is None:
            return CLIMBS
        if kept is not segments:
            path = request.path = "/".join(kept)
        return table.match(path)
    decoded = unquote_to_bytes(path)
    segments = decoded.split(b"/") if b"/." in decoded else None
    kept = segments if segments is None else _without_dots(segments, b".", b"..")
    if kept is segments:                        # no dot segment, decoded or raw: the percent rule alone
        found = table.match(quote(decoded, safe=_SAFE))
        raw_found = table.match(path)
    elif kept is None:
        return CLIMBS
    else:
        clean_path = quote(b"/".join(kept), safe=_SAFE)
        found = table.match(clean_path)
        raw = path.split("/")                   # raw dot segments are decoded ones too: some are here
        raw_kept = _without_dots([_dot(s) if "%" in s else s for s in raw], ".", "..")
        # None: ``/a%2Fb/../..`` climbs out raw, not decoded
        raw_found = None if raw_kept is None else table.match("/".join(raw_kept))
    if (raw_found and raw_found[0]) is not (found and found[0]):
        return ANOTHER_MOUNT
    if kept is segments:
        return raw_found
    request.path = clean_path
    return found


def _dot(segment: str) -> str:
    """A raw segment that is a dot segment once decoded (``%2e``, ``.%2E``, ...) as ``.`` or ``..``."""
    if len(segment) <= 6:
        plain = segment.lower().replace("%2e", ".")
        if plain == "." or plain == "..":
            return plain
    return segment


def _without_dots(segments: list, dot: Any, dotdot: Any) -> list | None:
    """RFC 3986 5.2.4 on the segments of an absolute path (``segments[0]`` is the empty text before its
    first ``/``): the same list when it has no dot segment, a new one without them, ``None`` when a ``..``
    would climb above the root. A dot segment at the end leaves the path ending in ``/``."""
    if dot not in segments and dotdot not in segments:
        return segments
    out = segments[:1]
    last = len(segments) - 1
    for i in range(1, last + 1):
        seg = segments[i]
        if seg == dotdot:
            if len(out) == 1:
                return None
            out.pop()
        elif seg != dot:
            out.append(seg)
            continue
        if i == last:
            out.append(seg[:0])
    return out
