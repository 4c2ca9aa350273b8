"""The launch API: every call fills the module-level ``config``; ``run()`` turns it into a server.

Nothing here opens a socket or imports the server, so ``import skitai`` stays cheap.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import types
from typing import Any

from . import loader, paths
from .config import Cluster, Config, Limits, Mount
from .pref import Pref

config = Config()

PROTO_TYPES = {"http", "https", "ws", "wss", "grpc", "grpcs", "rpc", "rpcs"}
DB_TYPES = {"*postgresql", "*sqlite3", "*redis", "*mongodb"}
SSL_TYPES = {"https", "wss", "grpcs", "rpcs"}
# DB types spelled without the "*" (the spec's own example writes 'postresql'), issue 4
DB_SPELLINGS = {"postgresql": "*postgresql", "postresql": "*postgresql", "pgsql": "*postgresql",
                "pg": "*postgresql", "sqlite3": "*sqlite3", "redis": "*redis", "mongodb": "*mongodb"}


def reset() -> Config:
    """Forget every launch call (tests); the same ``config`` object stays in place."""
    fresh = Config()
    for f in dataclasses.fields(Config):
        setattr(config, f.name, getattr(fresh, f.name))
    return config


def workdir() -> str:
    return config.workdir or paths.getswd()


# ---------------------------------------------------------------- mounts

def _caller_file(depth: int) -> str | None:
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:
        return None
    return frame.f_globals.get("__file__")


def add_mount(point: str, target: Any, appname: str = "app", pref: Pref | None = None,
              host: str = "default", source: str | None = None) -> Mount:
    """Check the target now (a clear error at the line that mounts it), run its ``bootstrap(pref)``."""
    if not isinstance(host, str) or not host.split():
        raise ValueError(f"host must name at least one virtual host: {host!r}")
    mount = Mount(point=point, target=target, appname=appname, pref=pref, host=host, source=source)
    mount = loader.bootstrap(loader.check(mount, workdir()))
    config.mounts.append(mount)
    return mount


def mount(point: str, target: Any, appname: str = "app", pref: Pref | None = None,
          host: str = "default") -> Mount:
    """Mount an app, an app file, a module's exported app, a static directory or ``'@cluster'`` at ``point``."""
    return add_mount(point, target, appname, pref, host, _caller_file(1))


def vmount(host: str, point: str, target: Any, appname: str = "app", pref: Pref | None = None) -> Mount:
    """``mount()`` for the virtual host(s) ``host`` ("www.a.com", ".a.com", "a.com b.com")."""
    return add_mount(point, target, appname, pref, host, _caller_file(1))


def pref(**attrs: Any) -> Pref:
    """A runtime app preference: its attributes and ``.config`` override the mounted app's."""
    return Pref(**attrs)


# ---------------------------------------------------------------- clusters

def alias(name: str, ctype: str, members: str | list[str], role: str = "", source: str = "",
          ssl: bool = False) -> Cluster:
    """Name a group of servers (``'@members'``) for ``was`` calls and ``'@name'`` mounts."""
    if not isinstance(name, str) or not name.lstrip("@"):
        raise ValueError(f"a cluster needs a name: {name!r}")
    if isinstance(ctype, str) and ctype.lower() in DB_SPELLINGS:
        ctype = DB_SPELLINGS[ctype.lower()]
    if ctype not in PROTO_TYPES | DB_TYPES:
        known = ", ".join(sorted(PROTO_TYPES | DB_TYPES))
        raise ValueError(f"unknown cluster type {ctype!r} for {name!r}: use one of {known}")
    if isinstance(members, str):
        members = [members]
    members = list(members)
    if not members or not all(isinstance(m, str) and m.strip() for m in members):
        raise ValueError(f"cluster {name!r} needs one or more member strings: {members!r}")
    cluster = Cluster(name=name.lstrip("@"), ctype=ctype, members=members, role=role or "",
                      source=source or "", ssl=bool(ssl) or ctype in SSL_TYPES)
    config.clusters[cluster.name] = cluster
    return cluster


# ---------------------------------------------------------------- settings

def set_max_age(path: str, seconds: int) -> None:
    """``Cache-Control: max-age`` for static files under ``path`` (the longest matching rule wins)."""
    from .handlers.maxage import check_seconds, normalise
    config.max_ages[normalise(path)] = check_seconds(seconds)


def _number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise TypeError(f"{name} must be {'a number' if kind is float else 'an int'}, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, not {value}")
    return kind(value)


