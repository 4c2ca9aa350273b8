"""Write docs/benchmarks.md from tools/bench/results/*.json: machine, commands, tables, targets.

Usage: python tools/bench/report.py [--out docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from harness import MAIN_PY, OLD_PY, PEER_PY, RESULTS, ROOT

GROUPS = ["http1", "static", "client", "db", "h2", "ws", "was"]

# (issue, text, table, row, peer row or None, minimum ratio); peer None = ratio to the table's baseline
RATIO_TARGETS = [
    ("2", "skitai threads=4 at least 2x waitress (hello, c64)", "http1_hello", "skitai threads=4", "waitress", 2.0),
    ("2", "skitai threads=0 at least uvicorn's ASGI hello", "http1_hello", "skitai threads=0", "uvicorn ASGI", 1.0),
    ("2", "static 4 KiB at least 2x waitress", "static_4k", "skitai threads=4", "waitress", 2.0),
    ("2", "static 1 MiB at least 0.9x nginx", "static_1m", "skitai threads=4", "nginx", 0.9),
    ("3", "aquests HTTP/1.1 at least 1.5x aiohttp (standalone API)", "client_http", "aquests HTTP/1.1",
     "aiohttp", 1.5),
    ("3", "aquests HTTP/1.1 at least 1.5x aiohttp (awaitable API)", "client_http", "aquests awaitable HTTP/1.1",
     "aiohttp", 1.5),
    ("3", "PostgreSQL at least 0.8x asyncpg (standalone API)", "db_pg", "aquests (standalone)", "asyncpg", 0.8),
    ("3", "PostgreSQL at least 0.8x asyncpg (awaitable API)", "db_pg", "aquests (async)", "asyncpg", 0.8),
    ("3", "Redis at least 2x redis-py asyncio, no pipelining (standalone API)", "db_redis", "aquests (standalone)",
     "redis-py asyncio", 2.0),
    ("3", "Redis at least 2x redis-py asyncio, no pipelining (awaitable API)", "db_redis", "aquests (async)",
     "redis-py asyncio", 2.0),
    ("5", "h2load h2c at least 2x the original skitai 0.57", "h2_h2c", "skitai threads=4", "skitai 0.57 threads=4",
     2.0),
    ("5", "h2load TLS at least 2x the original skitai 0.57", "h2_tls", "skitai threads=4", "skitai 0.57 threads=4",
     2.0),
    # WebSocket: the verdict is threads=0 (the handler on the loop, as the websockets server runs its own);
    # threads=4 adds a hop to a worker thread and back per message, shown for information
    ("5", "WebSocket echo, 1 client: at least the `websockets` server", "ws_c1", "skitai threads=0",
     "websockets server", 1.0),
    ("5", "WebSocket echo, 50 clients: at least the `websockets` server", "ws_c50", "skitai threads=0",
     "websockets server", 1.0),
    ("5", "(extra) WebSocket echo, 1 client, threads=4: at least the `websockets` server", "ws_c1",
     "skitai threads=4", "websockets server", 1.0),
    ("5", "(extra) WebSocket echo, 50 clients, threads=4: at least the `websockets` server", "ws_c50",
     "skitai threads=4", "websockets server", 1.0),
    ("5", "(extra) WebSocket echo, 1 client, Flask-style app (parse_qs): at least the `websockets` server",
     "ws_c1", "skitai threads=0 Flask-style app", "websockets server", 1.0),
    ("5", "(extra) WebSocket echo, 50 clients, Flask-style app (parse_qs): at least the `websockets` server",
     "ws_c50", "skitai threads=0 Flask-style app", "websockets server", 1.0),
]
NO_ERROR_TARGET = ("2", "skitai: no errors at 256 and 1000 connections (threads=4 and threads=0)", "http1_many")

REFERENCE = """\
These are the numbers the issue authors measured on their machine. They are context only, **not our
results**, and not comparable in absolute terms (other hardware, other load); compare ratios.

- Issue 2, wrk -c64, hello world: nginx 162k req/s, uvicorn ASGI 50k, waitress 15.3k, uvicorn WSGI 14.6k,
  gunicorn gthread 9.8k, the original skitai 8.1k. Static, wrk -c64: nginx 82k req/s on 4 KiB and 3.6k
  (3.6 GB/s) on 1 MiB; waitress 12.6k and 3.2k; the original skitai 9.4k and 1.4k.
