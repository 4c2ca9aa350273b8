"""Where things are: the script's working directory (``getswd``) and the default ``varpath``.

Skitai runs from the directory of the script that calls ``skitai.run()``, so an app reaches its files by
relative paths wherever it was started from.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile


def getswd() -> str:
    """The directory of the running script (``sys.argv[0]``); the current directory when there is none."""
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    if script and os.path.exists(script):
        return os.path.dirname(os.path.abspath(script))
    return os.getcwd()


def joinpath(*parts: str) -> str:
    """``parts`` joined to the script directory and normalised; an absolute part starts over."""
    return os.path.normpath(os.path.join(getswd(), *parts))


abspath = joinpath


def is_devel() -> bool:
    """True unless the environment variable ``SKITAI_PRODUCTION`` is set."""
    return not os.environ.get("SKITAI_PRODUCTION")


def script_path() -> str:
    script = sys.argv[0] if sys.argv and sys.argv[0] else "skitai"
    return os.path.abspath(script)


def default_varpath() -> str:
    """``/var/tmp/skitai-<script>-<digest of its full path>``: the same on every run of the same script."""
    full = script_path()
    name = os.path.splitext(os.path.basename(full))[0] or "skitai"
    digest = hashlib.sha1(full.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    base = "/var/tmp" if os.path.isdir("/var/tmp") else tempfile.gettempdir()
    return os.path.join(base, f"skitai-{name}-{digest}")
