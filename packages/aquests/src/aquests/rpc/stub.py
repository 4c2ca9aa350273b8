"""Attribute-call stubs: ``stub.a.b(*args)`` calls remote method ``"a.b"`` (AQ-06)."""
from __future__ import annotations

from typing import Any, Callable


class MethodProxy:
    __slots__ = ("_call", "_name")

    def __init__(self, call: Callable[[str, tuple], Any], name: str) -> None:
        self._call = call
        self._name = name

    def __getattr__(self, name: str) -> "MethodProxy":
        if name.startswith("__"):
            raise AttributeError(name)
        return MethodProxy(self._call, f"{self._name}.{name}")

    def __call__(self, *args: Any) -> Any:
        return self._call(self._name, args)

    def __repr__(self) -> str:
        return f"<remote method {self._name}>"


class Stub:
    """Each attribute is a remote method; calling it hands (name, args) to ``call``."""

    def __init__(self, call: Callable[[str, tuple], Any], url: str) -> None:
        object.__setattr__(self, "_call", call)
        object.__setattr__(self, "_url", url)

    def __getattr__(self, name: str) -> MethodProxy:
        if name.startswith("__"):
            raise AttributeError(name)
        return MethodProxy(self._call, name)

    def __repr__(self) -> str:
        return f"<rpc stub {self._url}>"