- Issue 3, 5000 GETs with 64 in flight from local nginx: aiohttp 12.7k req/s, the original aquests 14.5k,
  httpx 0.45k.
- Issue 5, h2load -c16 -m10 (h2c): nginx 100k req/s, the original skitai 0.57 4.0k (threads=4),
  hypercorn 2.6k. WebSocket echo: the `websockets` server 12.4k msg/s for 1 sequential client and 64k for
  50 clients; uvicorn 12.6k and 51k.
"""


PEER_DISTS = ["waitress", "gunicorn", "uvicorn", "uvloop", "httptools", "hypercorn", "aiohttp", "httpx",
              "asyncpg", "redis", "websockets", "requests"]


def _dist_versions(python: Path, names: list[str]) -> str:
    code = ("import importlib.metadata as m, sys\n"
            "for n in sys.argv[1:]:\n"
            "    try: print(n, m.version(n))\n"
            "    except Exception: pass")
    try:
        out = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return ", ".join(out.split("\n")[:-1]) or "unknown"


def _tool_version(argv: list[str]) -> str:
    if not shutil.which(argv[0]):
        return f"{argv[0]} missing"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else argv[0]


def versions() -> list[str]:
    """What was measured, by version (read now, from the venvs the runs used)."""
    return [f"- Peers (`.peers/peers`): {_dist_versions(PEER_PY, PEER_DISTS)}",
            f"- Original (`.peers/skitai057`): {_dist_versions(OLD_PY, ['skitai', 'rs4'])}",
            f"- Ours (`.venv`): {_dist_versions(MAIN_PY, ['skitai', 'aquests', 'h2', 'httptools', 'uvloop', 'wsproto', 'wsaccel'])}",
            f"- Tools: {_tool_version(['nginx', '-v'])}; {_tool_version(['wrk', '-v'])}; "
            f"{_tool_version(['h2load', '--version'])}"]


def load() -> dict[str, dict]:
    runs = {}
    for group in GROUPS:
        path = RESULTS / f"{group}.json"
        if path.exists():
            runs[group] = json.loads(path.read_text())
    return runs


def tables_by_key(runs: dict) -> dict[str, dict]:
    return {t["key"]: t for run in runs.values() for t in run["tables"]}


def _row(tables: dict, key: str, name: str) -> dict | None:
    return next((r for r in tables.get(key, {}).get("rows", []) if r["name"] == name), None)


def _cell(text: str, limit: int = 300) -> str:
    """Text that fits in one Markdown table cell."""
    return " ".join(str(text).replace("|", "/").split())[:limit]


def _fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def render_table(t: dict) -> list[str]:
    has_p99 = any(r.get("p99_ms") is not None for r in t["rows"])
    head = ["server / client", t["unit"]] + (["p99 ms"] if has_p99 else []) + ["errors"]
    if t.get("baseline"):
        head.append(f"ratio to {t['baseline']}")
    head.append("notes")
    out = [f"### {t['title']}", ""]
    if t.get("note"):
        out += [t["note"], ""]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t["rows"]:
        if r.get("rps") is None:
            cells = [r["name"], "**not measured**"] + (["—"] if has_p99 else []) + ["—"]
            if t.get("baseline"):
                cells.append("—")
            cells.append("not available: " + _cell(r.get("reason", "")))
        else:
            notes = []
            if r.get("error_kinds"):
                notes.append(", ".join(f"{k} {v}" for k, v in r["error_kinds"].items()))
            if len(r.get("runs") or []) > 1:
                notes.append("best of " + " / ".join(f"{v:,}" for v in r["runs"]))
            if r.get("transfer"):
                notes.append(r["transfer"])
            if r.get("protocol"):
                notes.append(r["protocol"])
            if r.get("load_before") is not None:
                notes.append(f"load {r['load_before']}")
            cells = [r["name"], _fmt(r["rps"])] + ([_fmt(r.get("p99_ms"), 2)] if has_p99 else [])
            cells.append(str(r.get("errors", 0)))
            if t.get("baseline"):
                cells.append(f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "—")
            cells.append("; ".join(notes))
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def evaluate(tables: dict) -> list[str]:
    out = ["| issue | target | measured | result |", "|---|---|---|---|"]
    for issue, text, key, name, peer, minimum in RATIO_TARGETS:
        ours, theirs = _row(tables, key, name), _row(tables, key, peer)
        if not ours or ours.get("rps") is None:
            why = (ours or {}).get("reason", "not run")
            out.append(f"| {issue} | {text} | not measured ({_cell(why, 160)}) | **NOT MEASURED** |")
            continue
        if not theirs or theirs.get("rps") is None:
            out.append(f"| {issue} | {text} | {peer} not measured | **NOT MEASURED** |")
            continue
        ratio = ours["rps"] / theirs["rps"]
        errs = ours.get("errors", 0)
        ok = ratio >= minimum and not errs
        detail = f"{ours['rps']:,.0f} vs {theirs['rps']:,.0f} = {ratio:.2f}x" + (f", {errs} errors" if errs else "")
        out.append(f"| {issue} | {text} | {detail} | **{'PASS' if ok else 'MISS'}** |")
    issue, text, key = NO_ERROR_TARGET
    rows = tables.get(key, {}).get("rows", [])
    measured = [r for r in rows if r.get("rps") is not None]
    if not rows or len(measured) < len(rows):
        out.append(f"| {issue} | {text} | {len(measured)}/{len(rows) or 4} runs measured | **NOT MEASURED** |")
    else:
        errs = {r["name"]: r.get("errors", 0) for r in measured}
        detail = ", ".join(f"{k.replace('skitai ', '')}: {v}" for k, v in errs.items())
        out.append(f"| {issue} | {text} | errors {detail} | **{'PASS' if not any(errs.values()) else 'MISS'}** |")
    return out


def render(runs: dict) -> str:
    tables = tables_by_key(runs)
    any_run = next(iter(runs.values()), None)
    lines = ["# Benchmarks", "",
             "Speed is measured, not asserted. Everything here was produced by `tools/bench/` on this",
             "project's machine; every number comes from the results files of the run named in its section.",
             ""]
    if any_run:
        m = any_run["machine"]
        lines += ["## Machine", "",
                  f"- CPU: {m['cpu']}, `nproc` = {m['nproc']}",
                  f"- Kernel: {m['kernel']}; Python {m['python']}",
                  f"- Servers pinned to core {m['server_cpu']}, load generators and clients to core "
                  f"{m['client_cpu']} (`taskset`); one server process each (gunicorn: 1 worker; the original "
                  "skitai's master process does not serve); only 127.0.0.1 traffic.",
                  "- This machine is shared with other work; the `load` note is the 1-minute load average just "
                  "before a row was measured. Short client runs are best of 3 (interference only slows a run).",
                  *versions(), ""]
    lines += ["## How to reproduce", "",
              "```",
              "tools/bench/run.sh                 # setup.sh, then every group, then this report",
              "tools/bench/run.sh http1 static    # only some groups: http1 static client db h2 ws was",
              "BENCH_DURATION=3 tools/bench/run.sh  # shorter wrk/h2load runs (default 8 s)",
              "```", "",
              "`setup.sh` installs wrk, nginx, nghttp2-client (h2load), PostgreSQL and Redis from Debian, and "
              "puts every peer in its own venv under `tools/bench/.peers/` (never in the project's `.venv`). "
              "The original skitai 0.57 (newest 0.57.x on the index) has a venv of its own; it runs on "
              "Python 3.11, and so does the aquests client it ships (`rs4.protocols.aquests`). The standalone "
              "`aquests` 0.30.2 distribution does not import on Python 3.11 (its `rs4` dependency either uses "
              "`collections.Iterable`, gone since 3.10, or no longer has `rs4.strutil`), so \"original "
              "aquests\" below is the one inside skitai 0.57.", ""]
    lines += ["## Targets", "",
              "A target passes when the ratio is met with no errors. Each verdict comes from the run below on a "
              "2-core machine shared with other work (see each row's `load`): ratios near the line can flip "
              "between runs; re-measure on a quiet machine before trusting them.", ""]
    lines += evaluate(tables) + [""]
    for group in GROUPS:
        run = runs.get(group)
        if not run:
            continue
        lines += [f"## {group}", "",
                  f"Command: `{run['command']}` (started {run['started']}, {run['seconds']} s, "
                  f"wrk/h2load duration {run['duration']} s)", ""]
        for t in run["tables"]:
            lines += render_table(t)
    missing = [g for g in GROUPS if g not in runs]
    if missing:
        lines += ["## Not run", "", "No results yet for: " + ", ".join(missing) + ".", ""]
    lines += ["## Reference numbers from the issues", "", REFERENCE]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    a = p.parse_args()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(load()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
