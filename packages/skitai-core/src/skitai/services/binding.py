"""Which ``was`` a thread sees (SK-19), kept light: the WSGI bridge imports this on its hot path.

The process's server context is installed once per serving loop (``install``); then every WSGI call
``attach``es a fresh per-request ``was`` to its environ and to the calling thread, so
``from skitai import was`` reaches this request's object; attributes set on it never leak into another
request or thread. Outside any request the proxy reaches the process-wide ``was`` (what ``@app.startup``
hooks see). Several servers in one process (tests, embedding) each keep their own context, keyed by loop.
"""
from __future__ import annotations

import threading
from typing import Any

_local = threading.local()
_process: dict[str, Any] = {"wasc": None, "was": None}
_by_loop: dict[int, Any] = {}        # id(loop) -> Wasc, in installation order
_lock = threading.Lock()


def installed() -> bool:
    return _process["wasc"] is not None


def install(wasc: Any, loop: Any = None) -> None:
    """Make ``wasc`` the server context of its loop and the process's default (``skitai.was``).

    ``install(None, loop)`` takes the context of ``loop`` away (``install(None)``: every context);
    the most recently installed one left becomes the default again.
    """
    from ..wasproxy import WasProxy

    with _lock:
        if wasc is not None:
            _by_loop[id(wasc.loop)] = wasc
        elif loop is not None:
            _by_loop.pop(id(loop), None)
        else:
            _by_loop.clear()
        default = wasc if wasc is not None else (list(_by_loop.values())[-1] if _by_loop else None)
        _set_default(default)
    WasProxy.bind(current if default is not None else None)


def _set_default(wasc: Any) -> None:
    from .was import ProcessWas

    if _process["wasc"] is not wasc:
        _process["wasc"] = wasc
        _process["was"] = ProcessWas(wasc) if wasc is not None else None


def server_context() -> Any:
    return _process["wasc"]


def current() -> Any:
    was = getattr(_local, "was", None)
    if was is not None:
        return was
    if _process["was"] is None:
        raise AttributeError("the was services are not running in this process")
    return _process["was"]


def attach(env: dict, request: Any = None, point: str = "/", loop: Any = None) -> Any:
    """Make this request's ``was``: ``env["skitai.was"]`` and the calling thread's ``was``.

    ``loop`` is the loop serving the request: it picks that server's context when a process has several.
    """
    wasc = (_by_loop.get(id(loop)) if loop is not None else None) or _process["wasc"]
    wasc.count(point)
    was = _was_class()(wasc, env, request)
    env["skitai.was"] = was
    _local.was = was
    return was


def _was_class() -> type:
    cls = _process.get("cls")
    if cls is None:
        from .was import Was
        cls = _process["cls"] = Was
    return cls


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
