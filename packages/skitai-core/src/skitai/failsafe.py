"""``python app.py -f``: run the app under a supervisor that starts it again when it dies (SK-20).

The supervisor runs ``python app.py <the same arguments without -f>`` as a child and waits. A child that
exits with 0 (a clean stop) ends the supervisor; any other exit (a crash, a kill, exit code 3 for "restart")
starts a new child after a short pause. SIGTERM/SIGINT are passed to the child and end the supervisor once
the child is gone. A child that keeps dying right after its start makes the supervisor give up (exit 1).
A child whose supervisor is killed (SIGKILL: nothing is passed on) stops by itself.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PAUSE = 1.0               # seconds between a death and the next start
CRASH_WINDOW = 30.0       # this many seconds ...
CRASH_LIMIT = 10          # ... this many deaths: give up
SUPERVISOR_ENV = "SKITAI_SUPERVISOR"    # the child learns its supervisor's pid, to stop when it is gone


def watch_supervisor() -> None:
    """In the supervised app: stop gracefully once the supervisor is gone (killed with SIGKILL, say),
    rather than serve on as an orphan nobody restarts or stops."""
    pid = os.environ.pop(SUPERVISOR_ENV, "")
    if pid.isdigit() and int(pid) == os.getppid():
        from .workers import watch_master
        watch_master(int(pid))


def child_argv(argv: list[str]) -> list[str]:
    """The command that runs the app itself: this interpreter, the script, the arguments without ``-f``."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return [sys.executable, script, *[a for a in argv if a != "-f"]]


def supervise(argv: list[str], pause: float = PAUSE, out=None) -> int:
    """Run the app in a child until it stops cleanly or this process gets SIGTERM/SIGINT."""
    out = out or sys.stderr
    command = child_argv(argv)
    stopping: list[int] = []
    child: subprocess.Popen | None = None

    def forward(sig: int, _frame) -> None:
        stopping.append(sig)
        if child is not None and child.poll() is None:
            child.send_signal(sig)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    deaths: list[float] = []
    try:
        while not stopping:
            child = subprocess.Popen(command, env={**os.environ, SUPERVISOR_ENV: str(os.getpid())})
            print(f"skitai: supervising pid {child.pid}", file=out, flush=True)
            code = _wait(child)
            if stopping or code == 0:
                return 0
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < CRASH_WINDOW] + [now]
            if len(deaths) >= CRASH_LIMIT:
                print(f"skitai: the app died {len(deaths)} times in {CRASH_WINDOW:.0f}s: giving up",
                      file=out, flush=True)
                return 1
            print(f"skitai: the app exited with {code}: starting it again", file=out, flush=True)
            deadline = time.monotonic() + pause
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.05)
        return 0
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            _wait(child)
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _wait(child: subprocess.Popen) -> int:
    while True:
        try:
            return child.wait()
        except InterruptedError:      # pragma: no cover - PEP 475 retries, kept for safety
            continue
