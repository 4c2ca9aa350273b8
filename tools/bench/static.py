"""Issue 2: static files over HTTP/1.1, 4 KiB and 1 MiB, wrk -c64, ratio to nginx.

Usage: python static.py
"""
from __future__ import annotations

import time

import servers
from harness import HOST, Table, Unavailable, free_port, nginx, save, wrk

FILES = {"4 KiB": "4k.bin", "1 MiB": "1m.bin"}


def _server(factory, path: str):
    def run() -> dict:
        port = free_port()
        with factory(port).running():
            return wrk(f"http://{HOST}:{port}/static/{path}", 64)
    return run


def _nginx(path: str):
    def run() -> dict:
        with nginx() as ports:
            return wrk(f"http://{HOST}:{ports['port']}/static/{path}", 64)
    return run


def main() -> None:
    started = time.time()
    tables = []
    for label, path in FILES.items():
        t = Table(f"static_{path.split('.')[0]}", f"Static file {label}, wrk -t1 -c64", "nginx",
                  note=f"GET /static/{path}; waitress serves it through wsgi.file_wrapper (apps/wsgi_static.py)")
        t.measure_all([
            ("nginx", _nginx(path)),
            ("skitai threads=4", _server(lambda p: servers.skitai(p, 4), path)),
            ("waitress", _server(lambda p: servers.waitress(p, "wsgi_static:app"), path)),
            ("skitai 0.57 threads=4", _server(lambda p: servers.skitai057(p, 4), path)),
        ])
        tables.append(t)
    save("static", tables, started)


if __name__ == "__main__":
    try:
        main()
    except Unavailable as exc:
        print(f"not available: {exc}")
