"""Issue 5: WebSocket echo, 1 client doing sequential round trips and 50 clients at once.

Servers: the `websockets` library's own server, uvicorn (ASGI echo), skitai (WSGI echo through the
websocket environ protocol) with threads=0 (the app on the loop, like-for-like with the other two; the
target's verdict) and threads=4 (the app on a worker thread: one hop there and one back per message).
The skitai app reads ``environ["websocket.message"]``, as the peers' handlers get their message object;
the "Flask-style app" row parses the message out of the query string instead (apps/skitai_ws_echo.py).
"uvicorn --ws wsproto" is uvicorn on the framing library skitai is held to (its default is websockets').
One lean client (clients/ws_client.py) for all; ratio to `websockets`.

A third table puts the same 50-client runs in messages per CPU-second of the server process (user +
system time from /proc) beside framing alone, in-process
(clients/ws_framing.py): wsproto's frame layer, which skitai must use, and websockets' own sans-IO layer.
Usage: python ws.py
"""
from __future__ import annotations

import os
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


def _uvicorn_wsproto(port: int) -> Server:
    """uvicorn with its wsproto implementation (``--ws wsproto``): the framing library skitai must use."""
    server = servers.uvicorn(port, "asgi3", "asgi_ws_echo:app")
    server.name = "uvicorn --ws wsproto"
    server.argv[1:1] = ["--ws", "wsproto"]
    return server


def _skitai(threads: int, query: bool = False):
    def factory(port: int) -> Server:
        reason = servers.skitai_reason()
        if reason:
            raise Unavailable(reason)
        return Server(f"skitai threads={threads}" + (" Flask-style app" if query else ""),
                      [MAIN_PY, APPS / "skitai_ws_echo.py"], port,
                      env={"BENCH_PORT": str(port), "SKITAI_PORT": str(port), "BENCH_THREADS": str(threads),
                           "BENCH_WS_QUERY": "1" if query else "0"})
    return factory


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(factory, path: str, clients: int):
    def run() -> dict:
        port = free_port()
        with factory(port).running() as server:
            url = f"ws://{HOST}:{port}{path}"
            before = _cpu_seconds(server.proc.pid)
            result = run_client(PEER_PY, "ws_client.py", "--url", url, "--clients", str(clients),
                                "--seconds", SECONDS, timeout=float(SECONDS) + 60)
            result["server_cpu_s"] = round(_cpu_seconds(server.proc.pid) - before, 3)
            return result
    return run


def _per_cpu_second(row: dict):
    """A whole server's measured row as messages per CPU-second of its process."""
    def run() -> dict:
        if row.get("rps") is None or not row.get("server_cpu_s"):
            raise Unavailable(row.get("reason", "no CPU time recorded"))
        return {"rps": row["messages"] / row["server_cpu_s"], "errors": row.get("errors", 0),
                "messages": row["messages"], "server_cpu_s": row["server_cpu_s"]}
    return run


def _framing(lib: str):
    def run() -> dict:
        return run_client(PEER_PY, "ws_framing.py", "--lib", lib, "--seconds", "2")
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
            ("uvicorn --ws wsproto", _measure(_uvicorn_wsproto, "/", clients)),
            ("skitai threads=0", _measure(_skitai(0), "/echo", clients)),
            ("skitai threads=4", _measure(_skitai(4), "/echo", clients)),
            ("skitai threads=0 Flask-style app", _measure(_skitai(0, query=True), "/echo", clients)),
        ])
        tables.append(t)
    cpu = Table("ws_cpu", "WebSocket echo, 50 clients, per CPU-second of the server process; framing alone "
                "in-process", BASELINE, unit="msg/CPU-s",
                note="whole servers: the 50-client rows above, messages / (user + system CPU seconds of the "
                "server process); framing alone: one 16-byte masked text frame parsed, UTF-8 checked and "
                "answered with a text frame, no I/O and no app (clients/ws_framing.py)")
    for row in t.rows:
        cpu.measure(row["name"], _per_cpu_second(row))
    cpu.measure("wsproto framing alone", _framing("wsproto"))
    cpu.measure("websockets sans-IO framing alone", _framing("websockets"))
    tables.append(cpu)
    save("ws", tables, started)


if __name__ == "__main__":
    try:
        main()
    except Unavailable as exc:
        print(f"not available: {exc}")
