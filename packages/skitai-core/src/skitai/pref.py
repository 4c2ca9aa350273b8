"""Runtime app preference (``skitai.pref()``): settings given at launch that override the app's own.

Every top-level attribute of a ``Pref`` is set on the mounted app object; ``pref.config`` is merged key
by key into ``app.config`` (or becomes ``app.config`` when the app has none).
"""
from __future__ import annotations

from typing import Any


class AttrDict(dict):
    """A dict whose keys are also attributes: ``d.x = 1`` is ``d["x"] = 1``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class Pref(AttrDict):
    """App attributes to override (``pref.debug = True``) plus ``pref.config`` for ``app.config``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if "config" not in self:
            self["config"] = AttrDict()
        elif not isinstance(self["config"], AttrDict):
            self["config"] = AttrDict(self["config"])


def pref(**attrs: Any) -> Pref:
    """A fresh preference object; keyword arguments become app attributes."""
    return Pref(**attrs)


def apply(p: Pref | dict | None, app: Any) -> None:
    """Put the preference on ``app``: attributes first, then ``config`` merged key by key."""
    if not p:
        return
    if not isinstance(p, dict):
        raise TypeError(f"pref must come from skitai.pref() (a dict), not {type(p).__name__}")
    for name, value in p.items():
        if name != "config":
            setattr(app, name, value)
    config = p.get("config") or {}
    current = getattr(app, "config", None)
    if current is None:
        app.config = AttrDict(config)
        return
    for key, value in config.items():
        try:
            current[key] = value
        except TypeError:
            setattr(current, key, value)
