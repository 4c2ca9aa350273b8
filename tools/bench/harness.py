"""What every benchmark script shares: paths, pinned processes, load generators, result files.

The machine has 2 cores: servers run on core 0 (``SERVER_CPU``), load generators and benchmark
clients on core 1 (``CLIENT_CPU``). Every process is started by us, in its own session, and stopped
by its own id. Every run is bounded in time.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
APPS = BENCH / "apps"
CLIENTS = BENCH / "clients"
PEERS = BENCH / ".peers"
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs"
WWW = PEERS / "www"
TLS = PEERS / "tls"

MAIN_PY = ROOT / ".venv" / "bin" / "python"
PEER_PY = PEERS / "peers" / "bin" / "python"
OLD_PY = PEERS / "skitai057" / "bin" / "python"
PEER_BIN = PEERS / "peers" / "bin"

SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
CLIENT_CPU = os.environ.get("BENCH_CLIENT_CPU", "1")
DURATION = int(os.environ.get("BENCH_DURATION", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))  # wrk/h2load/ws rows: best of this many interleaved rounds
HOST = "127.0.0.1"
HELLO_PATH = "/hello"


class Unavailable(Exception):
    """This measurement cannot run here; the message says why (shown as "not available: ...")."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *map(str, argv)]


def old_skitai_reason() -> str | None:
    """Why the original skitai 0.57 cannot run, or None when its venv is ready."""
    failed = PEERS / "skitai057" / ".failed"
    if failed.exists():
        return "original skitai 0.57 did not install/import: " + failed.read_text().strip().splitlines()[-1]
    if not OLD_PY.exists():
        return "original skitai 0.57 venv missing (run tools/bench/setup.sh)"
    return None


# ---------------------------------------------------------------- servers

