"""Interleaved A/B runs: is one server (or one commit of ours) faster than another, on this noisy machine?

The group scripts take the best of a few rounds, which is right for a table of many servers but says
little about a 10 % difference. Here two or more contenders alternate round after round (ABBA order),
each run alone on the server core, and the result is every round, the medians and each contender's
median over the first's. A difference smaller than the rounds' spread is not one.

Contenders: ``skitai`` (this checkout), ``skitai@<git ref>`` (that commit's skitai-core and aquests,
exported with ``git archive`` into a temporary folder, put first on ``sys.path``), and for ``ws``
the peers ``websockets``, ``uvicorn`` and ``uvicorn-wsproto``, for ``http1`` ``uvicorn`` and ``waitress``.

    python tools/bench/ab.py ws --clients 50 --rounds 8 websockets skitai
    python tools/bench/ab.py ws --clients 1 skitai skitai@HEAD~1
    python tools/bench/ab.py http1 --connections 64 --threads 0 skitai@main skitai uvicorn

The ``ws`` rows also give the server's CPU time per message (user + system of its process), which
the other core's noise hardly moves.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import servers
import ws
from harness import MAIN_PY, ROOT, Server, Unavailable, free_port, run_client, wrk

SOURCES = ("packages/skitai-core/src", "packages/aquests/src")


class Checkouts:
    """``skitai@ref`` contenders: each ref's sources exported once into one temporary folder."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-ab-"))
        self.paths: dict[str, list[str]] = {}

    def sys_path(self, ref: str) -> list[str]:
        if ref not in self.paths:
            dest = self.root / str(len(self.paths))
            dest.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, *SOURCES],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
            self.paths[ref] = [str(dest / src) for src in SOURCES]
        return self.paths[ref]

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _at(server: Server, name: str, sys_path: list[str] | None) -> Server:
    """The same launch script, run with another commit's sources first on ``sys.path``."""
    server.name = name
    if sys_path:
        script = str(server.argv[1])
        boot = (f"import runpy, sys; sys.path[:0] = {sys_path!r}; sys.argv = [{script!r}]; "
                f"runpy.run_path({script!r}, run_name='__main__')")
        server.argv = [MAIN_PY, "-c", boot]
    return server


def factory(group: str, name: str, args: argparse.Namespace, checkouts: Checkouts):
    """``port -> Server`` for one contender of a group."""
    if name == "skitai" or name.startswith("skitai@"):
        sys_path = checkouts.sys_path(name.split("@", 1)[1]) if "@" in name else None
        if group == "ws":
            return lambda port: _at(ws._skitai(args.threads)(port), name, sys_path)
        return lambda port: _at(servers.skitai(port, args.threads), name, sys_path)
    peers = {"ws": {"websockets": ws._websockets, "uvicorn": ws._uvicorn, "uvicorn-wsproto": ws._uvicorn_wsproto},
             "http1": {"uvicorn": lambda port: servers.uvicorn(port, "asgi3"), "waitress": servers.waitress}}
    if name not in peers[group]:
        raise SystemExit(f"unknown contender {name!r} for {group}: skitai, skitai@<ref>, "
                         + ", ".join(peers[group]))
    return peers[group][name]


def measure(group: str, name: str, make, args: argparse.Namespace) -> tuple[float, float | None]:
    """One run: (messages or requests per second, server CPU microseconds per message or None)."""
    port = free_port()
    with make(port).running() as server:
        if group == "http1":
            return wrk(servers.hello_url(port), args.connections, args.seconds)["rps"], None
        path = "/echo" if name.startswith("skitai") else "/"     # the peers' echo apps answer on any path
        before = ws._cpu_seconds(server.proc.pid)
        result = run_client(ws.PEER_PY, "ws_client.py", "--url", f"ws://127.0.0.1:{port}{path}",
                            "--clients", str(args.clients), "--seconds", str(args.seconds),
                            timeout=args.seconds + 60)
        used = ws._cpu_seconds(server.proc.pid) - before
        return result["rps"], used / max(result["messages"], 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("group", choices=("ws", "http1"))
    parser.add_argument("names", nargs="+", help="contenders; ratios are to the first")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50, help="ws: concurrent clients")
    parser.add_argument("--connections", type=int, default=64, help="http1: wrk connections")
    parser.add_argument("--threads", type=int, default=0, help="skitai worker threads (0: app on the loop)")
    args = parser.parse_args()
    checkouts = Checkouts()
    try:
        makers = {name: factory(args.group, name, args, checkouts) for name in args.names}
        rates: dict[str, list[float]] = {name: [] for name in args.names}
        cpu: dict[str, list[float]] = {name: [] for name in args.names}
        for r in range(args.rounds):
            order = args.names if r % 2 == 0 else args.names[::-1]
            line = []
            for name in order:
                rate, us = measure(args.group, name, makers[name], args)
                rates[name].append(rate)
                if us is not None:
                    cpu[name].append(us)
                line.append(f"{name} {rate:,.0f}" + (f" ({us:.1f} us CPU/msg)" if us is not None else ""))
            print(f"round {r + 1}: " + " | ".join(line), flush=True)
        first = statistics.median(rates[args.names[0]])
        print(f"\n{args.group}, {args.rounds} rounds of {args.seconds}s, median (min-max), ratio to "
              f"{args.names[0]}:")
        for name in args.names:
            med = statistics.median(rates[name])
            extra = f", {statistics.median(cpu[name]):.1f} us CPU/msg" if cpu[name] else ""
            print(f"  {name:24} {med:>10,.0f} ({min(rates[name]):,.0f}-{max(rates[name]):,.0f})"
                  f"  {med / first:.2f}x{extra}")
    except Unavailable as exc:
        print(f"not available: {exc}")
    finally:
        checkouts.cleanup()


if __name__ == "__main__":
    sys.exit(main())
