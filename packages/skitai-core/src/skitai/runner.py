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
from dataclasses import replace
from typing import Any

from . import hooks, loader, logs, paths, plugins
from .config import Config
from .site import Chain, Site, build, check_plugins

__all__ = ["Running", "build", "check_plugins", "serve", "serve_site"]

log = logging.getLogger("skitai.server")

Report = Callable[[str], None]


# ---------------------------------------------------------------- serving

def reason_of(exc: BaseException) -> str:
    """One line on why the server could not start (the type name only for unexpected errors)."""
    from .tls import TLSConfigError
    if isinstance(exc, (ListenError, loader.MountError, TLSConfigError)):
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
    from .http.server import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        install_was(config, runner.get_loop(), found)
        for target in site.apps():
            hooks.start(target.app, target.point)
        try:
            return runner.run(serve_site(config, site, report))
        finally:
            for target in site.apps():
                hooks.cleanup(site.current_app(target))
            install_was(None, runner.get_loop())


def install_was(config: Config | None, loop: Any, found: list[plugins.Plugin] | None = None) -> None:
    """Give this process its ``was`` services (issue 4) on ``loop``; ``config=None`` takes ``loop``'s away."""
    from .services import binding

    if config is None:
        binding.install(None, loop)
        return
    from .services.server import Wasc
    binding.install(Wasc(config, loop, services=plugin_services(found)))


def plugin_services(found: list[plugins.Plugin] | None) -> dict[str, Any]:
    """``was.<name>`` objects the plugins contribute (``was.email``)."""
    services: dict[str, Any] = {}
    for plugin in plugins.discover() if found is None else found:
        try:
            services.update(plugin.was_services() or {})
        except Exception:
            log.exception("plugin %s: was_services() failed", plugin.name)
    return services


def watch_was(servers: list[Any], stop: asyncio.Event | None = None) -> None:
    """Let ``was.status()`` show the listeners' counters and ``was.shutdown()`` set ``stop``."""
    from .services import binding

    wasc = binding.server_context()
    if wasc is not None:
        wasc.watch(servers, stop)


def ssl_context(config: Config) -> Any:
    """The TLS context of ``enable_ssl()`` (None for plain HTTP)."""
    if not config.certfile:
        return None
    from .tls import make_ssl_context      # ALPN h2/http1.1, one-PEM key+cert, clear errors
    return make_ssl_context(config)


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
    from .http2 import goaway_all          # HTTP/2 connections say GOAWAY and finish their streams
    from .websocket.protocol import close_all
    goaway_all()
    close_all()                            # WebSockets close with 1001 (going away)
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
    watch_was(servers, stop)
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
        install_was(self.config, asyncio.get_running_loop())
        watch_was(servers, self._stop)
        for target in self.site.apps():
            hooks.start(target.app, target.point)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await close(servers, self.config.stop_timeout)
            for target in self.site.apps():
                hooks.cleanup(self.site.current_app(target))
            install_was(None, asyncio.get_running_loop())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.config.stop_timeout + 5)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