@dataclass
class Server:
    """A server process pinned to the server core; ``with server.running(): ...``."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    ready_url: str | None = None  # GET this until 2xx; else wait for the port
    ready_timeout: float = 30.0
    cpu: str = SERVER_CPU
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", self.name).strip("_")
        return LOGS / f"{slug}.log"

    @contextmanager
    def running(self) -> Iterator["Server"]:
        LOGS.mkdir(parents=True, exist_ok=True)
        exe = str(self.argv[0])
        if "/" in exe and not os.path.exists(exe):
            raise Unavailable(f"{exe} is missing (run tools/bench/setup.sh)")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        for name in ("VIRTUAL_ENV", "PYTHONPATH"):
            env.pop(name, None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                pinned(self.cpu, self.argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=self.cwd or str(APPS), start_new_session=True)
        try:
            self._wait_ready()
            yield self
        finally:
            self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"{self.name} exited with code {self.proc.returncode}: {self.log_tail()}")
            try:
                if self.ready_url:
                    with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                        r.read()
                        return
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except Exception as exc:  # noqa: BLE001 - anything means "not ready yet"
                last = str(exc)
                time.sleep(0.05)
        raise Unavailable(f"{self.name} not ready after {self.ready_timeout:.0f}s ({last}): {self.log_tail()}")

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[-400:]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)  # the session we created for this child
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


@contextmanager
def nginx(cpu: str = SERVER_CPU) -> Iterator[dict]:
    """nginx on three ports: HTTP/1.1 ``port``, h2c ``h2c_port``, TLS (h2 + http/1.1) ``tls_port``."""
    if not shutil.which("nginx"):
        raise Unavailable("nginx is not installed (apt-get install -y nginx)")
    prefix = tempfile.mkdtemp(prefix="bench-nginx-")
    ports = {"port": free_port(), "h2c_port": free_port(), "tls_port": free_port()}
    conf = (APPS / "nginx.conf.in").read_text()
    for key, value in {"PREFIX": prefix, "TLS": TLS, "WWW": WWW, "PORT": ports["port"],
                       "H2C_PORT": ports["h2c_port"], "TLS_PORT": ports["tls_port"]}.items():
        conf = conf.replace(f"@{key}@", str(value))
    Path(prefix, "nginx.conf").write_text(conf)
    srv = Server("nginx", [shutil.which("nginx"), "-p", prefix, "-c", f"{prefix}/nginx.conf"],
                 ports["port"], ready_url=f"http://{HOST}:{ports['port']}{HELLO_PATH}", cpu=cpu)
    try:
        with srv.running():
            yield ports
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


# ---------------------------------------------------------------- load generators

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url: str, connections: int = 64, duration: int | None = None, threads: int = 1,
        warmup: int = 1) -> dict:
    """Run wrk pinned to the client core; req/s, p99 (ms), errors (socket errors + non-2xx/3xx).

    A short unrecorded warm-up run goes first (caches, lazy imports, JIT-free but not cold).
    """
    if not shutil.which("wrk"):
        raise Unavailable("wrk is not installed (apt-get install -y wrk)")
    duration = duration or DURATION
    if warmup:
        subprocess.run(pinned(CLIENT_CPU, ["wrk", "-t1", f"-c{min(connections, 64)}", f"-d{warmup}s", url]),
                       capture_output=True, timeout=warmup + 30)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "4s", url]
    out = subprocess.run(pinned(CLIENT_CPU, argv), capture_output=True, text=True,
                         timeout=duration + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise Unavailable(f"wrk printed no result: {out.strip()[-300:]}")
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    err_parts = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()))) if sock else {}
    if non2xx:
        err_parts["non2xx"] = int(non2xx.group(1))
    if total and int(total.group(1)) == 0:
        err_parts["no_response"] = 1  # nothing completed in the whole run: a stall, not a result
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    return {
        "rps": float(rps.group(1)),
        "p99_ms": _ms(p99.group(1)) if p99 else None,
        "errors": sum(err_parts.values()),
        "error_kinds": {k: v for k, v in err_parts.items() if v},
        "requests": int(total.group(1)) if total else None,
        "transfer": f"{transfer.group(1)}{transfer.group(2)}/s" if transfer else None,
        "cmd": " ".join(argv),
    }


def h2load(url: str, clients: int = 16, streams: int = 10, duration: int | None = None) -> dict:
    """Run h2load pinned to the client core for a fixed time (h2c prior knowledge for http://)."""
    if not shutil.which("h2load"):
        raise Unavailable("h2load is not installed (apt-get install -y nghttp2-client)")
    duration = duration or DURATION
    argv = ["h2load", "-t1", f"-c{clients}", f"-m{streams}", "-D", str(duration), "--warm-up-time=1", url]
    out = subprocess.run(pinned(CLIENT_CPU, argv), capture_output=True, text=True,
                         timeout=duration + 30).stdout
    fin = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", out)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    proto = re.search(r"Application protocol: (\S+)", out)
    if not fin or not req:
        raise Unavailable(f"h2load printed no result: {out.strip()[-300:]}")
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    errors = int(req.group(5)) + int(req.group(6)) + int(req.group(7))
    if status:
        errors += int(status.group(3)) + int(status.group(4))
    if int(req.group(4)) == 0:
        errors = max(errors, 1)
    return {
        "rps": float(fin.group(1)),
        "errors": errors,
        "requests": int(req.group(3)),
        "max_ms": _ms(lat.group(2)) if lat else None,
        "protocol": proto.group(1) if proto else None,
        "cmd": " ".join(argv),
    }


def run_client(python: Path, script: str, *args: str, timeout: float = 120,
               env: dict | None = None) -> dict:
    """Run a client script from tools/bench/clients on the client core; it prints one JSON line."""
    if not Path(python).exists():
        raise Unavailable(f"{python} is missing (run tools/bench/setup.sh)")
    argv = pinned(CLIENT_CPU, [python, CLIENTS / script, *args])
    full_env = {**os.environ, **(env or {})}
    for name in ("VIRTUAL_ENV", "PYTHONPATH"):  # tools/bench must not shadow anything (h2.py vs h2)
        full_env.pop(name, None)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{script} took longer than {timeout:.0f}s") from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        err = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"{script} failed: {err[:300]}")
    result = json.loads(lines[-1])
    if result.get("unavailable"):
        raise Unavailable(result["unavailable"])
    return result


# ---------------------------------------------------------------- results

def machine() -> dict:
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU}


