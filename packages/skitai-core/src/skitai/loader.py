"""Turn what ``skitai.mount()`` was given into something to serve.

Target kinds (inventory SK-01, PK-02, PK-03):
- an app object: served as it is (found again by ``appname`` in its module when reloaded);
- a str file path relative to the script directory: ``'app_v1/app.py'``, ``'app_v1/app'``, ``'app_v1'``
  (``app_v1.py``, or a directory holding ``app.py``); the app is the module attribute ``appname``;
- a module: its ``export/skitai/app.py``; ``(module, 'app_v1.py')``: its ``export/skitai/app_v1.py``;
- a directory: static files;
- ``'@cluster'``: a reverse-proxy mount.

Before an app file is loaded, the ``__init__.py`` beside it is imported *as its package* (so relative
imports work) and its ``bootstrap(pref)`` runs once.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
import types
from dataclasses import dataclass, field, replace
from typing import Any

from .config import Mount
from .pref import Pref

EXPORT_DIR = os.path.join("export", "skitai")


class MountError(ValueError):
    """A mount target that cannot be served, with the reason."""


class AppLoadError(MountError):
    """The app's own code failed while it was imported: the error and where it happened, in one line."""


def load_error(target: Any, exc: BaseException) -> AppLoadError:
    """Name the failing file and line (the innermost frame outside the import machinery)."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}, line {exc.lineno})"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
        if frames:
            where = f" ({frames[-1].filename}, line {frames[-1].lineno})"
    msg = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return AppLoadError(f"cannot load app {target!r}: {type(exc).__name__}: {msg}{where}")


@dataclass
class Target:
    """A resolved mount: what the router serves at ``point``."""

    kind: str                        # "app", "static" or "proxy"
    point: str
    host: str = "default"
    app: Any = None                  # kind "app": the app object
    path: str | None = None          # kind "app": its source file; kind "static": the directory
    module: str | None = None        # kind "app": the sys.modules name it was loaded from
    appname: str = "app"
    cluster: str | None = None       # kind "proxy": cluster name without "@"
    pref: Any = None
    watch: list[str] = field(default_factory=list)   # package dirs whose modules reload with the app


def normalize_point(point: str) -> str:
    if not isinstance(point, str) or not point.startswith("/"):
        raise MountError(f"a mount point must be a str starting with '/': {point!r}")
    if any(part in (".", "..") for part in point.split("/")) or "//" in point:
        raise MountError(f"a mount point must be a plain path: {point!r}")
    return point.rstrip("/") or "/"


# ---------------------------------------------------------------- classify (launch time, cheap)

def check(mount: Mount, workdir: str) -> Mount:
    """Validate ``mount`` and make its target absolute; raise ``MountError`` with the reason."""
    mount = replace(mount, point=normalize_point(mount.point))
    target = mount.target
    if not isinstance(mount.appname, str) or not mount.appname.isidentifier():
        raise MountError(f"appname must be a Python identifier: {mount.appname!r}")
    if mount.pref is not None and not isinstance(mount.pref, dict):
        raise MountError(f"pref must come from skitai.pref(), not {type(mount.pref).__name__}")
    if isinstance(target, types.ModuleType):
        target = (target, "app.py")
        mount = replace(mount, target=target)
    if isinstance(target, tuple):
        if len(target) != 2 or not isinstance(target[0], types.ModuleType) or not isinstance(target[1], str):
            raise MountError(f"a tuple target must be (module, 'app_file.py'): {target!r}")
        export_file(*target)        # raises when missing
        return mount
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, str):
        if target.startswith("@"):
            if len(target) < 2:
                raise MountError("a cluster mount needs a name after '@'")
            return replace(mount, target=target)
        return replace(mount, target=find_path(target, workdir))
    if callable(target):
        return mount
    raise MountError(f"cannot mount {target!r} at {mount.point}: give an app, a file path, a directory, "
                     "a module, (module, 'file.py') or '@cluster'")


def find_path(target: str, workdir: str) -> str:
    """The absolute app file (``.py``) or static directory a str target names.

    A directory comes back with a trailing separator: that is what marks a checked target as static.
    """
    base = os.path.normpath(os.path.join(workdir, target))
    candidates = [base] if base.endswith(".py") else [base + ".py", os.path.join(base, "app.py")]
    for c in candidates:
        if os.path.isfile(c):
            return c
    if os.path.isdir(base):
        return base + os.sep
    if os.path.exists(base):
        raise MountError(f"mount target {target!r} is neither a .py app file nor a directory: {base}")
    raise MountError(f"mount target {target!r} not found: looked for {' or '.join(candidates + [base])}")


def export_file(module: types.ModuleType, filename: str) -> str:
    home = os.path.dirname(os.path.abspath(getattr(module, "__file__", None) or ""))
    if not getattr(module, "__file__", None):
        raise MountError(f"module {module.__name__} has no file, so it exports no skitai app")
    path = os.path.join(home, EXPORT_DIR, filename if filename.endswith(".py") else filename + ".py")
    if not os.path.isfile(path):
        raise MountError(f"module {module.__name__} exports no skitai app: {path} not found")
    return path


def kind_of(mount: Mount) -> str:
    t = mount.target
    if isinstance(t, str) and t.startswith("@"):
        return "proxy"
    if isinstance(t, str) and t.endswith(os.sep):
        return "static"
    if isinstance(t, (str, tuple)):
        return "file"
    return "app"


# ---------------------------------------------------------------- bootstrap

_bootstrapped: set[tuple[str, str, str]] = set()


def bootstrap(mount: Mount) -> Mount:
    """Import the app's package and call its ``bootstrap(pref)`` once; returns the mount with a pref."""
    if kind_of(mount) != "file":
        return mount
    pkg = package_of(mount.target)
    if pkg is None or not callable(getattr(pkg, "bootstrap", None)):
        return mount
    if mount.pref is None:
        mount = replace(mount, pref=Pref())
    key = (pkg.__name__, mount.host, mount.point)
    if key not in _bootstrapped:
        _bootstrapped.add(key)
        pkg.bootstrap(mount.pref)
    return mount


