"""Plugin discovery: core never imports a plugin package by name.

A plugin distribution declares an entry point in the group ``skitai.plugins`` that names an object
derived from ``Plugin``; ``skitai.run()`` loads every one with ``discover()``.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any


class Plugin:
    """Base class: every hook is optional and does nothing by default."""

    name: str = ""

    def __init__(self, name: str = "") -> None:
        if name:
            self.name = name

    def validate(self, config: Any) -> None:
        """Raise ``ValueError`` with a clear message when this plugin's part of the config is wrong."""

    def adapt(self, target: Any, mount: Any, config: Any) -> Any:
        """Return a WSGI-callable wrapper for a mounted object this plugin knows (e.g. a Saddle app), else None.

        ``mount`` is a ``skitai.loader.Target`` (``point``, ``host``, ``appname``, ``path``, ``pref``).
        """
        return None

    def handlers(self, config: Any) -> list[Any]:
        """Handlers to put in front of the router (the gateway's auth handler).

        Each has ``match(exchange) -> bool`` and is a ``Dispatch`` (``handler(exchange)``); the first
        that matches answers the request, otherwise the router does.
        """
        return []

    def was_services(self) -> dict[str, Any]:
        """Extra ``was`` attributes (``was.email``)."""
        return {}

    def start(self, config: Any) -> None:
        """Start side processes (run() calls this before serving)."""

    def stop(self) -> None:
        """Stop what start() started."""


GROUP = "skitai.plugins"


def discover() -> list[Plugin]:
    """Load every installed plugin object, in name order so the chain is stable."""
    found = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        obj = ep.load()
        if not isinstance(obj, Plugin):
            raise TypeError(f"entry point {ep.name!r} in {GROUP!r} is not a skitai.plugins.Plugin: {obj!r}")
        found.append(obj)
    return found


def find(name: str) -> Plugin | None:
    return next((p for p in discover() if p.name == name), None)
