"""Real database servers for tests, demos and benchmarks.

Each server runs on 127.0.0.1 on a free port, in its own temp dir, as a direct child process that is
stopped by its PID. Use them three ways:

* context managers: ``with postgres() as pg: pg.dsn`` / ``with redis() as r: r.port`` /
  ``with mongodb() as m: m.url``;
* start/stop pairs: ``srv = start_postgres(); ...; srv.stop()``;
* pytest fixtures (session scope): ``postgres_dsn``, ``pg_server``, ``redis_server``, ``mongo_server``.
  Any conftest re-exports them with ``from tests.support.services import pg_server, postgres_dsn, ...``.

A missing binary makes the fixture skip with the reason (``pytest.skip``); the plain functions raise
``ServiceUnavailable`` instead. On CI the binaries are installed (tools/apt-packages.txt), so the tests run.
``SKITAI_TEST_MONGODB_URL`` points the Mongo fixture at a real mongod instead of nx-27017.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.net import free_port, wait_port

HOST = "127.0.0.1"


class ServiceUnavailable(RuntimeError):
    """The server cannot run on this machine (binary missing, wrong user, ...)."""


@dataclass
class Service:
    """A running server: where it listens and how to stop it."""

    name: str
    host: str
    port: int
    proc: subprocess.Popen | None = None
    workdir: str | None = None
    url: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def server(self) -> str:
        """``"host:port"``, the form aquests stubs take."""
        return f"{self.host}:{self.port}"

    @property
    def dsn(self) -> str:
        return self.url

    def kill(self) -> None:
        """Hard-kill the server (tests of broken connections); ``restart`` brings it back."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        restart = self.extra.get("restart")
        if restart is None:
            raise ServiceUnavailable(f"{self.name} cannot be restarted")
        self.proc = restart()

    def stop(self) -> None:
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(self.extra.get("stop_signal", signal.SIGTERM))
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_ready(check, what: str, proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            check()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            time.sleep(0.05)
    raise ServiceUnavailable(f"{what} not ready after {timeout}s: {last}")


# ---------------------------------------------------------------- PostgreSQL

def _pg_bindir() -> str:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "postgres")):
            return d
    found = shutil.which("postgres")
    if found:
        return os.path.dirname(found)
    raise ServiceUnavailable("PostgreSQL is not installed (apt-get install -y postgresql)")


def start_postgres(password: str | None = None) -> Service:
    """initdb a fresh cluster in a temp dir and run ``postgres`` on a free port.

    ``password`` (optional) sets the ``postgres`` user's password and switches TCP logins to md5
    auth, for tests of authentication failures.
    """
    bindir = _pg_bindir()
    user: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable("running as root and there is no 'postgres' system user") from None
        user = "postgres"
    workdir = tempfile.mkdtemp(prefix="skitai-pg-")
    data = os.path.join(workdir, "data")
    if user:
        shutil.chown(workdir, user)
    pwfile_args: list[str] = []
    if password is not None:
        pwfile = os.path.join(workdir, "pw")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        if user:
            shutil.chown(pwfile, user)
        pwfile_args = [f"--pwfile={pwfile}", "--auth-host=md5", "--auth-local=trust"]
    else:
        pwfile_args = ["-A", "trust"]
    subprocess.run(
        [f"{bindir}/initdb", "-D", data, "-U", "postgres", *pwfile_args, "-E", "UTF8",
         "--locale=C", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=user,
    )
    port = free_port()

    def launch() -> subprocess.Popen:
        return subprocess.Popen(
            [f"{bindir}/postgres", "-D", data, "-p", str(port), "-c", f"listen_addresses={HOST}",
             "-c", f"unix_socket_directories={workdir}", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "log"), "ab"),
            user=user, start_new_session=True,
        )

    auth = f" password={password}" if password is not None else ""
    dsn = f"host={HOST} port={port} user=postgres dbname=postgres{auth}"

    def ready() -> None:
        import psycopg2
        psycopg2.connect(dsn, connect_timeout=2).close()

    def relaunch() -> subprocess.Popen:
        proc = launch()
        _wait_ready(ready, "postgres", proc)
        return proc

    proc = launch()
    srv = Service("postgresql", HOST, port, proc, workdir, dsn,
                  {"stop_signal": signal.SIGINT, "restart": relaunch, "password": password})
    try:
        _wait_ready(ready, "postgres", proc)
    except BaseException:
        srv.stop()
        raise
    return srv


