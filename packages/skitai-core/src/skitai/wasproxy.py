"""``from skitai import was``: one name for the current thread's ``was`` services (SK-19).

The services themselves arrive with a later issue, which installs them with ``WasProxy.bind(resolver)``;
``resolver()`` returns the ``was`` object of the calling thread. Until then every attribute read says so.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class WasProxy:
    """Attribute reads go to the calling thread's ``was``; nothing is stored on the proxy itself."""

    _resolver: Callable[[], Any] | None = None

    @classmethod
    def bind(cls, resolver: Callable[[], Any] | None) -> None:
        cls._resolver = resolver

    def _target(self, name: str) -> Any:
        resolver = type(self)._resolver
        if resolver is None:
            raise AttributeError(f"skitai.was.{name}: the was services are not installed in this process")
        return resolver()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._target(name), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(name), name, value)

    def __repr__(self) -> str:
        return f"<skitai.was {'bound' if type(self)._resolver else 'unbound'}>"
