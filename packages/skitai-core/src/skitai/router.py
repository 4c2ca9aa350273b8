"""The dispatch callable the server calls for every request: virtual host, then mount point.

Virtual hosts (SK-02, SK-31): the Host name (no port, lower-case) is matched exactly first, then against
rules starting with "." as a suffix (``.site.com`` matches ``a.site.com`` and ``site.com``; the longest
wins), then the ``default`` (or ``*``) host. No match and no default: 404.

Mounts (SK-27): the longest mount point matching on whole path segments wins (``/t1`` never catches
``/t1x``). ``/app`` answers 301 to ``/app/`` when an app is mounted at ``/app``. A static directory and an
app at the same point: an existing file comes from the directory, everything else goes to the app. A
static directory alone answers itself (404 for a missing file, 405 for methods other than GET/HEAD).

Mounts are matched on the raw path; the app then sees the percent-decoded rest as ``PATH_INFO``. A path whose
decoded form would pick another mount than its raw form (``/app%2Fadmin`` or ``/ap%70/x`` beside a mount at
``/app/admin`` or ``/app``) is refused with 400, so no mount ever gets a ``PATH_INFO`` that names another one.
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
        name = host.rstrip(".")
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

    def __call__(self, exchange: Any) -> Any:
        request = exchange.request
        table = self.default if not (self.exact or self.suffixes) else self.host_table(request.host)
        if table is None:
            return exchange.error(404, "No site is served for this host name.")
        path = request.path
        if not path.startswith("/"):
            return exchange.error(400, "The request target must be a path.")
        found = table.match(path)
        if "%" in path and _decoded_route(table, path) is not (found and found[0]):
            return exchange.error(400, "The percent-encoded path names another mount than its plain form.")
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


def _decoded_route(table: MountTable, path: str) -> Route | None:
    """The route the percent-decoded ``path`` would take (keys are stored percent-encoded, so re-quote)."""
    decoded = unquote_to_bytes(path)
    found = table.match(quote(decoded, safe="/:@!$&'()*+,;=-._~"))
    return found[0] if found else None
