"""Issue 2: hello-world WSGI over HTTP/1.1 with wrk -c64, every server in one run, ratio to nginx.

Also skitai (threads=4 and threads=0) at 256 and 1000 connections, where the target is "no errors".
Usage: python http1.py
"""
from __future__ import annotations

import time

import servers
from harness import Table, Unavailable, free_port, nginx, save, wrk


def _measure_server(factory, connections: int = 64):
    def run() -> dict:
        port = free_port()
        srv = factory(port)
        with srv.running():
            return wrk(servers.hello_url(port), connections)
    return run


def _nginx(connections: int = 64):
    def run() -> dict:
        with nginx() as ports:
            return wrk(servers.hello_url(ports["port"]), connections)
    return run


def main() -> None:
    started = time.time()
    hello = Table("http1_hello", "HTTP/1.1 hello world, wrk -t1 -c64", "nginx",
                  note="GET /hello; every server one process on core 0, wrk on core 1")
    hello.measure_all([
        ("nginx", _nginx()),
        ("skitai threads=4", _measure_server(lambda p: servers.skitai(p, 4))),
        ("skitai threads=0", _measure_server(lambda p: servers.skitai(p, 0))),
        ("uvicorn ASGI", _measure_server(lambda p: servers.uvicorn(p, "asgi3"))),
        ("waitress", _measure_server(servers.waitress)),
        ("uvicorn WSGI", _measure_server(lambda p: servers.uvicorn(p, "wsgi"))),
        ("gunicorn gthread", _measure_server(lambda p: servers.gunicorn(p, "gthread"))),
        ("gunicorn sync", _measure_server(lambda p: servers.gunicorn(p, "sync"))),
        ("skitai 0.57 threads=4", _measure_server(lambda p: servers.skitai057(p, 4))),
    ])

    high = Table("http1_many", "skitai at many connections (target: no errors)", None,
                 note="wrk -t1 -c256 / -c1000, same hello app")
    for threads in (4, 0):
        for conns in (256, 1000):
            high.measure(f"skitai threads={threads} c{conns}",
                         _measure_server(lambda p, t=threads: servers.skitai(p, t), conns),
                         connections=conns)
    save("http1", [hello, high], started)


if __name__ == "__main__":
    try:
        main()
    except Unavailable as exc:
        print(f"not available: {exc}")
