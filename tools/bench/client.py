"""Issue 3: 5000 small GETs with 64 in flight from a local nginx, every client in one run.

Ratio to aiohttp's ClientSession. nginx serves HTTP/1.1 and h2c (prior knowledge) on core 0;
each client runs in its own process on core 1.
Usage: python client.py
"""
from __future__ import annotations

import time

import servers
from harness import MAIN_PY, OLD_PY, PEER_PY, Table, Unavailable, nginx, old_skitai_reason, run_client, save

N, CONCURRENCY = "5000", "64"


def main() -> None:
    started = time.time()
    t = Table("client_http", "HTTP client: 5000 GETs, 64 in flight, from local nginx", "aiohttp",
              note="nginx `return 200` on /hello; h2c = HTTP/2 with prior knowledge, one connection; "
              "best of 3 interleaved rounds (httpx: 1 run, it takes ~35 s)")
    try:
        with nginx() as ports:
            h1, h2c = servers.hello_url(ports["port"]), servers.hello_url(ports["h2c_port"])
            common = ("--n", N, "--concurrency", CONCURRENCY)

            def client(python, script, *a):
                return lambda: run_client(python, script, *a, *common)

            def original() -> dict:
                reason = old_skitai_reason()
                if reason:
                    raise Unavailable(reason)
                return run_client(OLD_PY, "http_aquests.py", "--url", h1, "--impl", "original", *common)

            t.measure_all([
                ("aiohttp", client(PEER_PY, "http_peers.py", "--lib", "aiohttp", "--url", h1)),
                ("aquests HTTP/1.1", client(MAIN_PY, "http_aquests.py", "--url", h1, "--mode", "h1")),
                ("aquests HTTP/2 (h2c)", client(MAIN_PY, "http_aquests.py", "--url", h2c, "--mode", "h2c")),
                ("aquests awaitable HTTP/1.1", client(MAIN_PY, "http_aquests.py", "--url", h1, "--mode", "async")),
                ("original aquests (skitai 0.57)", original),
            ], rounds=3)
            t.measure("httpx", client(PEER_PY, "http_peers.py", "--lib", "httpx", "--url", h1))
    except Unavailable as exc:
        print(f"not available: {exc}")
    save("client", [t], started)


if __name__ == "__main__":
    main()