def _limit_setter(field: dataclasses.Field) -> Any:
    """``set_<name>(value)`` for one ``Limits`` field, checking the value by the field's type."""
    kind = str(field.type)

    def check(value: Any) -> Any:
        if kind in ("int", "float"):
            return _number(field.name, value, float if kind == "float" else int)
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{field.name} must be True or False, not {value!r}")
            return value
        if kind.startswith("tuple[str"):
            items = (value,) if isinstance(value, str) else tuple(value)
            if not all(isinstance(v, str) for v in items):
                raise TypeError(f"{field.name} must be str values, not {value!r}")
            return items
        return value

    def setter(value: Any) -> None:
        setattr(config.limits, field.name, check(value))

    setter.__name__ = f"set_{field.name}"
    setter.__doc__ = f"Set ``Limits.{field.name}`` (default {field.default!r})."
    return setter


LIMIT_SETTERS = {f"set_{f.name}": _limit_setter(f) for f in dataclasses.fields(Limits)}
globals().update(LIMIT_SETTERS)


def set_keep_alive(seconds: float) -> None:
    """Idle seconds between requests on a connection (0 means 2)."""
    config.limits.keep_alive = _number("keep_alive", seconds, float) or 2.0


def set_network_timeout(seconds: float) -> None:
    """Idle seconds while a request is read or an answer written (0 means 30)."""
    config.limits.network_timeout = _number("network_timeout", seconds, float) or 30.0


LIMIT_SETTERS.update(set_keep_alive=set_keep_alive, set_network_timeout=set_network_timeout)


def set_max_rcache(objmax: int) -> None:
    """Most results kept by the ``was`` result cache."""
    config.rcache_objmax = _number("rcache_objmax", objmax, int)


def enable_ssl(certfile: str, keyfile: str | None = None, passphrase: str | None = None) -> None:
    """Serve HTTPS on the main port.

    The spec's openssl command writes key and certificate into one PEM: then ``keyfile`` may be that
    file, None, or a name that does not exist (``skitai.tls`` takes the key from the certificate file).
    """
    if not isinstance(certfile, str) or not os.path.isfile(os.path.join(workdir(), certfile)):
        raise FileNotFoundError(f"enable_ssl: certificate file {certfile!r} not found")
    config.certfile = os.path.join(workdir(), certfile)
    config.keyfile = os.path.join(workdir(), keyfile) if keyfile else None
    config.passphrase = passphrase


def enable_forward(port: int = 80, forward_port: int = 443, forward_domain: str | None = None,
                   ip: str = "") -> None:
    """Listen on ``port`` too and redirect every request there to HTTPS on ``forward_port``."""
    config.forward_port = _number("port", port, int)
    config.forward_to = _number("forward_port", forward_port, int)
    config.forward_domain = forward_domain
    config.forward_ip = ip


def enable_proxy(unsecure_https: bool = False) -> None:
    """Also act as a forward proxy (absolute-URI requests and CONNECT)."""
    config.proxy = True
    config.proxy_unsecure_https = bool(unsecure_https)


def enable_gateway(enable_auth: bool = False, secure_key: str | bytes | None = None,
                   realm: str = "Skitai API Gateway") -> None:
    """The API gateway in front of '@cluster' mounts (needs the skitai-gateway plugin)."""
    config.gateway = {"enabled": True, "auth": bool(enable_auth), "secure_key": secure_key, "realm": realm}


def enable_cachefs(memmax: int = 0, diskmax: int = 0, path: str | None = None) -> None:
    """Cache upstream HTTP answers by their Cache-Control/Expires; sizes in MB."""
    config.cachefs = {"memmax": _number("memmax", memmax, int), "diskmax": _number("diskmax", diskmax, int),
                      "path": path}


def enable_blacklist(path: str) -> None:
    """Refuse client addresses listed in the files of directory ``path``."""
    config.blacklist_dir = path


def enable_smtpda(server: str | None = None, user: str | None = None, password: str | None = None,
                  ssl: bool | None = None, max_retry: int | None = None, keep_days: int | None = None) -> None:
    """Run the SMTP delivery agent for ``was.email`` with a default server (needs skitai-smtpda)."""
    config.smtpda = {"server": server, "user": user, "password": password, "ssl": ssl,
                     "max_retry": max_retry, "keep_days": keep_days}


def cron(sched: str, cmd: str) -> None:
    """Run ``cmd`` on the crontab schedule ``sched`` (needs skitai-smtpda, which runs the cron agent)."""
    if not isinstance(sched, str) or not (len(sched.split()) == 5 or sched.startswith("@")):
        raise ValueError(f"a cron schedule has 5 fields ('*/10 * * * *') or is '@daily'-like: {sched!r}")
    if not isinstance(cmd, str) or not cmd.strip():
        raise ValueError("cron needs a command")
    config.cron.append(f"{sched.strip()} {cmd.strip()}")


# ---------------------------------------------------------------- run()

