"""CPU instructions per WebSocket echo message, counted by callgrind: the measure this noisy machine cannot move.

Wall-clock rates here swing by a third between rounds; instruction counts repeat to a few hundred per
message whatever the other core does. Each contender runs under ``valgrind --tool=callgrind`` on the server
core; the lean client (clients/ws_client.py --pause) opens its connections, the counters are zeroed,
the client runs its round trips, the counters are dumped before the closes, and the total is divided by the
messages answered. User-space instructions only: the kernel's work (one read, one write per message for
every server here) is not in it.

    python tools/bench/cg_ws.py --clients 50 websockets skitai skitai@HEAD~3
    python tools/bench/cg_ws.py --clients 1 skitai

Contenders as for ab.py: ``skitai``, ``skitai@<git ref>``, ``websockets``, ``uvicorn``, ``uvicorn-wsproto``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from ab import Checkouts, factory
from harness import CLIENT_CPU, CLIENTS, PEER_PY, Unavailable, free_port, pinned


def _total(pattern: str) -> int:
    """Instructions in the callgrind dumps matching ``pattern`` (one per process, threads included)."""
    total = 0
    for path in glob.glob(pattern):
        with open(path) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def count(name: str, make, args: argparse.Namespace) -> tuple[int, int]:
    """(instructions per message, messages) for one contender."""
    port = free_port()
    server = make(port)
    folder = tempfile.mkdtemp(prefix="bench-cg-")
    prefix = os.path.join(folder, "cg.out")
    server.argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p", *server.argv]
    server.ready_timeout = 180.0
    path = "/echo" if name.startswith("skitai") else "/"
    try:
        with server.running():
            client = subprocess.Popen(
                pinned(CLIENT_CPU, [PEER_PY, CLIENTS / "ws_client.py", "--url", f"ws://127.0.0.1:{port}{path}",
                                    "--clients", str(args.clients), "--seconds", str(args.seconds), "--pause"]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                line = client.stdout.readline()
                if line.strip() != "READY":
                    raise Unavailable(f"{name}: the client did not get its connections open: {line.strip()}")
                time.sleep(1)
                control = ["callgrind_control"]
                subprocess.run([*control, "-z", str(server.proc.pid)], capture_output=True, check=True)
                client.stdin.write("\n")
                client.stdin.flush()
                result = json.loads(client.stdout.readline())
                subprocess.run([*control, "-d", str(server.proc.pid)], capture_output=True, check=True)
                client.stdin.write("\n")
                client.stdin.flush()
                client.wait(30)
            finally:
                if client.poll() is None:
                    client.kill()
        instructions = _total(prefix + ".*.1")   # the dump taken after the run (-d); not the closes at exit
        return instructions // max(result["messages"], 1), result["messages"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=6, help="of round trips (under valgrind: ~50x slower)")
    parser.add_argument("--threads", type=int, default=0, help="skitai worker threads (0: app on the loop)")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("not available: valgrind is not installed (apt-get install -y valgrind)")
        return
    checkouts = Checkouts()
    try:
        print(f"callgrind, {args.clients} client(s), {args.seconds}s of round trips, user-space instructions "
              f"per message:")
        for name in args.names:
            per_message, messages = count(name, factory("ws", name, args, checkouts), args)
            print(f"  {name:24} {per_message:>9,}  ({messages:,} messages)", flush=True)
    except Unavailable as exc:
        print(f"not available: {exc}")
    finally:
        checkouts.cleanup()


if __name__ == "__main__":
    sys.exit(main())
