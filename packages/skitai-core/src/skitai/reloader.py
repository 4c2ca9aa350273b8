"""``app.use_reloader``: a changed app file is imported again and served without a restart (SK-28).

On a request, at most once per ``interval`` seconds, the app file and every ``.py`` file under its
``package/``, ``appack/`` and ``contrib/`` directories are compared by (mtime, size). On a change those
modules are dropped from ``sys.modules``, the app file is executed afresh, and the new app replaces the
mounted one in one assignment: requests already running finish on the old app. An app file that fails to
import is logged and the old app keeps serving.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import hooks, loader
from .loader import Target

log = logging.getLogger("skitai.server")
INTERVAL = 1.0


def watched_files(target: Target) -> list[str]:
    files = [target.path] if target.path else []
    for top in target.watch:
        for root, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            files += [os.path.join(root, n) for n in names if n.endswith(".py")]
    return files


def snapshot(files: list[str]) -> dict[str, tuple[int, int]]:
    stamps = {}
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            continue
        stamps[f] = (st.st_mtime_ns, st.st_size)
    return stamps


def reimport(target: Target) -> Target:
    """A new target whose app comes from a fresh execution of the app file."""
    tops = tuple(os.path.join(os.path.abspath(d), "") for d in target.watch)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and tops and os.path.abspath(file).startswith(tops):
            del sys.modules[name]
    name = target.module
    if not name or name == "__main__":
        name = loader.synthetic_name("main_" + os.path.splitext(os.path.basename(target.path))[0], target.path)
    module = loader.exec_file(name, target.path)
    return loader.with_app(replace(target, module=name), module)


def can_reload(target: Target) -> bool:
    return bool(target.kind == "app" and target.path and getattr(target.app, "use_reloader", False))


class Reloading:
    """A dispatch call serving ``make(target)`` and rebuilding it when the target's files change."""

    def __init__(self, target: Target, make: Callable[[Target], Any], interval: float = INTERVAL) -> None:
        self.target = target
        self.make = make
        self.interval = interval
        self.handler = make(target)
        self.stamps = snapshot(watched_files(target))
        self.due = time.monotonic() + interval

    def __call__(self, exchange: Any) -> Any:
        now = time.monotonic()
        if now >= self.due:
            self.due = now + self.interval
            self.check()
        return self.handler(exchange)

    def check(self) -> bool:
        """Reload when a watched file changed; True when a new app now serves."""
        stamps = snapshot(watched_files(self.target))
        if stamps == self.stamps:
            return False
        self.stamps = stamps
        try:
            target = reimport(self.target)
            handler = self.make(target)
        except Exception:
            log.exception("reloading %s failed: the running app keeps serving", self.target.path)
            return False
        self.target, self.handler = target, handler
        log.info("reloaded %s at %s", target.path, target.point)
        hooks.restart(target.app, target.point)
        return True
