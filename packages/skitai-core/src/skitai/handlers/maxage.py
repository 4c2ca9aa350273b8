"""``Cache-Control: max-age`` rules for static files (``skitai.set_max_age(path, seconds)``).

Rules are URL path prefixes. The longest rule matching on whole path segments wins: ``/js`` covers ``/js``
and ``/js/app.js`` but never ``/jsx/app.js``; a rule for ``/`` covers everything. A winning rule of 0 means
no max-age header at all, so ``/js`` = 0 under ``/`` = 300 leaves files under ``/js`` without one.
"""
from __future__ import annotations

from collections.abc import Mapping


def normalise(prefix: str) -> str:
    """``"js/"`` → ``"/js"``; the root stays ``"/"``."""
    if not isinstance(prefix, str):
        raise TypeError(f"a max-age path must be a str, not {type(prefix).__name__}")
    return "/" + prefix.strip("/")


def check_seconds(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError(f"max-age must be an int of seconds, not {seconds!r}")
    if seconds < 0:
        raise ValueError(f"max-age must be 0 or more seconds, not {seconds}")
    return seconds


class MaxAges:
    """Longest-prefix lookup over ``{path prefix: seconds}`` (``config.max_ages``)."""

    def __init__(self, rules: Mapping[str, int] | None = None) -> None:
        self._rules: dict[str, int] = {}
        for prefix, seconds in (rules or {}).items():
            self._rules[normalise(prefix)] = check_seconds(seconds)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def lookup(self, path: str) -> int:
        """Seconds for a decoded URL path such as ``/js/app.js``; 0 when no rule (or a 0 rule) applies."""
        rules = self._rules
        if not rules:
            return 0
        probe = "/" + path.strip("/")
        while True:
            seconds = rules.get(probe)
            if seconds is not None:
                return seconds
            if probe == "/":
                return 0
            probe = probe[:probe.rfind("/")] or "/"

    def header(self, path: str) -> str | None:
        """The Cache-Control value for ``path``, or ``None``."""
        seconds = self.lookup(path)
        return f"max-age={seconds}" if seconds else None
