"""How each server under test is started: one process serving requests, pinned to the server core.

Every factory takes the port and returns a ``harness.Server``. WSGI servers serve
``apps/wsgi_hello.py`` (and ``apps/wsgi_static.py`` where they have no file server of their own).
"""
from __future__ import annotations

import subprocess

from harness import (APPS, HELLO_PATH, HOST, MAIN_PY, OLD_PY, PEER_BIN, TLS, WWW, Server, Unavailable,
                     free_port, old_skitai_reason)

QUIET_UVICORN = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


def hello_url(port: int, scheme: str = "http") -> str:
    return f"{scheme}://{HOST}:{port}{HELLO_PATH}"


def waitress(port: int, app: str = "wsgi_hello:app") -> Server:
    return Server("waitress", [PEER_BIN / "waitress-serve", "--host", HOST, "--port", str(port),
                               "--threads", "4", app], port, env={"BENCH_WWW": str(WWW)})


def gunicorn(port: int, worker: str) -> Server:
    extra = ["--threads", "4"] if worker == "gthread" else []
    return Server(f"gunicorn {worker}", [PEER_BIN / "gunicorn", "-w", "1", "-k", worker, *extra,
                                         "-b", f"{HOST}:{port}", "--log-level", "warning",
                                         "wsgi_hello:app"], port)


def uvicorn(port: int, interface: str, app: str | None = None) -> Server:
    app = app or ("wsgi_hello:app" if interface == "wsgi" else "asgi_hello:app")
    label = "WSGI" if interface == "wsgi" else "ASGI"
    return Server(f"uvicorn {label}", [PEER_BIN / "uvicorn", "--host", HOST, "--port", str(port),
                                                   *QUIET_UVICORN, "--interface", interface, app], port)


def hypercorn(port: int, tls: bool = False) -> Server:
    extra = ["--certfile", str(TLS / "cert.pem"), "--keyfile", str(TLS / "key.pem")] if tls else []
    return Server("hypercorn", [PEER_BIN / "hypercorn", "-b", f"{HOST}:{port}", "-w", "1", *extra,
                                "--log-level", "warning", "wsgi_hello:app"], port)


def _skitai_env(port: int, threads: int, tls: bool) -> dict[str, str]:
    env = {"BENCH_PORT": str(port), "SKITAI_PORT": str(port), "BENCH_THREADS": str(threads),
           "BENCH_WWW": str(WWW)}
    if tls:
        env.update(BENCH_CERT=str(TLS / "cert.pem"), BENCH_KEY=str(TLS / "key.pem"))
    return env


def probe_main(code: str) -> str | None:
    """Run ``code`` in the project's .venv; the last error line, or None when it works."""
    if not MAIN_PY.exists():
        return "the project's .venv is missing (tools/bootstrap.sh)"
    probe = subprocess.run([MAIN_PY, "-c", code], capture_output=True, text=True, timeout=60)
    if probe.returncode:
        return (probe.stderr.strip().splitlines() or ["?"])[-1]
    return None


def skitai_reason() -> str | None:
    """Why our skitai cannot be measured yet, or None."""
    error = probe_main("import skitai; skitai.mount; skitai.run")
    return f"skitai.mount/run not importable yet: {error}" if error else None


def skitai(port: int, threads: int = 4, tls: bool = False) -> Server:
    reason = skitai_reason()
    if reason:
        raise Unavailable(reason)
    return Server(f"skitai threads={threads}", [MAIN_PY, APPS / "skitai_hello.py"], port,
                  env=_skitai_env(port, threads, tls), ready_url=None if tls else hello_url(port))


def skitai057(port: int, threads: int = 4, tls: bool = False) -> Server:
    reason = old_skitai_reason()
    if reason:
        raise Unavailable(reason)
    return Server(f"skitai 0.57 threads={threads}", [OLD_PY, APPS / "skitai057_hello.py"], port,
                  env=_skitai_env(port, threads, tls), ready_url=None if tls else hello_url(port))


__all__ = ["free_port", "gunicorn", "hello_url", "hypercorn", "skitai", "skitai057", "uvicorn", "waitress"]
