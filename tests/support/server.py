"""Run a real skitai server in a background thread for tests.

    from tests.support.server import ServerThread

    def test_hello():
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hi"]
        with ServerThread(app=app, threads=2) as srv:          # WSGI app mounted at "/"
            assert requests.get(srv.url + "/").text == "hi"

    with ServerThread(dispatch=my_dispatch) as srv: ...         # any ``Dispatch`` callable (exchange -> ...)
    with ServerThread(app=flask_app, mount="/app") as srv: ...  # SCRIPT_NAME "/app"; other paths get 404
    with ServerThread(app=app, keep_alive=1, max_body_size=1024) as srv: ...   # any ``Limits`` field
    with ServerThread(dispatch=d, upgrades={"h2c": h}, h2_prior_knowledge=factory, ssl=ctx) as srv: ...

The server listens on 127.0.0.1 on a free port (``srv.port``, ``srv.url``), on its own loop (uvloop when
installed; ``uvloop=False`` for asyncio's loop) in a daemon thread. ``stop()`` (or leaving the ``with``)
closes it gracefully and joins the thread. ``srv.config`` is the ``skitai.config.Config`` it runs with,
``srv.loop`` its loop (``srv.call(fn, *args)`` runs ``fn`` on it and returns the result).

Also a pytest fixture factory: ``server_factory`` (see ``make_server_fixture``) for conftest files.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from skitai.config import Config, Limits

_LIMIT_NAMES = {f.name for f in fields(Limits)}


def _not_found(exchange) -> None:
    exchange.error(404, "not mounted")


def mount_dispatch(app: Any, mount: str, config: Config) -> Callable:
    """A dispatcher with one WSGI ``app`` at ``mount`` (whole path segments), 404 elsewhere."""
    from skitai.wsgi.handler import WSGIHandler

    handler = WSGIHandler(app, mount, config)
    point = mount.rstrip("/")
    if not point:
        return handler

    def dispatch(exchange):
        path = exchange.request.path
        if path == point or path.startswith(point + "/"):
            return handler(exchange)
        return _not_found(exchange)

    return dispatch


class ServerThread:
    """``serve()`` on a free port in a background thread with its own event loop."""

    def __init__(self, dispatch: Callable | None = None, *, app: Any = None, mount: str = "/",
                 config: Config | None = None, threads: int | None = None, ssl=None,
                 upgrades: dict | None = None, h2_prior_knowledge: Callable | None = None,
                 uvloop: bool = True, **limits: Any) -> None:
        self.config = config or Config()
        if threads is not None:
            self.config.threads = threads
        for name, value in limits.items():
            if name not in _LIMIT_NAMES:
                raise TypeError(f"unknown limit {name!r}")
            setattr(self.config.limits, name, value)
        if (dispatch is None) == (app is None):
            raise TypeError("give exactly one of dispatch= or app=")
        self.dispatch = dispatch if dispatch is not None else mount_dispatch(app, mount, self.config)
        self.ssl = ssl
        self.upgrades = upgrades
        self.h2_prior_knowledge = h2_prior_knowledge
        self.use_uvloop = uvloop
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = None
        self.port = 0
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            from skitai.http.server import new_event_loop, serve

            loop = new_event_loop() if self.use_uvloop else asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._stopped = asyncio.Event()
                try:
                    self.server = await serve(self.config, self.dispatch, sock=sock, ssl=self.ssl,
                                              upgrades=self.upgrades,
                                              h2_prior_knowledge=self.h2_prior_knowledge)
                except BaseException as exc:
                    ready.set_exception(exc)
                    return
                ready.set_result(None)
                await self._stopped.wait()
                await self.server.wait_closed(timeout=2.0)

            try:
                loop.run_until_complete(main())
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"skitai-test-server-{self.port}", daemon=True)
        self._thread.start()
        ready.result(timeout=10)
        return self

    def call(self, fn: Callable, *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result (awaits coroutines)."""
        async def runner():
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread is None:
            return
        if self.loop is not None and self._stopped is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def make_server_fixture():
    """A pytest fixture giving a factory: ``srv = server_factory(app=app, threads=0)``; all stopped at the end.

        # conftest.py
        from tests.support.server import make_server_fixture
        server_factory = make_server_fixture()
    """
    import pytest

    @pytest.fixture
    def server_factory():
        started: list[ServerThread] = []

        def factory(dispatch=None, **kw) -> ServerThread:
            srv = ServerThread(dispatch, **kw).start()
            started.append(srv)
            return srv

        try:
            yield factory
        finally:
            for srv in started:
                srv.stop()

    return server_factory


# ---- raw sockets ---------------------------------------------------------------------------------
def raw_request(port: int, data: bytes | list[bytes], *, timeout: float = 5.0, pause: float = 0.0,
                host: str = "127.0.0.1") -> bytes:
    """Send ``data`` (a list: pieces sent ``pause`` seconds apart) and read until the server closes."""
    import time

    with socket.create_connection((host, port), timeout=timeout) as s:
        pieces = data if isinstance(data, list) else [data]
        try:
            for i, piece in enumerate(pieces):
                if i and pause:
                    time.sleep(pause)
                s.sendall(piece)
        except OSError:
            pass
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


class RawResponse:
    """One parsed HTTP/1.x response: ``status``, ``headers`` (lower-case names → last value), ``body``."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.header_list: list[tuple[str, str]] = []
        self.body = b""
        self.complete = False

    def __repr__(self) -> str:
        return f"<RawResponse {self.status} {self.headers} {self.body[:60]!r}>"


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every response in ``data`` (pipelined answers, an interim ``100``), parsed by httptools.
    (Answers to HEAD have no body: check those bytes directly.)"""
    import httptools

    out: list[RawResponse] = []
    holder: list = []

    class Sink:
        def on_message_begin(self):
            out.append(RawResponse())

        def on_header(self, name, value):
            k, v = name.decode("latin-1").lower(), value.decode("latin-1")
            out[-1].headers[k] = v
            out[-1].header_list.append((k, v))

        def on_headers_complete(self):
            out[-1].status = holder[0].get_status_code()

        def on_body(self, body):
            out[-1].body += body

        def on_message_complete(self):
            out[-1].complete = True

    sink = Sink()
    rest = data
    while rest:
        holder[:] = [httptools.HttpResponseParser(sink)]
        try:
            holder[0].feed_data(rest)
            rest = b""
        except httptools.HttpParserUpgrade as exc:
            rest = rest[exc.args[0]:]
        except httptools.HttpParserError:
            break
    return out
