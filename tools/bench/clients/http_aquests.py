"""Issue 3: N small GETs with C in flight through aquests' standalone API (configure/get/fetchall).

--impl ours      the checkout's aquests (project .venv)
--impl original  the original aquests as shipped with skitai 0.57 (rs4.protocols.aquests, its own venv)
--mode h1 | h2c | async   (h2c: HTTP/2 with prior knowledge; async: ``await aquests.get`` API)
"""
from __future__ import annotations

import asyncio
import inspect

from common import Timer, args, report, unavailable


def load(impl: str):
    if impl == "original":
        from rs4.protocols import aquests
        return aquests
    import aquests
    return aquests


def _configure(aquests, workers: int, callback, mode: str) -> None:
    kw = {"workers": workers, "callback": callback}
    if "logger" in inspect.signature(aquests.configure).parameters:
        kw["logger"] = _Quiet()
    if mode == "h2c":  # one connection, every request a stream on it
        kw.update(http2=True, http2_constreams=workers)
    try:
        aquests.configure(**kw)
    except TypeError as exc:
        unavailable(f"aquests.configure() does not take {sorted(kw)}: {exc}")


class _Quiet:
    """A logger that drops everything (the peers log nothing either)."""

    def __call__(self, *a, **k) -> None:
        pass

    def __getattr__(self, name):
        return self


def standalone(aquests, url: str, n: int, concurrency: int, mode: str) -> None:
    counts = [0, 0]

    def done(resp) -> None:
        counts[0 if getattr(resp, "status_code", 0) == 200 else 1] += 1

    _configure(aquests, concurrency, done, mode)
    for _ in range(concurrency):  # warm-up: open the connections
        aquests.get(url)
    aquests.fetchall()
    counts[:] = [0, 0]
    for _ in range(n):
        aquests.get(url)
    with Timer() as t:
        aquests.fetchall()
    report(counts[0], counts[1] + (n - sum(counts)), t.seconds, mode=mode)


async def awaitable(aquests, url: str, n: int, concurrency: int) -> None:
    if not hasattr(aquests, "Session"):
        unavailable("aquests.Session (awaitable API) not there yet")
    remaining = iter(range(n))
    counts = [0, 0]
    async with aquests.Session() as session:
        async def worker() -> None:
            for _ in remaining:
                resp = await session.get(url)
                counts[0 if resp.status_code == 200 else 1] += 1

        await session.get(url)
        with Timer() as t:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    report(counts[0], counts[1], t.seconds, mode="async")


if __name__ == "__main__":
    a = args(("--url", {"required": True}), ("--impl", {"default": "ours", "choices": ["ours", "original"]}),
             ("--mode", {"default": "h1", "choices": ["h1", "h2c", "async"]}))
    try:
        mod = load(a.impl)
    except Exception as exc:  # noqa: BLE001 - report why, let the harness go on
        unavailable(f"cannot import aquests ({a.impl}): {type(exc).__name__}: {exc}")
    if not hasattr(mod, "fetchall"):
        unavailable("aquests has no standalone API (configure/get/fetchall) yet")
    if a.mode == "async":
        asyncio.run(awaitable(mod, a.url, a.n, a.concurrency))
    else:
        standalone(mod, a.url, a.n, a.concurrency, a.mode)