def package_of(target: Any) -> types.ModuleType | None:
    """The package an app file belongs to, imported, or None when its directory is no package."""
    if isinstance(target, tuple):
        module = target[0]
        if hasattr(module, "__path__"):
            return importlib.import_module(f"{module.__name__}.export.skitai")
        target = export_file(*target)
    directory = os.path.dirname(target)
    if not os.path.isfile(os.path.join(directory, "__init__.py")):
        return None
    return load_package(directory)


# ---------------------------------------------------------------- loading (run time)

def resolve(mount: Mount, workdir: str) -> Target:
    """Load what ``mount`` names; the app gets its ``pref``."""
    mount = bootstrap(check(mount, workdir))
    kind = kind_of(mount)
    base = Target(kind=kind, point=mount.point, host=mount.host, appname=mount.appname, pref=mount.pref)
    if kind == "proxy":
        return replace(base, cluster=mount.target[1:])
    if kind == "static":
        return replace(base, path=mount.target.rstrip(os.sep) or os.sep)
    if kind == "file":
        try:
            module = load_app_module(mount.target)
        except MountError:
            raise
        except Exception as e:
            raise load_error(mount.target, e) from e
        target = replace(base, kind="app", module=module.__name__, path=module.__file__)
        return with_app(target, module)
    module = module_holding(mount.target, mount.appname, mount.source)
    target = replace(base, app=mount.target, module=module and module.__name__,
                     path=module and getattr(module, "__file__", None))
    apply_pref(target)
    return replace(target, watch=watched_dirs(target.path))


