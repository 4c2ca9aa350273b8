"""Prefork workers (``run(workers=N)``, N > 1): a supervising master and N serving children.

Each child binds the port itself with ``SO_REUSEPORT`` and the kernel spreads connections over them. The
master serves nothing: it restarts a child that dies, and on SIGTERM/SIGINT stops them all (SIGKILL
``KILL_MARGIN`` seconds after ``stop_timeout``). SIGHUP replaces every child with a fresh one; SIGUSR1 is
passed on (log rotation).

Children that keep failing to *start* make the master give up rather than fork without end. A child that
served and then died (an app crashing on a request) is always started again, after ``CRASH_PAUSE`` when
such deaths come too fast: a bad request must not take the whole server down. A child whose master is
gone (killed with SIGKILL) stops itself gracefully instead of serving on as an orphan.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger("skitai.server")

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}
START_TIMEOUT = 60.0
CRASH_WINDOW = 10.0          # this many seconds ...
CRASH_LIMIT = 5              # ... this many failed starts per worker slot: give up
CRASH_PAUSE = 1.0            # a serving worker died more often than that: wait this long before a new one
KILL_MARGIN = 2.0            # seconds after stop_timeout before SIGKILL (time for the apps' cleanup)
ORPHAN_CHECK = 0.5           # how often a child looks whether its master is still there

Report = Callable[[str], None]


class StartError(RuntimeError):
    """The workers could not start (the reason of the first that failed)."""

Worker = Callable[[int, Report], int]


class Master:
    def __init__(self, count: int, worker: Worker, stop_timeout: float = 10.0) -> None:
        self.pid = os.getpid()
        self.count = count
        self.worker = worker
        self.stop_timeout = stop_timeout
        self.children: dict[int, int] = {}        # pid -> slot
        self.retiring: dict[int, float] = {}        # replaced by SIGHUP: pid -> when to SIGKILL it
        self.ready: set[int] = set()                # children that reported that they listen
        self.failed: dict[int, str] = {}            # children that reported why they could not start
        self.deaths: list[float] = []               # failed starts
        self.crashes: list[float] = []              # deaths after serving
        self.due: list[tuple[float, int]] = []      # (when, slot): restarts put off by CRASH_PAUSE
        self.buf = b""
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
            watch_master(self.pid)

            def report(reason: str) -> None:
                failed.append(reason)
                text = reason.replace("\n", " ").encode("utf-8", "replace")[:500]
                os.write(wfd, b"%d %s\n" % (os.getpid(), b"!" + text if reason else b"."))

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

    def reap(self) -> list[tuple[int, int]]:
        """Collect dead children; returns (pid, slot) of those to replace (not the retiring ones)."""
        dead = []
        while self.children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                dead += [(p, s) for p, s in self.children.items() if p not in self.retiring]
                self.children.clear()
                self.retiring.clear()
                break
            if pid == 0:
                break
            slot = self.children.pop(pid, None)
            if slot is not None and self.retiring.pop(pid, None) is None:
                dead.append((pid, slot))
        return dead

    def read_reports(self, timeout: float = 0.0) -> None:
        """Take the children's ``"<pid> ."`` (listening) and ``"<pid> !reason"`` lines off the pipe."""
        while select.select([self.rfd], [], [], timeout)[0]:
            timeout = 0.0
            data = os.read(self.rfd, 4096)
            if not data:
                break
            self.buf += data
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                pid, _, word = line.partition(b" ")
                if not pid.isdigit():
                    continue
                if word == b".":
                    self.ready.add(int(pid))
                else:
                    self.failed[int(pid)] = word[1:].decode("utf-8", "replace")

    # -------------------------------------------------------------- life
    def run(self, ready: Report | None = None) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            reason = self.wait_ready([self.spawn(slot) for slot in range(self.count)])
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

    def wait_ready(self, pids: list[int]) -> str:
        """'' when every child of ``pids`` reported that it listens, else the first failure."""
        pending = set(pids)
        deadline = time.monotonic() + START_TIMEOUT
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"workers did not start within {START_TIMEOUT:.0f}s"
            self.read_reports(min(left, 0.2))
            for pid in list(pending):
                if pid in self.failed:
                    return self.failed[pid]
                if pid in self.ready:
                    pending.discard(pid)
            for pid, slot in self.reap():
                self.read_reports()
                if pid in pending:
                    return self.failed.get(pid, "a worker exited while starting")
                self.due.append((time.monotonic(), slot))     # an old worker died meanwhile: replace it
        return ""

    def supervise(self) -> int:
        while True:
            now = time.monotonic()
            wait = min([1.0] + [max(0.01, when - now) for when, _ in self.due])
            info = signal.sigtimedwait(SIGNALS, wait)
            sig = info.si_signo if info else None
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.stop()
                return 0
            if sig == signal.SIGHUP:
                self.replace_all()
            elif sig == signal.SIGUSR1:
                self.signal_all(signal.SIGUSR1)
            dead = self.reap()
            self.read_reports()
            now = time.monotonic()
            for pid, slot in dead:
                if pid in self.ready:          # it served: restart it, whatever killed it
                    self.crashes = [t for t in self.crashes if now - t < CRASH_WINDOW] + [now]
                    pause = CRASH_PAUSE if len(self.crashes) > CRASH_LIMIT * self.count else 0.0
                    log.warning("worker #%d (pid %d) died: starting a new one%s", slot, pid,
                                f" in {pause:.0f}s" if pause else "")
                    self.due.append((now + pause, slot))
                    continue
                self.deaths = [t for t in self.deaths if now - t < CRASH_WINDOW] + [now]
                reason = self.failed.get(pid, "it exited before listening")
                if len(self.deaths) > CRASH_LIMIT * self.count:
                    log.error("workers keep failing to start (%s): giving up", reason)
                    self.stop()
                    return 1
                log.warning("worker #%d could not start (%s): trying again", slot, reason)
                self.due.append((now, slot))
            self.ready.intersection_update(self.children)
            self.failed = {p: r for p, r in self.failed.items() if p in self.children}
            for when, slot in sorted(self.due):
                if when <= now:
                    self.due.remove((when, slot))
                    self.spawn(slot)
            for pid, when in list(self.retiring.items()):
                if now >= when and pid in self.children:
                    log.warning("killing replaced worker pid %d: still running %.0fs after SIGTERM",
                                pid, self.stop_timeout + KILL_MARGIN)
                    os.kill(pid, signal.SIGKILL)
                    self.retiring[pid] = float("inf")

    def replace_all(self) -> None:
        """SIGHUP: start a fresh set of workers, and stop the old ones only once the new ones listen."""
        old = set(self.children) - set(self.retiring)
        log.info("SIGHUP: replacing %d workers", len(old))
        new = [self.spawn(slot) for slot in range(self.count)]
        reason = self.wait_ready(new)
        retire = old if not reason else set(new)
        if reason:
            log.error("new workers failed to start (%s): the old ones keep serving", reason)
        else:
            self.due.clear()                   # the new set covers every slot
        deadline = time.monotonic() + self.stop_timeout + KILL_MARGIN
        for pid in retire & set(self.children):
            self.retiring[pid] = deadline
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout + KILL_MARGIN
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        if self.children:
            log.warning("killing %d workers that did not stop in %.0fs", len(self.children),
                        self.stop_timeout + KILL_MARGIN)
            self.signal_all(signal.SIGKILL)
            while self.children:
                self.reap()
                time.sleep(0.01)


def watch_master(master: int) -> None:
    """In a child: SIGTERM itself (a graceful stop) once ``master`` is gone, so no orphan serves on."""
    def watch() -> None:
        while os.getppid() == master:
            time.sleep(ORPHAN_CHECK)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="skitai-master-watch", daemon=True).start()


def supervise(count: int, worker: Worker, stop_timeout: float = 10.0, ready: Report | None = None) -> int:
    """Run ``worker(slot, report)`` in ``count`` children until SIGTERM/SIGINT; returns the exit code."""
    return Master(count, worker, stop_timeout).run(ready)