RUN_ALIASES = {"cachefs_dir": ("cachefs", "path"), "cachefs_memmax": ("cachefs", "memmax"),
               "cachefs_diskmax": ("cachefs", "diskmax"), "enable_gw": ("gateway", "enabled"),
               "gw_auth": ("gateway", "auth"), "gw_realm": ("gateway", "realm"),
               "gw_secret_key": ("gateway", "secure_key"), "fws_port": ("forward_port", None),
               "fws_to": ("forward_to", None), "fws_address": ("forward_ip", None),
               "fws_domain": ("forward_domain", None)}


def mounts_of(value: Any) -> list[tuple]:
    """Every ``run(mount=...)`` form as a list of argument tuples for ``mount()``.

    ``("/", app)``, ``("/", app, "appname")``, ``("/", app, pref)``, ``("/", app, "appname", pref)``,
    ``("/service", ("/service/app", "app"))`` (a file and its appname), a list of those, or
    ``{"/admin": app}`` (a value may itself be a tuple of the remaining arguments).
    """
    if isinstance(value, dict):
        return [(point,) + (t if isinstance(t, tuple) and not _is_export(t) else (t,)) for point, t in value.items()]
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, tuple) for v in value):
        raise ValueError(f"run(mount=...) takes ('/', app), a list of such tuples or a dict: {value!r}")
    for v in value:
        if not 2 <= len(v) <= 4:
            raise ValueError(f"a mount tuple is (point, target[, appname][, pref]): {v!r}")
    return list(value)


def _is_export(t: tuple) -> bool:
    return len(t) == 2 and isinstance(t[0], types.ModuleType) and isinstance(t[1], str)


def mount_tuple(args: tuple) -> None:
    point, target, *rest = args
    if isinstance(target, tuple) and len(target) == 2 and all(isinstance(t, str) for t in target):
        target, name = target            # the spec's ('/service', ('/service/app', 'app')): file and appname
        rest = [name, *rest]
    appname, pref_ = "app", None
    for r in rest:
        if isinstance(r, str):
            appname = r
        elif r is None or isinstance(r, dict):
            pref_ = r
        else:
            raise ValueError(f"a mount tuple's extras are an appname (str) and a pref: {args!r}")
    add_mount(point, target, appname, pref_, source=_caller_file(3))


def clusters_of(value: Any) -> None:
    """``run(clusters={"@x": ("https", ["a:443", "b:443"][, role][, source][, ssl])})``."""
    if not isinstance(value, dict):
        raise ValueError(f"run(clusters=...) takes a dict of name: (type, members, ...): {value!r}")
    for name, spec in value.items():
        if isinstance(spec, Cluster):
            config.clusters[spec.name] = spec
            continue
        if not isinstance(spec, (tuple, list)) or not 2 <= len(spec) <= 5:
            raise ValueError(f"cluster {name!r} must be (type, members[, role][, source][, ssl]): {spec!r}")
        alias(name, *spec)


def apply_run(**kw: Any) -> Config:
    """Merge ``run()`` keywords into ``config``; they take precedence over earlier launch calls."""
    names = {f.name for f in dataclasses.fields(Config)}
    limit_names = {f.name for f in dataclasses.fields(Limits)}
    for key, value in kw.items():
        if key == "mount":
            for args in mounts_of(value):
                mount_tuple(args)
        elif key in ("clusters", "alias"):
            clusters_of(value)
        elif key == "max_ages":
            for path, seconds in dict(value).items():
                set_max_age(path, seconds)
        elif key == "cron":
            for line in ([value] if isinstance(value, str) else value):
                config.cron.append(line)
        elif key in ("keep_alive", "network_timeout"):
            LIMIT_SETTERS[f"set_{key}"](value)
        elif key in limit_names:
            LIMIT_SETTERS[f"set_{key}"](value)
        elif key in RUN_ALIASES:
            where, sub = RUN_ALIASES[key]
            if sub:
                getattr(config, where)[sub] = value
            else:
                setattr(config, where, value)
        elif key in names and key not in ("mounts", "limits", "extra"):
            setattr(config, key, value)
        else:
            raise TypeError(f"run() got an unknown setting {key!r}")
    _check_basics(config)
    return config


def _check_basics(c: Config) -> None:
    if not isinstance(c.port, int) or not 0 <= c.port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, not {c.port!r}")
    if not isinstance(c.threads, int) or c.threads < 0:
        raise ValueError(f"threads must be 0 (run apps on the loop) or more, not {c.threads!r}")
    if not isinstance(c.workers, int) or c.workers < 1:
        raise ValueError(f"workers must be 1 or more, not {c.workers!r}")


def run(**kw: Any) -> int:
    """Serve what was mounted: parses the command line (start/stop/restart/status, -v, --port).

    Returns 0 after a clean stop; any other outcome exits the process with its code (SystemExit).
    """
    apply_run(**kw)
    from . import cli
    code = cli.main(config, sys.argv[1:])
    if code:
        raise SystemExit(code)
    return 0
