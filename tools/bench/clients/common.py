"""Shared by the client scripts: argument parsing, timing and the one JSON line they print."""
from __future__ import annotations

import argparse
import json
import sys
import time


def args(*extra: tuple[str, dict]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000, help="requests in total")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    for name, kw in extra:
        p.add_argument(name, **kw)
    return p.parse_args()


def report(n_ok: int, n_err: int, seconds: float, **extra) -> None:
    """Print the result line the harness parses (rps counts successful requests only)."""
    print(json.dumps({"rps": n_ok / seconds if seconds else 0.0, "errors": n_err, "ok": n_ok,
                      "seconds": round(seconds, 3), **extra}))
    sys.stdout.flush()


def unavailable(reason: str) -> None:
    print(json.dumps({"unavailable": reason}))
    sys.exit(0)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
