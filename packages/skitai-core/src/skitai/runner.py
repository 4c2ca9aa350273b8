"""``run()`` after the command line: config → plugins → dispatch → ``skitai.http.server.serve``.

One process (``workers=1``) serves itself; more workers fork from a supervising master (``workers.py``).
Apps get ``start(was, point)`` when a worker starts serving and ``cleanup()`` when it stops (``hooks.py``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import hooks, loader, logs, paths, plugins
from .config import Config
from .loader import Target
from .reloader import Reloading, can_reload
from .router import Router

log = logging.getLogger("skitai.server")

Report = Callable[[str], None]
NEEDS_PLUGIN = {"gateway": ("gateway", "enable_gateway()"), "smtpda": ("smtpda", "enable_smtpda()"),
                "cron": ("smtpda", "cron()")}


# ---------------------------------------------------------------- the dispatch

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
    """Plugin handlers first (``match(exchange)`` says whether one takes the request), then the router."""

    def __init__(self, front: list[Any], router: Router) -> None:
        self.front = front
        self.router = router

    def __call__(self, exchange: Any) -> Any:
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


# ---------------------------------------------------------------- plugins

def check_plugins(config: Config, found: list[plugins.Plugin]) -> None:
    names = {p.name for p in found}
    wanted = {"gateway": bool(config.gateway), "smtpda": config.smtpda is not None, "cron": bool(config.cron)}
    for feature, on in wanted.items():
        plugin, call = NEEDS_PLUGIN[feature]
        if on and plugin not in names:
            raise RuntimeError(f"{call} needs the skitai-{plugin} plugin: pip install skitai[{plugin}]")
    for plugin in found:
        plugin.validate(config)


# ---------------------------------------------------------------- serving

def reason_of(exc: BaseException) -> str:
    """One line on why the server could not start (the type name only for unexpected errors)."""
    if isinstance(exc, (ListenError, loader.MountError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def prepare(config: Config) -> list[plugins.Plugin]:
    """What every process of the server shares: working directory, logs, plugins."""
    if not config.mounts and not config.proxy:
        raise loader.MountError("nothing to serve: mount an app or a directory first, e.g. skitai.mount('/', app)")
    workdir = config.workdir or paths.getswd()
    config.workdir = workdir
    os.chdir(workdir)
    config.varpath = config.varpath or paths.default_varpath()
    os.makedirs(config.varpath, exist_ok=True)
    logs.setup(config.logpath, config.verbose)
    found = plugins.discover()
    check_plugins(config, found)
    return found


def serve(config: Config, report: Report | None = None) -> int:
    """Serve ``config`` until SIGTERM/SIGINT; returns the exit code. ``report('')`` once listening."""
    try:
        found = prepare(config)
    except Exception as e:
        if report:
            report(reason_of(e))
        raise
    started: list[plugins.Plugin] = []
    try:
        for plugin in found:
            plugin.start(config)
            started.append(plugin)
        if config.workers > 1:
            from . import workers
            return workers.supervise(config.workers, lambda slot, rep: serve_process(config, found, rep),
                                     config.stop_timeout, report)
        return serve_process(config, found, report)
    finally:
        for plugin in reversed(started):
            try:
                plugin.stop()
            except Exception:
                log.exception("plugin %s failed to stop", plugin.name)


def serve_process(config: Config, found: list[plugins.Plugin], report: Report | None = None) -> int:
    """One serving process: build the site, start the apps, serve, clean the apps up."""
    try:
        site = build(config, found)
    except Exception as e:
        if report:
            report(reason_of(e))
        raise
    for target in site.apps():
        hooks.start(target.app, target.point)
    try:
        return event_loop_runner()(serve_site(config, site, report))
    finally:
        for target in site.apps():
            hooks.cleanup(site.current_app(target))


def event_loop_runner() -> Callable[[Any], Any]:
    from .http.server import new_event_loop
    return lambda main: asyncio.run(main, loop_factory=new_event_loop) if _has_loop_factory() else \
        _run_on(new_event_loop(), main)


def _has_loop_factory() -> bool:
    import inspect
    return "loop_factory" in inspect.signature(asyncio.run).parameters


def _run_on(loop: asyncio.AbstractEventLoop, main: Any) -> Any:
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def ssl_context(config: Config) -> Any:
    """The TLS context of ``enable_ssl()`` (None for plain HTTP)."""
    if not config.certfile:
        return None
    import ssl
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.certfile, config.keyfile or None, config.passphrase or None)
    return ctx


async def listen(config: Config, site: Site) -> list[Any]:
    """Start the listeners of ``config``: the main one, and the HTTPS forwarder when enabled."""
    servers = [await _listen(config, site.dispatch, ssl_context(config), **protocol_hooks(config, site.dispatch))]
    if config.forward_port:
        from .forward import ForwardToHTTPS
        forward = replace(config, address=config.forward_ip or config.address, port=config.forward_port,
                          certfile=None)
        try:
            servers.append(await _listen(forward, ForwardToHTTPS(config)))
        except BaseException:
            servers[0].close()
            raise
    return servers


class ListenError(OSError):
    """The port cannot be opened (in use, no permission): said in one line, without a traceback."""


def protocol_hooks(config: Config, dispatch: Any) -> dict:
    """``serve()`` keywords of the protocols beyond HTTP/1.1: HTTP/2 (h2c upgrade, prior knowledge, ALPN)."""
    from .http2 import hooks
    return hooks(config, dispatch)


async def _listen(config: Config, dispatch: Any, ssl: Any = None, **hooks: Any) -> Any:
    from .http.server import serve as http_serve
    try:
        return await http_serve(config, dispatch, ssl=ssl, **hooks)
    except OSError as e:
        raise ListenError(f"cannot listen on {config.address}:{config.port}: {e.strerror or e}") from e


async def close(servers: list[Any], timeout: float) -> None:
    for server in servers:
        server.close()
    await asyncio.gather(*(s.wait_closed(timeout) for s in servers), return_exceptions=True)


async def serve_site(config: Config, site: Site, report: Report | None = None,
                     stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); busy connections get ``stop_timeout`` to finish."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig, action in ((signal.SIGTERM, stop.set), (signal.SIGINT, stop.set), (signal.SIGUSR1, logs.rotate)):
        try:
            loop.add_signal_handler(sig, action)
        except (NotImplementedError, RuntimeError, ValueError):
            pass       # not the main thread (in-process use): stop with the event
    try:
        servers = await listen(config, site)
    except Exception as e:
        if report:
            report(reason_of(e))
        raise
    announce(config, site, servers)
    if report:
        report("")
    await stop.wait()
    log.info("stopping (pid %d)", os.getpid())
    await close(servers, config.stop_timeout)
    return 0


def announce(config: Config, site: Site, servers: list[Any]) -> None:
    router = site.dispatch.router if isinstance(site.dispatch, Chain) else site.dispatch
    for host, point in router.points():
        log.info("mounted %s%s", "" if host == "*" else host, point)
    scheme = "https" if config.certfile else "http"
    log.info("serving %s://%s:%s/ (pid %d, threads %d)", scheme, config.address, servers[0].port,
             os.getpid(), config.threads)


class Running:
    """A server running in a thread of this process (tests, embedding): ``.port``, ``.stop()``."""

    def __init__(self, config: Config, found: list[plugins.Plugin] | None = None, timeout: float = 10.0) -> None:
        import threading

        from . import http2  # noqa: F401 - imported here, not in the server thread (import lock)
        from .http import server  # noqa: F401
        self.config = config
        self.site = build(config, found)
        self.port: int | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="skitai-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the server did not start")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        from .http.server import new_event_loop
        loop = self._loop = new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # noqa: B036 - handed to the starting thread
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        servers = await listen(self.config, self.site)
        self.port = servers[0].port
        for target in self.site.apps():
            hooks.start(target.app, target.point)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await close(servers, self.config.stop_timeout)
            for target in self.site.apps():
                hooks.cleanup(self.site.current_app(target))

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.config.stop_timeout + 5)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
