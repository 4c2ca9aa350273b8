"""Prefork workers (``run(workers=N)``, N > 1): a supervising master and N serving children.

Each child binds the port itself with ``SO_REUSEPORT`` and the kernel spreads connections over them. The
master serves nothing: it restarts a child that dies, and on SIGTERM/SIGINT stops them all (SIGKILL after
``stop_timeout``). SIGHUP replaces every child with a fresh one; SIGUSR1 is passed on (log rotation).
A child that keeps dying right after start makes the master give up rather than fork without end.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import time
import traceback
from collections.abc import Callable

log = logging.getLogger("skitai.server")

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}
START_TIMEOUT = 60.0
CRASH_WINDOW = 10.0          # this many seconds ...
CRASH_LIMIT = 5              # ... this many deaths per worker slot: give up

Report = Callable[[str], None]


class StartError(RuntimeError):
    """The workers could not start (the reason of the first that failed)."""

Worker = Callable[[int, Report], int]


class Master:
    def __init__(self, count: int, worker: Worker, stop_timeout: float = 10.0) -> None:
        self.count = count
        self.worker = worker
        self.stop_timeout = stop_timeout
        self.children: dict[int, int] = {}        # pid -> slot
        self.retiring: set[int] = set()             # replaced by SIGHUP: not restarted when they exit
        self.deaths: list[float] = []
        self.rfd, self.wfd = os.pipe()

    # -------------------------------------------------------------- children
    def spawn(self, slot: int) -> int:
        pid = os.fork()
        if pid:
            self.children[pid] = slot
            return pid
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            for sig in SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            os.close(self.rfd)
            wfd = self.wfd
            failed = []

            def report(reason: str) -> None:
                failed.append(reason)
                os.write(wfd, b"." if not reason else b"!" + reason.encode("utf-8", "replace")[:500] + b"\n")

            code = self.worker(slot, report) or 0
        except BaseException:  # noqa: B036 - a child must never return into the master's code
            if not any(failed):          # a reported start failure is the master's to tell
                traceback.print_exc()
        finally:
            logging.shutdown()
            os._exit(code)

    def signal_all(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def reap(self) -> list[int]:
        """Collect dead children; returns their slots."""
        slots = []
        while self.children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                slots += self.children.values()
                self.children.clear()
                break
            if pid == 0:
                break
            slot = self.children.pop(pid, None)
            if slot is not None and pid not in self.retiring:
                slots.append(slot)
            self.retiring.discard(pid)
        return slots

    # -------------------------------------------------------------- life
    def run(self, ready: Report | None = None) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            for slot in range(self.count):
                self.spawn(slot)
            reason = self.wait_ready()
            if reason:
                self.stop()
                if ready:
                    ready(reason)
                log.error("workers failed to start: %s", reason)
                raise StartError(reason)
            if ready:
                ready("")
            log.info("%d workers serving (master pid %d)", self.count, os.getpid())
            return self.supervise()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            os.close(self.rfd)
            os.close(self.wfd)

    def wait_ready(self) -> str:
        """'' when every child reported that it listens, else the first failure."""
        pending, buf = self.count, b""
        deadline = time.monotonic() + START_TIMEOUT
        while pending > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"workers did not start within {START_TIMEOUT:.0f}s"
            readable, _, _ = select.select([self.rfd], [], [], min(left, 0.2))
            if readable:
                buf += os.read(self.rfd, 4096)
                if b"!" in buf:
                    return buf.split(b"!", 1)[1].split(b"\n", 1)[0].decode("utf-8", "replace")
                pending = self.count - buf.count(b".")
            elif self.reap():
                return "a worker exited while starting"
        return ""

    def supervise(self) -> int:
        while True:
            info = signal.sigtimedwait(SIGNALS, 1.0)
            sig = info.si_signo if info else None
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.stop()
                return 0
            if sig == signal.SIGHUP:
                self.replace_all()
            elif sig == signal.SIGUSR1:
                self.signal_all(signal.SIGUSR1)
            self._drain_reports()
            now = time.monotonic()
            for slot in self.reap():
                self.deaths = [t for t in self.deaths if now - t < CRASH_WINDOW] + [now]
                if len(self.deaths) > CRASH_LIMIT * self.count:
                    log.error("workers keep dying: giving up")
                    self.stop()
                    return 1
                log.warning("worker #%d exited: starting a new one", slot)
                self.spawn(slot)

    def replace_all(self) -> None:
        """SIGHUP: start a fresh set of workers, and stop the old ones only once the new ones listen."""
        old = set(self.children)
        log.info("SIGHUP: replacing %d workers", len(old))
        self._drain_reports()
        for slot in range(self.count):
            self.spawn(slot)
        reason = self.wait_ready()
        retire = old if not reason else set(self.children) - old
        if reason:
            log.error("new workers failed to start (%s): the old ones keep serving", reason)
        self.retiring |= retire
        for pid in retire:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _drain_reports(self) -> None:
        while select.select([self.rfd], [], [], 0)[0]:
            if not os.read(self.rfd, 4096):
                break

    def stop(self) -> None:
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        if self.children:
            log.warning("killing %d workers that did not stop in %.0fs", len(self.children), self.stop_timeout)
            self.signal_all(signal.SIGKILL)
            while self.children:
                self.reap()
                time.sleep(0.01)


def supervise(count: int, worker: Worker, stop_timeout: float = 10.0, ready: Report | None = None) -> int:
    """Run ``worker(slot, report)`` in ``count`` children until SIGTERM/SIGINT; returns the exit code."""
    return Master(count, worker, stop_timeout).run(ready)
