"""Issue 5: HTTP/2 with h2load -c16 -m10, h2c (prior knowledge) and TLS (ALPN h2), one run.

The same WSGI hello app on skitai, hypercorn and the original skitai 0.57 (threads=4); nginx as the
ceiling. Ratio to the original skitai 0.57 (the issue's target: at least 2x).
Usage: python http2.py  (group "h2" of run.sh; not named h2.py, which would shadow the h2 package)
"""
from __future__ import annotations

import time

import servers
from harness import Table, Unavailable, free_port, h2load, nginx, save

BASELINE = "skitai 0.57 threads=4"


def _server(factory, tls: bool):
    def run() -> dict:
        port = free_port()
        with factory(port, tls).running():
            return h2load(servers.hello_url(port, "https" if tls else "http"))
    return run


def _nginx(tls: bool):
    def run() -> dict:
        with nginx() as ports:
            return h2load(servers.hello_url(ports["tls_port" if tls else "h2c_port"], "https" if tls else "http"))
    return run


def main() -> None:
    started = time.time()
    tables = []
    for tls in (False, True):
        label = "TLS (ALPN h2)" if tls else "h2c (prior knowledge)"
        t = Table(f"h2_{'tls' if tls else 'h2c'}", f"HTTP/2 {label}, h2load -t1 -c16 -m10", BASELINE,
                  note="GET /hello; one server process on core 0, h2load on core 1")
        t.measure_all([
            ("skitai threads=4", _server(lambda p, s: servers.skitai(p, 4, tls=s), tls)),
            (BASELINE, _server(lambda p, s: servers.skitai057(p, 4, tls=s), tls)),
            ("hypercorn", _server(lambda p, s: servers.hypercorn(p, tls=s), tls)),
            ("nginx", _nginx(tls)),
        ])
        tables.append(t)
    save("h2", tables, started)


if __name__ == "__main__":
    try:
        main()
    except Unavailable as exc:
        print(f"not available: {exc}")
