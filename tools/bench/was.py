"""Issue 4: a route calling a backend through ``was.get(...).getwait()``, and one fanning out to 5 calls.

Against the same routes in a waitress app using ``requests`` and as aiohttp handlers, one run,
ratio to waitress + requests. The backend is nginx (/hello) on the client core, so the server
under test keeps core 0 to itself; wrk -t1 -c64 on the client core.
Usage: python was.py
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request

import servers
from harness import (APPS, CLIENT_CPU, HOST, MAIN_PY, PEER_BIN, PEER_PY, Server, Table, Unavailable, free_port,
                     nginx, save, wrk)

BASELINE = "waitress + requests"


def _skitai(port: int, backend: str) -> Server:
    reason = servers.skitai_reason()
    if reason:
        raise Unavailable(reason)
    return Server("skitai was", [MAIN_PY, APPS / "was_skitai.py"], port,
                  env={"BENCH_PORT": str(port), "BENCH_THREADS": "4", "BENCH_BACKEND": backend})


def _waitress(port: int, backend: str) -> Server:
    return Server(BASELINE, [PEER_BIN / "waitress-serve", "--host", HOST, "--port", str(port), "--threads", "4",
                             "was_waitress:app"], port, env={"BENCH_BACKEND": backend})


def _aiohttp(port: int, backend: str) -> Server:
    return Server("aiohttp", [PEER_PY, APPS / "was_aiohttp.py", str(port)], port, env={"BENCH_BACKEND": backend})


def _check(url: str, srv: Server) -> None:
    """One request before the load: a route that fails (was services missing...) is "not available"."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip().splitlines()
        raise Unavailable(f"{url} answered {exc.code}: {(body or [''])[-1][:200]} {srv.log_tail()}") from None
    except OSError as exc:
        raise Unavailable(f"{url} failed: {exc}") from None


def _measure(factory, backend: str, path: str):
    def run() -> dict:
        port = free_port()
        srv = factory(port, backend)
        with srv.running():
            url = f"http://{HOST}:{port}{path}"
            _check(url, srv)
            return wrk(url, 64)
    return run


def main() -> None:
    started = time.time()
    tables = [Table("was_one", "A route calling one backend, wrk -t1 -c64", BASELINE,
                    note="skitai: `was.get(url).getwait()` (threads=4); waitress: `requests.Session().get` "
                         "(4 threads); aiohttp: `ClientSession.get` in the handler; backend nginx on core "
                         f"{CLIENT_CPU}"),
              Table("was_fan5", "A route fanning out to 5 backend calls, wrk -t1 -c64", BASELINE,
                    note="skitai: five `was.get` then five `getwait()`; waitress: five `requests` calls in "
                         "turn; aiohttp: `asyncio.gather` of five calls")]
    try:
        with nginx(cpu=CLIENT_CPU) as ports:
            backend = servers.hello_url(ports["port"])
            for table, path in zip(tables, ("/one", "/fan5")):
                table.measure_all([
                    (BASELINE, _measure(_waitress, backend, path)),
                    ("skitai threads=4", _measure(_skitai, backend, path)),
                    ("aiohttp", _measure(_aiohttp, backend, path)),
                ])
    except Unavailable as exc:
        print(f"not available: {exc}")
    save("was", tables, started)


if __name__ == "__main__":
    main()
