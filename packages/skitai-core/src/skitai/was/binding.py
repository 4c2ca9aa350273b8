"""Which ``was`` a thread sees (SK-19), kept light: the WSGI bridge imports this on its hot path.

The process's server context is installed once (``install``); then every WSGI call ``attach``es a
fresh per-request ``was`` to its environ and to the calling thread, so ``from skitai import was``
reaches this request's object; attributes set on it never leak into another request or thread.
Outside any request the proxy reaches the process-wide ``was`` (what ``@app.startup`` hooks see).
"""
from __future__ import annotations

import threading
from typing import Any

_local = threading.local()
_process: dict[str, Any] = {"wasc": None, "was": None}


def installed() -> bool:
    return _process["wasc"] is not None


def install(wasc: Any) -> None:
    """Make ``wasc`` this process's server context (None uninstalls) and point ``skitai.was`` here."""
    from ..wasproxy import WasProxy
    from .was import Was

    _process["wasc"] = wasc
    _process["was"] = Was(wasc) if wasc is not None else None
    WasProxy.bind(current if wasc is not None else None)


def server_context() -> Any:
    return _process["wasc"]


def current() -> Any:
    was = getattr(_local, "was", None)
    if was is not None:
        return was
    if _process["was"] is None:
        raise AttributeError("the was services are not running in this process")
    return _process["was"]


def attach(env: dict, request: Any = None, point: str = "/") -> Any:
    """Make this request's ``was``: ``env["skitai.was"]`` and the calling thread's ``was``."""
    from .was import Was

    wasc = _process["wasc"]
    wasc.count(point)
    was = Was(wasc, env, request)
    env["skitai.was"] = was
    _local.was = was
    return was


class bound:
    """``with bound(was): ...`` binds ``was`` to this thread for a block (callbacks, tests)."""

    __slots__ = ("was", "prev")

    def __init__(self, was: Any) -> None:
        self.was = was

    def __enter__(self) -> Any:
        self.prev = getattr(_local, "was", None)
        _local.was = self.was
        return self.was

    def __exit__(self, *exc: Any) -> None:
        _local.was = self.prev