def command() -> str:
    return os.environ.get("BENCH_COMMAND") or " ".join(["python", *sys.argv])


class Table:
    """One comparison: rows of measurements and each row's ratio to ``baseline``."""

    def __init__(self, key: str, title: str, baseline: str | None, unit: str = "req/s",
                 note: str = "") -> None:
        self.key, self.title, self.baseline, self.unit, self.note = key, title, baseline, unit, note
        self.rows: list[dict] = []

    def measure(self, name: str, fn, repeat: int = 1, **extra) -> dict:
        """Run ``fn() -> dict(rps=...)`` (best of ``repeat``); ``Unavailable`` or a failure becomes a marked row.

        Best-of: other work on this shared machine can only slow a run down, never speed it up.
        Measuring a name again (a later round) keeps the better run; an unavailable row is not retried.
        """
        prev = next((r for r in self.rows if r["name"] == name), None)
        if prev is not None and prev.get("rps") is None:
            return prev
        print(f"  {self.key}: {name} ...", end=" ", flush=True)
        load = round(os.getloadavg()[0], 2)  # other work on this shared machine shows up here
        try:
            runs = [fn() for _ in range(repeat)]
            best = max(runs, key=lambda r: r["rps"])
            values = [round(r["rps"]) for r in runs]
            row = {"name": name, **best, "load_before": load, **extra}
            print(f"{row['rps']:,.0f} {self.unit}" + (f", {row['errors']} errors" if row.get("errors") else ""))
        except Unavailable as exc:
            row = {"name": name, "rps": None, "reason": str(exc), **extra}
            print(f"not available: {exc}")
            values = []
        except Exception as exc:  # noqa: BLE001 - the harness always completes
            row = {"name": name, "rps": None, "reason": f"{type(exc).__name__}: {exc}", **extra}
            print(f"not available: {row['reason']}")
            values = []
        if prev is None:
            row["runs"] = values
            self.rows.append(row)
            return row
        values = prev["runs"] + values
        if row.get("rps") is not None and row["rps"] > prev["rps"]:
            prev.clear()
            prev.update(row)
        prev["runs"] = values
        return prev

    def measure_all(self, items: list[tuple[str, object]], rounds: int | None = None) -> None:
        """Measure every (name, fn) in turn, ``rounds`` times over (interleaved), keeping each best."""
        for _ in range(rounds or ROUNDS):
            for name, fn in items:
                self.measure(name, fn)

    def ratio(self, row: dict) -> float | None:
        base = next((r for r in self.rows if r["name"] == self.baseline), None)
        if not base or not base.get("rps") or not row.get("rps"):
            return None
        return row["rps"] / base["rps"]

    def as_dict(self) -> dict:
        for row in self.rows:
            row["ratio"] = self.ratio(row)
        return {"key": self.key, "title": self.title, "baseline": self.baseline, "unit": self.unit,
                "note": self.note, "rows": self.rows}

    def print(self) -> None:
        print(f"\n{self.title}" + (f"  (ratio to {self.baseline})" if self.baseline else ""))
        for row in self.rows:
            if row.get("rps") is None:
                print(f"  {row['name']:<32} not available: {row.get('reason', '')}")
                continue
            ratio = self.ratio(row)
            p99 = f"p99 {row['p99_ms']:8.2f} ms" if row.get("p99_ms") is not None else " " * 15
            print(f"  {row['name']:<32} {row['rps']:>11,.0f} {self.unit:<6} {p99}  errors {row.get('errors', 0):>6}"
                  + (f"  x{ratio:.2f}" if ratio is not None else ""))


def save(group: str, tables: list[Table], started: float) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for t in tables:
        t.print()
    path = RESULTS / f"{group}.json"
    path.write_text(json.dumps({
        "group": group, "command": command(), "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "seconds": round(time.time() - started, 1), "duration": DURATION,
        "tables": [t.as_dict() for t in tables],
    }, indent=1))
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path