# ---------------------------------------------------------------- Redis

def start_redis(password: str | None = None) -> Service:
    """Run ``redis-server`` without persistence on a free port (``password`` sets requirepass)."""
    binary = shutil.which("redis-server")
    if not binary:
        raise ServiceUnavailable("redis-server is not installed (apt-get install -y redis-server)")
    workdir = tempfile.mkdtemp(prefix="skitai-redis-")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", workdir, "--protected-mode", "no"]
    if password:
        args += ["--requirepass", password]

    def launch() -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        _wait_ready(lambda: wait_port(port, timeout=0.2), "redis-server", proc)
        return proc

    srv = Service("redis", HOST, port, None, workdir, f"redis://{HOST}:{port}/0",
                  {"restart": launch, "password": password})
    try:
        srv.proc = launch()
    except BaseException:
        srv.stop()
        raise
    return srv


# ---------------------------------------------------------------- MongoDB (wire protocol)

def start_mongodb() -> Service:
    """A MongoDB-wire server: ``$SKITAI_TEST_MONGODB_URL`` if set, else nx-27017 in memory."""
    url = os.environ.get("SKITAI_TEST_MONGODB_URL")
    if url:
        parts = urlsplit(url)
        return Service("mongodb", parts.hostname or HOST, parts.port or 27017, None, None, url)
    binary = shutil.which("nx-27017") or os.path.join(os.path.dirname(sys.executable), "nx-27017")
    if not os.path.exists(binary):
        raise ServiceUnavailable("nx-27017 is not installed (pip install nx-27017)")
    workdir = tempfile.mkdtemp(prefix="skitai-mongo-")
    port = free_port()

    def launch() -> subprocess.Popen:
        proc = subprocess.Popen(
            [binary, "--db", "memory", "--host", HOST, "-p", str(port),
             "--log-file", os.path.join(workdir, "log"), "--pid-file", os.path.join(workdir, "pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_ready(lambda: wait_port(port, timeout=0.2), "nx-27017", proc)
        return proc

    srv = Service("mongodb", HOST, port, None, workdir, f"mongodb://{HOST}:{port}", {"restart": launch})
    try:
        srv.proc = launch()
    except BaseException:
        srv.stop()
        raise
    return srv


# ---------------------------------------------------------------- context managers

@contextlib.contextmanager
def _running(start, *args, **kw) -> Iterator[Service]:
    srv = start(*args, **kw)
    try:
        yield srv
    finally:
        srv.stop()


def postgres(password: str | None = None):
    """``with postgres() as srv: srv.dsn, srv.server``"""
    return _running(start_postgres, password)


def redis(password: str | None = None):
    """``with redis() as srv: srv.server``"""
    return _running(start_redis, password)


def mongodb():
    """``with mongodb() as srv: srv.url, srv.server``"""
    return _running(start_mongodb)


# ---------------------------------------------------------------- pytest fixtures (session scope)

def _fixture_service(start) -> Iterator[Service]:
    try:
        srv = start()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Service]:
    """A PostgreSQL server (trust auth, user ``postgres``, db ``postgres``)."""
    yield from _fixture_service(start_postgres)


@pytest.fixture(scope="session")
def postgres_dsn(pg_server: Service) -> str:
    """libpq DSN of ``pg_server``."""
    return pg_server.dsn


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Service]:
    """A Redis server without password or persistence."""
    yield from _fixture_service(start_redis)


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[Service]:
    """nx-27017 (or ``$SKITAI_TEST_MONGODB_URL``); ``.url`` is the mongodb:// URL."""
    yield from _fixture_service(start_mongodb)