def with_app(target: Target, module: types.ModuleType) -> Target:
    """``target`` with its app taken from ``module`` and the pref applied."""
    try:
        app = getattr(module, target.appname)
    except AttributeError:
        raise MountError(f"{module.__file__} has no app named {target.appname!r}") from None
    target = replace(target, app=app, watch=watched_dirs(target.path))
    apply_pref(target)
    return target


def apply_pref(target: Target) -> None:
    from .pref import apply
    apply(target.pref, target.app)


WATCHED_PACKAGES = ("package", "appack", "contrib")


def watched_dirs(path: str | None) -> list[str]:
    if not path:
        return []
    home = os.path.dirname(path)
    return [d for d in (os.path.join(home, n) for n in WATCHED_PACKAGES) if os.path.isdir(d)]


def load_app_module(target: str | tuple) -> types.ModuleType:
    if isinstance(target, tuple):
        module, filename = target
        path = export_file(module, filename)
        if hasattr(module, "__path__"):
            stem = os.path.splitext(os.path.basename(path))[0]
            return importlib.import_module(f"{module.__name__}.export.skitai.{stem}")
        return load_file(path)
    return load_file(target)


def load_file(path: str) -> types.ModuleType:
    """Import the app file ``path`` once: the running script itself is never imported a second time."""
    main = sys.modules.get("__main__")
    if _same(getattr(main, "__file__", None), path):
        return main
    directory, stem = os.path.dirname(path), os.path.splitext(os.path.basename(path))[0]
    if os.path.isfile(os.path.join(directory, "__init__.py")):
        return importlib.import_module(f"{load_package(directory).__name__}.{stem}")
    name = stem if _importable_as(stem, path) else synthetic_name(stem, path)
    known = sys.modules.get(name)
    if known is not None and _same(getattr(known, "__file__", None), path):
        return known
    return exec_file(name, path)


def load_package(directory: str) -> types.ModuleType:
    """Import ``directory`` (which has ``__init__.py``) as a package, under its own name when it can be."""
    init = os.path.join(directory, "__init__.py")
    natural = os.path.basename(directory.rstrip(os.sep))
    if _importable_as(natural, init):
        return importlib.import_module(natural)
    name = synthetic_name(natural, init)
    known = sys.modules.get(name)
    if known is not None and _same(getattr(known, "__file__", None), init):
        return known
    return exec_file(name, init, package_dir=directory)


def exec_file(name: str, path: str, package_dir: str | None = None) -> types.ModuleType:
    """Execute ``path`` as a fresh module ``name``; sys.modules keeps the old one if it fails."""
    locations = [package_dir] if package_dir else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise MountError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    old = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if old is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = old
        raise
    return module


def synthetic_name(stem: str, path: str) -> str:
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"_skitai_{re.sub(r'[^0-9A-Za-z_]', '_', stem)}_{digest}"


def module_holding(app: Any, appname: str, source: str | None) -> types.ModuleType | None:
    """The module where ``app`` is the global ``appname``, for the reloader (None: not reloadable).

    The module that defined it comes first (a function's ``__module__``, a Flask app's ``import_name``),
    then the file ``mount()`` was called from.
    """
    names = [getattr(app, "__module__", None) if isinstance(app, types.FunctionType) else None,
             getattr(app, "import_name", None)]
    candidates = [sys.modules.get(n) for n in names if isinstance(n, str)]
    if source:
        wanted = os.path.abspath(source)
        candidates += [m for m in list(sys.modules.values())
                       if isinstance(getattr(m, "__file__", None), str) and os.path.abspath(m.__file__) == wanted]
    for module in candidates:
        if module is not None and getattr(module, "__file__", None) and getattr(module, appname, None) is app:
            return module
    return None


def _importable_as(name: str, path: str) -> bool:
    """True when a plain ``import name`` finds exactly ``path`` (so we may use the natural name)."""
    if not name.isidentifier():
        return False
    known = sys.modules.get(name)
    if known is not None:
        return _same(getattr(known, "__file__", None), path)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and _same(spec.origin, path)


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
