"""What one worker serves, built from the config: the router of every mount behind plugin handlers.

``build(config, plugins)`` loads every mount (``loader.resolve``), wraps each in its handler (static
files, the WSGI bridge, the reverse proxy) and returns a ``Site`` whose ``dispatch`` the server calls.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from . import loader, paths, plugins
from .config import Config
from .loader import Target
from .reloader import Reloading, can_reload
from .router import Router, clean

log = logging.getLogger("skitai.server")
NEEDS_PLUGIN = {"gateway": ("gateway", "enable_gateway()"), "smtpda": ("smtpda", "enable_smtpda()"),
                "cron": ("smtpda", "cron()")}


@dataclass
class Site:
    """What one worker serves: the dispatch callable and the targets behind it."""

    dispatch: Any
    targets: list[Target] = field(default_factory=list)
    handlers: list[Any] = field(default_factory=list)

    def apps(self) -> list[Target]:
        return [t for t in self.targets if t.kind == "app"]

    def current_app(self, target: Target) -> Any:
        """The app serving ``target`` now (the reloader may have swapped it)."""
        for handler in self.handlers:
            if isinstance(handler, Reloading) and handler.target.point == target.point \
                    and handler.target.host == target.host:
                return handler.target.app
        return target.app


class Chain:
    """Plugin handlers first (``match(exchange)`` says whether one takes the request), then the router.
    The path is cleaned (``router.clean``: dot segments, percent-encoding) before the first of them looks at
    it, so a guard on ``/admin`` sees ``/app/../admin`` as ``/admin``."""

    def __init__(self, front: list[Any], router: Router) -> None:
        self.front = front
        self.router = router

    def __call__(self, exchange: Any) -> Any:
        request = exchange.request
        path = request.path
        if self.front and ("%" in path or "/." in path):     # no front handler: the router cleans it
            found = clean(request, self.router.table_for(request))
            if isinstance(found, str):
                return exchange.error(400, found)
        for handler in self.front:
            if handler.match(exchange):
                return handler(exchange)
        return self.router(exchange)


def build(config: Config, found: list[plugins.Plugin] | None = None) -> Site:
    """Load every mount of ``config`` and return the dispatch callable for the server."""
    found = list(found or [])
    workdir = config.workdir or paths.getswd()
    router = Router()
    site = Site(dispatch=router)
    for mount in config.mounts:
        target = loader.resolve(mount, workdir)
        handler = make_handler(target, config, found)
        router.add(target.host, target.point, handler, static=target.kind == "static")
        site.targets.append(target)
        site.handlers.append(handler)
    front = [h for p in found for h in p.handlers(config)]
    if front:
        site.dispatch = Chain(front, router)
    return site


def make_handler(target: Target, config: Config, found: list[plugins.Plugin]) -> Any:
    if target.kind == "static":
        from .handlers.static import StaticHandler
        return StaticHandler(target.path, target.point, config.max_ages, config)
    if target.kind == "proxy":
        if target.cluster not in config.clusters:
            raise loader.MountError(f"{target.point} mounts '@{target.cluster}', but no alias() or "
                                    f"run(clusters=...) defines that cluster")
        return proxy_handler(target, config)

    def make(t: Target) -> Any:
        return app_handler(t, config, found)

    return Reloading(target, make) if can_reload(target) else make(target)


def app_handler(target: Target, config: Config, found: list[plugins.Plugin]) -> Any:
    """A plugin's adapter for the app when one knows it (Saddle), else the app itself, under WSGI."""
    from .wsgi.handler import WSGIHandler
    app = target.app
    for plugin in found:
        adapted = plugin.adapt(app, target, config)
        if adapted is not None:
            app = adapted
            break
    return WSGIHandler(app, target.point, config)


def proxy_handler(target: Target, config: Config) -> Any:
    """The reverse proxy to ``@cluster`` (a later issue); until it exists, a clear 502."""
    try:
        from .handlers.proxy import ReverseProxy   # type: ignore[import-not-found]
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.handlers.proxy":
            raise
        return _NoProxy(target.cluster)
    return ReverseProxy(target.cluster, target.point, config)


class _NoProxy:
    def __init__(self, cluster: str) -> None:
        self.cluster = cluster

    def __call__(self, exchange: Any) -> None:
        exchange.error(502, f"The reverse proxy to @{self.cluster} is not available in this build.")


def check_plugins(config: Config, found: list[plugins.Plugin]) -> None:
    names = {p.name for p in found}
    wanted = {"gateway": bool(config.gateway), "smtpda": config.smtpda is not None, "cron": bool(config.cron)}
    for feature, on in wanted.items():
        plugin, call = NEEDS_PLUGIN[feature]
        if on and plugin not in names:
            raise RuntimeError(f"{call} needs the skitai-{plugin} plugin: pip install skitai[{plugin}]")
    for plugin in found:
        plugin.validate(config)
