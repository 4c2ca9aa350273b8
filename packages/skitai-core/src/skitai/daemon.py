"""Run as a daemon (POSIX): detach, keep a pid file, and answer ``stop`` / ``status`` from another shell.

``start`` returns only when the daemon serves (exit 0) or failed to start (exit 1, with the reason).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

STOPPED = 3          # LSB exit code of "status" for a program that is not running
_CLOCK_SLACK = 2.0   # /proc's boot time is whole seconds: a daemon is never taken for a newer process


def read_pid(pidfile: str) -> int | None:
    """The pid in ``pidfile`` when that process is alive and is the one that wrote the file, else None
    (a stale file is removed)."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().split()[0])
            written = os.fstat(f.fileno()).st_mtime
    except (OSError, ValueError, IndexError):
        return None
    if alive(pid) and not started_after(pid, written):
        return pid
    remove(pidfile, pid)
    return None


def started_after(pid: int, when: float) -> bool:
    """True when process ``pid`` started after ``when`` (epoch seconds), so it cannot have written a pid
    file dated ``when``: the daemon died and the system gave its pid to another process. The file stays a
    bare number (``systemd``'s ``PIDFile=`` reads it); the check uses its mtime and ``/proc``. False where
    ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])       # field 22: start time since boot
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return boot + ticks / os.sysconf("SC_CLK_TCK") > when + _CLOCK_SLACK



def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie child of ours is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def write_pid(pidfile: str) -> None:
    os.makedirs(os.path.dirname(pidfile) or ".", exist_ok=True)
    tmp = f"{pidfile}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, pidfile)


def remove(pidfile: str, pid: int | None = None) -> None:
    """Remove ``pidfile`` (only when it still names ``pid``, if given)."""
    try:
        if pid is not None:
            with open(pidfile) as f:
                if f.read().split()[:1] != [str(pid)]:
                    return
        os.unlink(pidfile)
    except (OSError, ValueError):
        pass


def stop(pidfile: str, timeout: float = 15.0, out=None) -> int:
    """SIGTERM the daemon and wait for it to exit (SIGKILL after ``timeout``)."""
    pid = read_pid(pidfile)
    if pid is None:
        print("skitai: not running", file=out or sys.stdout)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            print(f"skitai: killed (pid {pid}) after {timeout:.0f}s", file=out or sys.stdout)
            break
        time.sleep(0.05)
    else:
        print(f"skitai: stopped (pid {pid})", file=out or sys.stdout)
    remove(pidfile, pid)
    return 0


def status(pidfile: str, out=None) -> int:
    pid = read_pid(pidfile)
    if pid is None:
        print("skitai: stopped", file=out or sys.stdout)
        return STOPPED
    print(f"skitai: running (pid {pid})", file=out or sys.stdout)
    return 0


def daemonize(pidfile: str, output: str, serve: Callable[[Callable[[str], None]], int],
              wait: float = 60.0, out=None) -> int:
    """Fork off ``serve(report)`` as a daemon; in the caller, wait for its report and return an exit code.

    ``serve`` must call ``report("")`` once it listens, or ``report(reason)`` when it cannot start.
    """
    if read_pid(pidfile) is not None:
        print(f"skitai: already running (pid {read_pid(pidfile)})", file=out or sys.stdout)
        return 1
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    first = os.fork()
    if first:                                      # the caller: wait for the daemon's word
        os.close(wfd)
        return _await_report(rfd, first, pidfile, wait, out)
    os.close(rfd)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o022)
    _redirect(output)
    reported = False

    def report(reason: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            os.write(wfd, (reason or "ok").encode("utf-8", "replace")[:4000])
            os.close(wfd)

    code = 1
    try:
        try:
            write_pid(pidfile)
        except OSError as e:
            report(f"cannot write the pid file {pidfile}: {e.strerror or e}")
            os._exit(1)
        code = serve(report) or 0
    except BaseException as e:  # noqa: B036 - the daemon must never return into the caller's script
        traceback.print_exc()
        report(f"{type(e).__name__}: {e}")
    finally:
        report("exited before serving")
        remove(pidfile, os.getpid())
        logging.shutdown()
    os._exit(code)


def _await_report(rfd: int, first: int, pidfile: str, wait: float, out) -> int:
    import select
    chunks = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        ready, _, _ = select.select([rfd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data = os.read(rfd, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(rfd)
    try:
        os.waitpid(first, 0)                       # the first child exits at once
    except ChildProcessError:
        pass
    word = b"".join(chunks).decode("utf-8", "replace")
    if word == "ok":
        print(f"skitai: started (pid {read_pid(pidfile)})", file=out or sys.stdout)
        return 0
    print(f"skitai: failed to start: {word or 'no answer from the daemon'}", file=out or sys.stdout)
    return 1


def _redirect(output: str) -> None:
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
