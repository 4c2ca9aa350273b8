"""Issue 5: WebSocket echo, 1 client doing sequential round trips and 50 clients at once.

Servers: the `websockets` library's own server, uvicorn (ASGI echo), skitai (WSGI echo through the
websocket environ protocol) with threads=0 (the app on the loop, like-for-like with the other two; the
target's verdict) and threads=4 (the app on a worker thread: one hop there and one back per message).
One lean client (clients/ws_client.py) for all; ratio to `websockets`.
Usage: python ws.py
"""
from __future__ import annotations

import time

import servers
from harness import (APPS, DURATION, HOST, MAIN_PY, PEER_PY, Server, Table, Unavailable, free_port,
                     run_client, save)

BASELINE = "websockets server"
SECONDS = str(max(2, DURATION - 3))  # plus start-up and handshakes: about DURATION per row


def _websockets(port: int) -> Server:
    return Server(BASELINE, [PEER_PY, APPS / "ws_websockets.py", str(port)], port)


def _uvicorn(port: int) -> Server:
    return servers.uvicorn(port, "asgi3", "asgi_ws_echo:app")


def _skitai(threads: int):
    def factory(port: int) -> Server:
        reason = servers.skitai_reason()
        if reason:
            raise Unavailable(reason)
        return Server(f"skitai threads={threads}", [MAIN_PY, APPS / "skitai_ws_echo.py"], port,
                      env={"BENCH_PORT": str(port), "SKITAI_PORT": str(port), "BENCH_THREADS": str(threads)})
    return factory


def _measure(factory, path: str, clients: int):
    def run() -> dict:
        port = free_port()
        with factory(port).running():
            url = f"ws://{HOST}:{port}{path}"
            return run_client(PEER_PY, "ws_client.py", "--url", url, "--clients", str(clients),
                              "--seconds", SECONDS, timeout=float(SECONDS) + 60)
    return run


def main() -> None:
    started = time.time()
    tables = []
    for clients in (1, 50):
        t = Table(f"ws_c{clients}", f"WebSocket echo, {clients} client{'s' if clients > 1 else ''} "
                  f"(sequential round trips), {SECONDS}s", BASELINE, unit="msg/s",
                  note="16-byte text messages; server on core 0, client (clients/ws_client.py) on core 1")
        t.measure_all([
            (BASELINE, _measure(_websockets, "/", clients)),
            ("uvicorn", _measure(_uvicorn, "/", clients)),
            ("skitai threads=0", _measure(_skitai(0), "/echo", clients)),
            ("skitai threads=4", _measure(_skitai(4), "/echo", clients)),
        ])
        tables.append(t)
    save("ws", tables, started)


if __name__ == "__main__":
    try:
        main()
    except Unavailable as exc:
        print(f"not available: {exc}")
