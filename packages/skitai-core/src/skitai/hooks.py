"""App life-cycle hooks the server calls when the app has them (the 0.26 app protocol).

- ``app.start(was, point)``: the app is mounted and the worker starts serving (Saddle's ``@app.startup``);
- ``app.restart(was, point)``: the reloader swapped in a freshly imported app (``@app.onreload``);
- ``app.cleanup()``: the server stops, on SIGTERM/SIGINT as on a normal stop (``@app.shutdown``).

A hook that raises is logged; it never stops the server or the other apps' hooks.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("skitai.server")


def _call(app: Any, name: str, *args: Any) -> None:
    fn = getattr(app, name, None)
    if not callable(fn):
        return
    try:
        fn(*args)
    except Exception:
        log.exception("%s hook of %r failed", name, app)


def _was() -> Any:
    from . import was
    return was


def start(app: Any, point: str) -> None:
    _call(app, "start", _was(), point)


def restart(app: Any, point: str) -> None:
    _call(app, "restart", _was(), point)


def cleanup(app: Any) -> None:
    _call(app, "cleanup")
